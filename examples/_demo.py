"""What the example scripts share: printing steps, running ``modelport``, starting ``up``.

The examples run as scripts (``python examples/NAME.py``), so this folder is on their path.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

MODELPORT = str(Path(sys.executable).with_name("modelport"))


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(*args: str, env: dict[str, str], demo: str) -> str:
    """Run ``modelport ARGS``, print what it printed; exit naming ``demo`` if it failed."""
    print("$ modelport " + " ".join(args), flush=True)
    done = subprocess.run([MODELPORT, *args], env=env, capture_output=True, text=True)
    print(done.stdout.rstrip(), flush=True)
    if done.returncode != 0:
        print(done.stderr.rstrip(), file=sys.stderr)
        sys.exit(f"{demo} failed: modelport {args[0]} exited with {done.returncode}")
    return done.stdout


def start_up(
    args: list[str], env: dict[str, str], log: Path, demo: str
) -> tuple[subprocess.Popen[str], str]:
    """Start ``modelport up ARGS`` (its output to ``log``); return it and its URL once ready."""
    print("$ modelport up " + " ".join(args), flush=True)
    print(f"(its log goes to {log})")
    with log.open("w") as errors:
        server = subprocess.Popen(
            [MODELPORT, "up", *args], env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
    url = _wait_for_server(server, demo)
    _keep_log(server, log)
    return server, url


def _keep_log(server: subprocess.Popen[str], path: Path) -> None:
    """Write the rest of the server's output to ``path`` (a full pipe would stall it)."""

    def copy() -> None:
        assert server.stdout is not None
        with path.open("a") as log:
            for line in server.stdout:
                log.write(line)

    threading.Thread(target=copy, daemon=True).start()


def _wait_for_server(server: subprocess.Popen[str], demo: str) -> str:
    assert server.stdout is not None
    deadline = time.monotonic() + 60
    for line in server.stdout:
        print(line.rstrip(), flush=True)
        if line.startswith("serving on "):
            url = line.split()[-1]
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                        return url
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        if time.monotonic() > deadline:
            break
    server.kill()
    sys.exit(f"{demo} failed: the server did not start")
