"""Load generators: wrk (REST) and bench/grpc_load.py (h2load, gRPC), each in a process of its own.

Both report one :class:`Sample`: requests per second, p50/p99 latency in milliseconds and the
number of failed requests (HTTP status >= 400 or a socket error or time-out for wrk; any
non-OK status for gRPC). ``headers`` (the API key's ``Authorization``) go on every request: a
static header line for wrk, call metadata for gRPC.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import HOST

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "wrk" / "infer.lua"
WRK_THREADS = 1  # one load thread for every server: wrk's core is then the same for all
WRK_TIMEOUT = "10s"  # a slow answer is measured, not dropped as a time-out


class LoadFailed(Exception):
    """The load generator itself failed (not the server answering errors)."""


@dataclass
class Sample:
    """One measured run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    first_error: str = ""


def _last_json(stdout: str, marker: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(marker):
            return dict(json.loads(line[len(marker) :]))
    raise LoadFailed(f"no {marker.strip()} line in the output: {stdout[-300:]!r}")


def wrk(
    port: int,
    path: str,
    body: Path,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> Sample:
    """Drive ``POST path`` with ``body`` (and ``headers``) at ``connections`` for ``seconds``."""
    argv = [
        "wrk",
        f"-t{min(WRK_THREADS, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={WRK_TIMEOUT}",
        "-s",
        str(LUA),
        f"http://{HOST}:{port}",
        "--",
        path,
        str(body),
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LoadFailed(f"wrk: {exc}") from None
    if done.returncode != 0:
        raise LoadFailed(f"wrk exited {done.returncode}: {done.stderr.strip()[-300:]}")
    data = _last_json(done.stdout, "BENCH_JSON ")
    socket_errors = sum(int(data[k]) for k in ("connect", "read", "write", "timeout"))
    status = max(int(data["status_errors"]), int(data["wrk_status_errors"]))
    return Sample(
        rps=float(data["rps"]),
        p50_ms=float(data["p50_us"]) / 1000,
        p99_ms=float(data["p99_us"]) / 1000,
        errors=status + socket_errors,
        requests=int(data["requests"]),
        first_error=str(data["first_error"]),
    )


def grpc(
    port: int,
    model: str,
    datatype: str,
    row: list[float],
    output: str | None,
    concurrency: int,
    seconds: float,
    warmup: float,
    headers: dict[str, str] | None = None,
) -> Sample:
    """Drive gRPC ``ModelInfer`` through bench/grpc_load.py in a process of its own."""
    argv = [
        sys.executable,
        "-m",
        "bench.grpc_load",
        f"{HOST}:{port}",
        model,
        "--datatype",
        datatype,
        "--row",
        json.dumps(row),
        "--concurrency",
        str(concurrency),
        "--duration",
        str(seconds),
        "--warmup",
        str(warmup),
    ]
    if output:
        argv += ["--output", output]
    for name, value in (headers or {}).items():
        argv += ["--metadata", f"{name.lower()}={value}"]  # gRPC metadata keys are lowercase
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=seconds + warmup + 90,
            cwd=BENCH.parent,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LoadFailed(f"grpc_load: {exc}") from None
    if done.returncode != 0:
        raise LoadFailed(f"grpc_load exited {done.returncode}: {done.stderr.strip()[-300:]}")
    data = _last_json(done.stdout, "BENCH_JSON ")
    return Sample(
        rps=float(data["rps"]),
        p50_ms=float(data["p50_ms"]),
        p99_ms=float(data["p99_ms"]),
        errors=int(data["errors"]),
        requests=int(data["ok"]) + int(data["errors"]),
        first_error=str(data["first_error"]),
    )
