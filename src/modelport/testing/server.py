"""Start ``modelport serve`` (or ``up``, ``gateway``) as a real process on free loopback ports."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

import httpx

__all__ = ["ServerProcess"]


class ServerProcess:
    """A ``modelport serve`` child process.

    Args:
        args: Arguments after ``modelport serve`` (models, ``--name``, ``--workers``...);
            ``--port 0 --grpc-port 0`` are added so servers never collide.
        env: Extra environment variables (for example ``MODELPORT_HOME``).
        timeout: Seconds to wait for the server to be ready.
        auth: Keep authentication on (the server's default); ``False`` adds ``--no-auth``, for
            tests about everything but security (the server listens on loopback only).
        verify: What the readiness probe trusts with TLS: a CA file, an SSL context (with a
            client certificate for mutual TLS), or ``True`` for the system's.
        command: The ``modelport`` command that serves: ``serve``, ``up`` or ``gateway``.
        port: The REST port (``0``: a free one, the default; a fixed one restarts a server
            where clients expect it).

    Use as a context manager; :attr:`url` is the base URL once started.
    """

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        *,
        auth: bool = False,
        verify: str | bool | ssl.SSLContext = True,
        command: str = "serve",
        port: int = 0,
    ) -> None:
        self.command = command
        self.port = port
        self.args = list(args) if auth else [*args, "--no-auth"]
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        self.env = {**os.environ, **(env or {})}
        self.timeout = timeout
        self.url = ""
        self.grpc_address = ""
        self.output: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> str:
        """Start the server and return its base URL.

        Raises:
            RuntimeError: The process exited or did not become ready in time; the message holds
                its output.
        """
        command = [
            *(sys.executable, "-m", "modelport.cli", self.command),
            *self.args,
            *("--port", str(self.port), "--grpc-port", "0"),
        ]
        self._process = subprocess.Popen(
            command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        found = threading.Event()
        threading.Thread(target=self._read, args=(found,), daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and self._process.poll() is None:
            if found.wait(0.05):
                break
        if not found.is_set():
            self.stop()
            raise RuntimeError(f"modelport {self.command} did not start:\n" + "".join(self.output))
        while time.monotonic() < deadline:
            try:
                if (
                    httpx.get(
                        f"{self.url}/v2/health/live", timeout=1, verify=self.verify
                    ).status_code
                    == 200
                ):
                    return self.url
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"modelport {self.command} never answered:\n" + "".join(self.output))

    def _read(self, found: threading.Event) -> None:
        process = self._process
        if process is None or process.stdout is None:
            return
        for line in process.stdout:
            self.output.append(line)
            if line.startswith("grpc on "):
                self.grpc_address = line.split()[-1]
            if line.startswith("serving on ") and not found.is_set():
                self.url = line.split()[-1]
                found.set()

    @property
    def pid(self) -> int | None:
        """Process id of the ``modelport serve`` parent, once started."""
        return None if self._process is None else self._process.pid

    def stop(self) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and return its exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
