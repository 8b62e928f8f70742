"""Server processes: start on a free loopback port, wait until ready, always stop the whole group.

Every server runs in a session (process group) of its own, so stopping it also stops the
workers it forked or spawned. Its stdout and stderr go to one log file under bench/.out/logs/,
directly or (``Launch.log_through_pipe``) through a pipe that a ``cat`` process copies to the
file, as a container runtime or a log collector reads a server's output.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class StartFailed(Exception):
    """A server exited or did not become ready; the message says why."""


@dataclass
class Launch:
    """How to start one server."""

    argv: list[str]
    http_port: int
    grpc_port: int | None = None
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    log_through_pipe: bool = False


def http_get(port: int, path: str, timeout: float = 2.0) -> int:
    """Status code of ``GET path`` on the loopback port, 0 when nothing answers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        conn.close()


def tail(path: Path, lines: int = 3) -> str:
    """The last non-empty lines of a log file, joined with ' | '."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


class ServerProcess:
    """One running server; use as a context manager so it is always stopped."""

    def __init__(self, launch: Launch, log_path: Path) -> None:
        self.launch = launch
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: subprocess.Popen[bytes] | None = None

    @property
    def http_port(self) -> int:
        return self.launch.http_port

    @property
    def grpc_port(self) -> int | None:
        return self.launch.grpc_port

    def start(self, ready_timeout: float) -> None:
        """Start and wait for ``/v2/health/ready`` to answer 200.

        Raises:
            StartFailed: The process exited, or was not ready within ``ready_timeout`` seconds.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(self.launch.env)
        with self.log_path.open("wb") as log:
            log.write(("$ " + " ".join(self.launch.argv) + "\n").encode())
            log.flush()
            output: int | IO[bytes] = log
            if self.launch.log_through_pipe:
                self.reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=log)
                assert self.reader.stdin is not None
                output = self.reader.stdin
            self.proc = subprocess.Popen(
                self.launch.argv,
                cwd=self.launch.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            if self.reader is not None and self.reader.stdin is not None:
                self.reader.stdin.close()  # the server's copy is the pipe's only writer now
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise StartFailed(f"exited with code {code}: {tail(self.log_path)}")
            if http_get(self.http_port, "/v2/health/ready", timeout=1.0) == 200:
                return
            time.sleep(0.25)
        raise StartFailed(f"not ready after {ready_timeout:.0f} s: {tail(self.log_path)}")

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``grace`` seconds."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # Workers may outlive the leader; the group is killed either way.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.proc = None
        if self.reader is not None:  # it ends at end of input, once every writer has gone
            try:
                self.reader.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.reader.kill()
                self.reader.wait()
            self.reader = None

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
