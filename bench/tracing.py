"""What OpenTelemetry tracing costs the serving path: off against before, and on against off.

    .venv/bin/python -m bench.tracing [--rounds 5] [--seconds 5] [--baseline-src DIR]

Two paths, each in three configurations measured in alternating rounds in the same run (the
machine is shared and noisy: the figures that count are the per-round ratios, medians):

``gateway``
    ``modelport gateway`` in front of one ``modelport serve`` replica (both ``--workers 1``),
    a deployment with one variant: the gateway's request span and its ``forward`` span, the
    replica's request span and its ``parse``, ``queue`` and ``inference`` spans when on.
``up``
    ``modelport up --workers 1``, the same deployment served in-process: the request span and
    the three stage spans when on.

Configurations: ``before``, the source tree in ``--baseline-src`` (a copy of ``src/`` without the
tracing change, run through ``PYTHONPATH``, in a data directory of its own); ``off``, this tree
with tracing off (the default); ``on``, this tree with ``MODELPORT_TRACING__ENABLED=true``,
``sample_ratio`` 1.0, every span exported over OTLP/HTTP to a receiver in this process on
loopback that decodes each export and counts its spans; ``on, ratio 0.1``, the same with one
new trace in ten recorded (the gateway's replica follows the gateway's decision). wrk, 16
connections, tiny model, ``--no-auth``, access log off, prediction log on (as ``bench.gateway``).
Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from bench import gateway as gw
from bench.load import Sample, wrk
from bench.models import build
from bench.procs import HOST, free_port

OUT = gw.BENCH / ".out" / "tracing"
CONNECTIONS = 16

DEPLOYMENT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  variants:
    - {{name: a, model: tiny@1, weight: 100}}
{replicas}"""


class Receiver:
    """An OTLP/HTTP traces receiver: decodes every export and counts spans per service."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.spans: Counter[str] = Counter()
        self.exports = 0
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = ExportTraceServiceRequest.FromString(body)
                with lock:
                    receiver.exports += 1
                    for resource in message.resource_spans:
                        service = next(
                            a.value.string_value
                            for a in resource.resource.attributes
                            if a.key == "service.name"
                        )
                        receiver.spans[service] += sum(len(s.spans) for s in resource.scope_spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.endpoint = f"http://{HOST}:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def prepare(baseline_src: Path) -> tuple[Path, Path, Path]:
    """Two data directories (before / this tree) with tiny@1 registered, and the body."""
    shutil.rmtree(OUT, ignore_errors=True)
    gw.OUT.mkdir(parents=True, exist_ok=True)  # bench.gateway's helpers log there
    model = build(OUT / "models")["tiny"]
    sample = OUT / "row.npy"
    np.save(sample, np.array([model.row], dtype=np.float64))
    homes = []
    for name in ("home-before", "home"):
        home = OUT / name
        home.mkdir(parents=True)
        homes.append(home)
    body = OUT / "body.json"
    tensor = {"name": "input", "datatype": "FP64", "shape": [1, 16], "data": model.row}
    body.write_text(json.dumps({"inputs": [tensor]}))
    gw.modelport(homes[1], "register", "tiny", str(model.joblib_path), "--sample", str(sample))
    register_before = [gw.MODELPORT, "register", "tiny", str(model.joblib_path)]
    _before(homes[0], baseline_src, *register_before[1:], "--sample", str(sample))
    return homes[0], homes[1], body


def _before(home: Path, baseline_src: Path, *args: str) -> None:
    env = {**os.environ, "MODELPORT_HOME": str(home), "PYTHONPATH": str(baseline_src)}
    done = subprocess.run([gw.MODELPORT, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"modelport {' '.join(args)} (before) failed: {done.stderr.strip()}")


def apply(home: Path, name: str, replica_port: int | None, before: Path | None) -> None:
    replicas = (
        "" if replica_port is None else f"  replicas: {{urls: ['http://{HOST}:{replica_port}']}}\n"
    )
    path = home / f"{name}.yaml"
    path.write_text(DEPLOYMENT.format(name=name, replicas=replicas))
    if before is None:
        gw.modelport(home, "apply", "-f", str(path))
    else:
        _before(home, before, "apply", "-f", str(path))


def cpu_seconds(servers: list[gw.Process]) -> float:
    """CPU time (user and system) the servers' processes have used so far."""
    ticks = 0
    for server in servers:
        fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Case:
    """One configuration: where wrk sends, and the processes that answer (their CPU counts)."""

    port: int
    path: str
    servers: list[gw.Process]
    samples: list[Sample] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    sent: int = 0


def measure(cases: dict[str, Case], body: Path, rounds: int, seconds: float) -> None:
    """Every case once per round, in alternating order: req/s, and server CPU per request."""
    names = list(cases)
    for number in range(rounds):
        order = names if number % 2 == 0 else names[::-1]
        for name in order:
            case = cases[name]
            warm = wrk(case.port, case.path, body, CONNECTIONS, 1)
            cpu = cpu_seconds(case.servers)
            sample = wrk(case.port, case.path, body, CONNECTIONS, seconds)
            cpu = cpu_seconds(case.servers) - cpu
            case.sent += warm.requests + sample.requests
            if sample.errors:
                gw.log(f"{name}: {sample.errors} errors, first: {sample.first_error}")
            case.samples.append(sample)
            case.cpu_us.append(cpu / max(1, sample.requests) * 1e6)
            gw.log(
                f"  round {number + 1} {name}: {sample.rps:,.0f} req/s, "
                f"{case.cpu_us[-1]:.0f} us CPU a request"
            )


