"""Deployments under load: ``modelport up`` and ``modelport gateway`` against their baselines.

    .venv/bin/python -m bench.gateway [--rounds 3] [--seconds 5] [--only up,experiment,gateway]

Three comparisons, each measured in alternating rounds in the same run (the machine is shared
and noisy: the figures that count are the ratios, medians over the rounds):

``up``
    ``modelport up --workers 2`` serving a two-variant deployment (50/50, sticky on
    ``X-User-Id``, prediction log on) against ``modelport serve --workers 2`` answering the same
    version directly; and the same deployment with its prediction log off (``sampleRate: 0``),
    for the log's cost. Tiny model, 16 connections.
``experiment``
    Two ``modelport up --workers 2`` on copies of one data directory, the same deployment (50/50,
    no sticky key: each request drawn at random, prediction log on), one of them with an
    Experiment running on it (evaluated every 5 s from its growing prediction log, looked for
    every second): what running an experiment costs the traffic.
``gateway``
    ``modelport gateway`` in front of two ``modelport serve --workers 1`` replicas (sticky
    assignment and the prediction log on) against nginx (Debian package) as a round-robin
    reverse proxy with upstream keep-alive to the same replicas, with 1 and 2 nginx workers,
    and against calling one replica directly; 16 and 64 connections.

Everything runs with ``--no-auth`` on loopback, so nginx and modelport do the same work. The
tiny model is the benchmark's (bench/models.py), registered twice (two versions).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench.load import Sample, wrk
from bench.models import build
from bench.procs import HOST, free_port, http_get

BENCH = Path(__file__).resolve().parent
OUT = BENCH / ".out" / "gateway"
MODELPORT = str(Path(sys.executable).with_name("modelport"))

DEPLOYMENTS = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {{name: tiny}}
spec:
  variants:
    - {{name: a, model: tiny@1, weight: 50}}
    - {{name: b, model: tiny@2, weight: 50, role: treatment}}
  traffic: {{stickyKey: {{header: X-User-Id}}}}
---
apiVersion: modelport.io/v1
kind: Deployment
metadata: {{name: tiny-nolog}}
spec:
  variants:
    - {{name: a, model: tiny@1, weight: 50}}
    - {{name: b, model: tiny@2, weight: 50, role: treatment}}
  traffic: {{stickyKey: {{header: X-User-Id}}}}
  predictionLog: {{sampleRate: 0}}
---
apiVersion: modelport.io/v1
kind: Deployment
metadata: {{name: tiny-random}}
spec:
  variants:
    - {{name: a, model: tiny@1, weight: 50}}
    - {{name: b, model: tiny@2, weight: 50, role: treatment}}
"""

EXPERIMENT = """\
apiVersion: modelport.io/v1
kind: Experiment
metadata: {name: tiny-ab}
spec:
  deployment: tiny-random
  control: a
  treatment: b
  primary: {metric: latency_mean}
  guardrails:
    - {metric: error_rate, tolerance: 0.01}
    - {metric: latency_p99, tolerance: 50%}
  minSamples: 1000
  maxDuration: 7d
  evaluateEvery: 5s
"""

REMOTE = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {{name: tiny-remote}}
spec:
  variants:
    - {{name: a, model: tiny@1, weight: 50}}
    - {{name: b, model: tiny@2, weight: 50, role: treatment}}
  traffic: {{stickyKey: {{header: X-User-Id}}}}
  replicas: {{urls: [{replicas}]}}
"""

NGINX = """\
worker_processes {workers};
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream replicas {{
        {servers}
        keepalive 64;
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


@dataclass
class Process:
    """A server under test."""

    name: str
    port: int
    process: subprocess.Popen[bytes]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def modelport(home: Path, *args: str) -> None:
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    done = subprocess.run([MODELPORT, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"modelport {' '.join(args)} failed: {done.stderr.strip()}")


def prepare(replica_ports: list[int]) -> tuple[Path, Path]:
    """A fresh home with tiny@1, tiny@2 and the deployments; the request body."""
    shutil.rmtree(OUT, ignore_errors=True)
    home = OUT / "home"
    home.mkdir(parents=True)
    model = build(OUT / "models")["tiny"]
    sample = OUT / "row.npy"
    np.save(sample, np.array([model.row], dtype=np.float64))
    for _ in range(2):
        modelport(home, "register", "tiny", str(model.joblib_path), "--sample", str(sample))
    replicas = ", ".join(f"'http://{HOST}:{port}'" for port in replica_ports)
    (OUT / "deployments.yaml").write_text(DEPLOYMENTS.format())
    (OUT / "remote.yaml").write_text(REMOTE.format(replicas=replicas))
    body = OUT / "body.json"
    body.write_text(
        json.dumps(
            {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 16], "data": model.row}]}
        )
    )
    return home, body