def ratio_line(cases: dict[str, Case], top: str, bottom: str) -> str:
    a, b = cases[top], cases[bottom]
    ratios = [x.rps / y.rps for x, y in zip(a.samples, b.samples, strict=True)]
    cpu = [x - y for x, y in zip(a.cpu_us, b.cpu_us, strict=True)]
    return (
        f"| {top} / {bottom} | {statistics.median(ratios):.3f} "
        f"({min(ratios):.3f}-{max(ratios):.3f}) | {statistics.median(cpu):+.0f} "
        f"({min(cpu):+.0f} to {max(cpu):+.0f}) |"
    )


def table(cases: dict[str, Case], prefix: str) -> list[str]:
    """bench.gateway's table of one path's configurations, with their CPU per request."""
    chosen = {name: case.samples for name, case in cases.items() if name.startswith(prefix)}
    header = gw.HEADER.format(base=f"{prefix}, before").replace(
        "| errors |\n|---|---:|---:|---:|---:|---:|---:|",
        "| errors | CPU us/req |\n|---|---:|---:|---:|---:|---:|---:|---:|",
    )
    rows = gw.summary(chosen, f"{prefix}, before")
    return [
        header,
        *(
            f"{row} {statistics.median(cases[name].cpu_us):.0f} |"
            for name, row in zip(chosen, rows, strict=True)
        ),
    ]


def start_servers(
    before_home: Path, home: Path, baseline: Path, endpoint: str
) -> tuple[dict[str, gw.Process], dict[str, str]]:
    """Every server of the run, by name, and the deployment each configuration calls."""
    tracing = {"MODELPORT_TRACING__ENABLED": "true", "MODELPORT_TRACING__ENDPOINT": endpoint}
    sampled = {
        **tracing,
        "MODELPORT_TRACING__SAMPLE_RATIO": "0.1",
        "MODELPORT_TRACING__SERVICE_NAME": "sampled-0.1",
    }
    before = {"PYTHONPATH": str(baseline)}
    one = ("--workers", "1")
    apply(before_home, "tiny", None, baseline)
    apply(home, "tiny", None, None)
    servers: dict[str, gw.Process] = {}

    def start(name: str, where: Path, env: dict[str, str] | None, *args: str) -> int:
        port = free_port()
        servers[name] = gw.start_modelport(where, name, port, *args, *one, env=env)
        return port

    replicas = {
        "before": start("replica-before", before_home, before, "serve", "tiny@1"),
        "off": start("replica-off", home, None, "serve", "tiny@1"),
        "on": start("replica-on", home, tracing, "serve", "tiny@1"),
    }
    apply(before_home, "remote", replicas["before"], baseline)
    apply(home, "remote-off", replicas["off"], None)
    apply(home, "remote-on", replicas["on"], None)
    for kind in ("gateway", "up"):
        start(f"{kind}-before", before_home, before, kind)
        start(f"{kind}-off", home, None, kind)
        start(f"{kind}-on", home, tracing, kind)
        start(f"{kind}-on-0.1", home, sampled, kind)
    return servers, {"before": "remote", "off": "remote-off", "on": "remote-on"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--baseline-src", type=Path, required=True)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench.tracing needs wrk: apt-get install wrk")
    before_home, home, body = prepare(args.baseline_src)
    receiver = Receiver()
    servers, remote = start_servers(before_home, home, args.baseline_src, receiver.endpoint)
    configurations = {
        "before": "before",
        "tracing off": "off",
        "tracing on": "on",
        "tracing on, ratio 0.1": "on-0.1",
    }
    cases: dict[str, Case] = {}
    for label, key in configurations.items():
        gateway, replica = servers[f"gateway-{key}"], servers[f"replica-{key.split('-')[0]}"]
        path = f"/v2/models/{remote[key.split('-')[0]]}/infer"
        cases[f"gateway, {label}"] = Case(gateway.port, path, [gateway, replica])
    for label, key in configurations.items():
        up = servers[f"up-{key}"]
        cases[f"up, {label}"] = Case(up.port, "/v2/models/tiny/infer", [up])
    with gw.running(*servers.values()):
        measure(cases, body, args.rounds, args.seconds)
        time.sleep(7)  # the exporters' last batches (every 5 s)
    traced_gateway, traced_up = cases["gateway, tracing on"].sent, cases["up, tracing on"].sent
    lines = [
        f"## Tracing ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
        f"{args.rounds} rounds of {args.seconds:g} s, {CONNECTIONS} connections)",
        "",
        "CPU us/req: CPU time of the answering processes (gateway and replica, or up) over the "
        "requests answered, median of the rounds.",
        "",
        *table(cases, "gateway"),
        "",
        *table(cases, "up"),
        "",
        "| comparison | req/s ratio, per-round median (range) | CPU us/req difference, median "
        "(range) |",
        "|---|---:|---:|",
        ratio_line(cases, "gateway, tracing off", "gateway, before"),
        ratio_line(cases, "up, tracing off", "up, before"),
        ratio_line(cases, "gateway, tracing on", "gateway, tracing off"),
        ratio_line(cases, "up, tracing on", "up, tracing off"),
        ratio_line(cases, "gateway, tracing on, ratio 0.1", "gateway, tracing off"),
        ratio_line(cases, "up, tracing on, ratio 0.1", "up, tracing off"),
        "",
        f"Spans received: {dict(receiver.spans)} in {receiver.exports} exports "
        "(`sampled-0.1`: the ratio-0.1 gateway's and up's). Requests sent with tracing on at "
        f"ratio 1.0 (warm-ups included): gateway {traced_gateway:,} (2 gateway spans each: "
        f"{2 * traced_gateway:,}; 4 replica spans each: {4 * traced_gateway:,}, plus those of "
        "the sampled tenth of the ratio-0.1 gateway's "
        f"{cases['gateway, tracing on, ratio 0.1'].sent:,}), up {traced_up:,} (4 each: "
        f"{4 * traced_up:,}).",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