def start_modelport(
    home: Path, name: str, port: int, *args: str, env: dict[str, str] | None = None
) -> Process:
    env = {
        **os.environ,
        "MODELPORT_HOME": str(home),
        "MODELPORT_LOG__ACCESS": "false",
        **(env or {}),
    }
    logfile = (OUT / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [MODELPORT, *args, "--port", str(port), "--no-grpc", "--no-auth"],
        env=env,
        stdout=logfile,
        stderr=subprocess.STDOUT,
    )
    return _ready(Process(name, port, process), "/v2/health/ready")


def start_nginx(workers: int, port: int, replica_ports: list[int]) -> Process:
    folder = OUT / f"nginx-{workers}"
    folder.mkdir(exist_ok=True)
    servers = "\n        ".join(f"server {HOST}:{p};" for p in replica_ports)
    config = folder / "nginx.conf"
    config.write_text(
        NGINX.format(workers=workers, folder=folder, servers=servers, host=HOST, port=port)
    )
    process = subprocess.Popen(
        ["nginx", "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "stderr.log").open("wb"),
    )
    return _ready(Process(f"nginx-{workers}w", port, process), "/v2/health/ready")


def _ready(server: Process, path: str) -> Process:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited; see {OUT}/{server.name}.log")
        if http_get(server.port, path) == 200:
            return server
        time.sleep(0.2)
    raise SystemExit(f"{server.name} did not become ready")


def stop(server: Process) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@contextmanager
def running(*servers: Process) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            stop(server)


def measure(
    cases: dict[str, tuple[int, str]],
    body: Path,
    connections: int,
    rounds: int,
    seconds: float,
) -> dict[str, list[Sample]]:
    """Run every case once per round, in alternating order."""
    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    names = list(cases)
    for number in range(rounds):
        order = names if number % 2 == 0 else names[::-1]
        for name in order:
            port, path = cases[name]
            wrk(port, path, body, connections, 1, {"X-User-Id": "user-7"})  # warm
            sample = wrk(port, path, body, connections, seconds, {"X-User-Id": "user-7"})
            if sample.errors:
                log(f"{name}: {sample.errors} errors, first: {sample.first_error}")
            samples[name].append(sample)
            log(f"  round {number + 1} c={connections} {name}: {sample.rps:,.0f} req/s")
    return samples


def summary(samples: dict[str, list[Sample]], baseline: str) -> list[str]:
    base = statistics.median(s.rps for s in samples[baseline])
    lines = []
    for name, runs in samples.items():
        rps = statistics.median(s.rps for s in runs)
        p50 = statistics.median(s.p50_ms for s in runs)
        p99 = statistics.median(s.p99_ms for s in runs)
        ratios = [s.rps / b.rps for s, b in zip(runs, samples[baseline], strict=True)]
        errors = sum(s.errors for s in runs)
        lines.append(
            f"| {name} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {statistics.median(ratios):.2f} "
            f"({min(ratios):.2f}-{max(ratios):.2f}) | {rps / base:.2f} | {errors} |"
        )
    return lines


HEADER = (
    "| configuration | req/s (median) | p50 ms | p99 ms | per-round ratio to {base} "
    "(median, range) | ratio of medians | errors |\n|---|---:|---:|---:|---:|---:|---:|"
)


def bench_up(home: Path, body: Path, rounds: int, seconds: float) -> list[str]:
    direct_port, up_port = free_port(), free_port()
    direct = start_modelport(
        home, "serve", direct_port, "serve", "tiny@1", "tiny@2", "--workers", "2"
    )
    up = start_modelport(home, "up", up_port, "up", "--workers", "2")
    with running(direct, up):
        samples = measure(
            {
                "serve (direct, tiny@1)": (direct_port, "/v2/models/tiny/versions/1/infer"),
                "up, deployment, log on": (up_port, "/v2/models/tiny/infer"),
                "up, deployment, log off": (up_port, "/v2/models/tiny-nolog/infer"),
            },
            body,
            16,
            rounds,
            seconds,
        )
    log_ratios = [
        on.rps / off.rps
        for on, off in zip(
            samples["up, deployment, log on"], samples["up, deployment, log off"], strict=True
        )
    ]
    return [
        "### `modelport up` against `modelport serve`, tiny model, 16 connections",
        "",
        HEADER.format(base="direct"),
        *summary(samples, "serve (direct, tiny@1)"),
        "",
        f"Prediction log on / off (same process, per-round): median "
        f"{statistics.median(log_ratios):.3f} (range {min(log_ratios):.3f}-{max(log_ratios):.3f}).",
        "",
    ]


def bench_experiment(home: Path, body: Path, rounds: int, seconds: float) -> list[str]:
    """``up`` with and without an experiment running on its deployment, same run."""
    other = OUT / "home-experiment"
    shutil.copytree(home, other)
    (OUT / "experiment.yaml").write_text(EXPERIMENT)
    modelport(other, "apply", "-f", str(OUT / "experiment.yaml"))
    often = {"MODELPORT_CONTROLPLANE__EXPERIMENT_INTERVAL_S": "1"}
    plain_port, experiment_port = free_port(), free_port()
    plain = start_modelport(home, "up-plain", plain_port, "up", "--workers", "2", env=often)
    running_one = start_modelport(
        other, "up-experiment", experiment_port, "up", "--workers", "2", env=often
    )
    with running(plain, running_one):
        samples = measure(
            {
                "up, no experiment": (plain_port, "/v2/models/tiny-random/infer"),
                "up, experiment running": (experiment_port, "/v2/models/tiny-random/infer"),
            },
            body,
            16,
            rounds,
            seconds,
        )
    done = subprocess.run(
        [MODELPORT, "experiments", "show", "tiny-ab", "-o", "json", "--decisions", "10000"],
        env={**os.environ, "MODELPORT_HOME": str(other)},
        capture_output=True,
        text=True,
        check=True,
    )
    decisions = json.loads(done.stdout)["decisions"]
    ratios = [
        e.rps / p.rps
        for e, p in zip(
            samples["up, experiment running"], samples["up, no experiment"], strict=True
        )
    ]
    return [
        "### `modelport up` with and without a running experiment, tiny model, 16 connections",
        "",
        HEADER.format(base="no experiment"),
        *summary(samples, "up, no experiment"),
        "",
        f"Experiment running / none (per round): median {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f}-{max(ratios):.3f}); the experiment was evaluated "
        f"{len(decisions)} times during the run (last decision: "
        f"{decisions[0]['decision'] if decisions else 'none'}).",
        "",
    ]


def bench_gateway(
    home: Path, body: Path, replica_ports: list[int], rounds: int, seconds: float, workers: int
) -> list[str]:
    replicas = [
        start_modelport(home, f"replica-{n}", port, "serve", "tiny@1", "tiny@2", "--workers", "1")
        for n, port in enumerate(replica_ports)
    ]
    modelport(home, "apply", "-f", str(OUT / "remote.yaml"))  # the replicas answer now
    gateway_port = free_port()
    nginx_ports = {1: free_port(), 2: free_port()}
    gateway = start_modelport(home, "gateway", gateway_port, "gateway", "--workers", str(workers))
    nginx = [start_nginx(w, port, replica_ports) for w, port in nginx_ports.items()]
    out: list[str] = []
    with running(*replicas, gateway, *nginx):
        for connections in (16, 64):
            samples = measure(
                {
                    "one replica directly": (replica_ports[0], "/v2/models/tiny/versions/1/infer"),
                    "nginx, 1 worker": (nginx_ports[1], "/v2/models/tiny/versions/1/infer"),
                    "nginx, 2 workers": (nginx_ports[2], "/v2/models/tiny/versions/1/infer"),
                    "modelport gateway (sticky, log on)": (
                        gateway_port,
                        "/v2/models/tiny-remote/infer",
                    ),
                },
                body,
                connections,
                rounds,
                seconds,
            )
            gateway_runs = samples["modelport gateway (sticky, log on)"]
            best_nginx = [
                max(a.rps, b.rps)
                for a, b in zip(
                    samples["nginx, 1 worker"], samples["nginx, 2 workers"], strict=True
                )
            ]
            to_nginx = [g.rps / n for g, n in zip(gateway_runs, best_nginx, strict=True)]
            out += [
                f"### `modelport gateway` against nginx, two replicas, {connections} connections",
                "",
                HEADER.format(base="nginx, 1 worker"),
                *summary(samples, "nginx, 1 worker"),
                "",
                "Gateway / the better nginx of each round: median "
                f"{statistics.median(to_nginx):.2f} "
                f"(range {min(to_nginx):.2f}-{max(to_nginx):.2f}).",
                "",
            ]
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--only", default="up,experiment,gateway")
    parser.add_argument("--gateway-workers", type=int, default=2)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("nginx") is None:
        raise SystemExit("bench.gateway needs wrk and nginx: apt-get install wrk nginx-light")
    replica_ports = [free_port(), free_port()]
    home, body = prepare(replica_ports)
    modelport(home, "apply", "-f", str(OUT / "deployments.yaml"))
    lines = [f"## Deployments ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)", ""]
    chosen = set(args.only.split(","))
    if "up" in chosen:
        lines += bench_up(home, body, args.rounds, args.seconds)
    if "experiment" in chosen:
        lines += bench_experiment(home, body, args.rounds, args.seconds)
    if "gateway" in chosen:
        lines += bench_gateway(
            home, body, replica_ports, args.rounds, args.seconds, args.gateway_workers
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    tempfile.tempdir = str(OUT.parent)
    sys.exit(main(sys.argv[1:]))
