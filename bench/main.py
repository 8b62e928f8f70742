"""The benchmark: modelport against MLServer, KServe and the floor, in alternating rounds.

Run through ``bench/run`` (which installs the peers first); ``--help`` lists the knobs. Each
round starts every configuration in turn (the order rotates from round to round), checks one
answer per model, then drives it with wrk at each connection count: a warm-up run that is
thrown away, then the measured run. Configurations with gRPC are also driven by
bench/grpc_load.py (h2load) on the tiny model. The table reports, per point, the median over rounds.
modelport is measured as it ships, authentication on, with an API key created before the first
launch (bench/modelport_home.py); its ``-noauth`` configurations give the cost of that.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import shlex
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench import environment, load, modelport_home, models, report
from bench.procs import HOST, ServerProcess, StartFailed, tail
from bench.report import Point, Run
from bench.targets import (
    BENCH,
    QUICK_KEYS,
    REPO,
    Context,
    ModelportCli,
    Target,
    all_targets,
    launch,
)

OUT = BENCH / ".out"
DEFAULT_MODELPORT_ARGS = "--workers 2"
# No wait: rows that arrive while a batch runs form the next one (measured: same throughput
# at 64 connections as a 500 µs wait, 2.3x the requests/s at 1 connection).
DEFAULT_MLP_ARGS = "--batching max_batch_rows=64,max_delay=0"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="modelport vs MLServer and KServe (and a no-model floor), REST and gRPC.",
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke test: 1 round, 3 s points, fewer configurations"
    )
    p.add_argument(
        "--rounds", type=int, help="alternating rounds; the table shows medians (default 3)"
    )
    p.add_argument("--duration", type=float, help="seconds measured per point (default 10)")
    p.add_argument(
        "--warmup", type=float, help="seconds of discarded warm-up per point (default 2)"
    )
    p.add_argument(
        "--connections", default="1,16,64", help="REST connection counts (default 1,16,64)"
    )
    p.add_argument(
        "--grpc-concurrency", type=int, default=16, help="gRPC requests in flight (default 16)"
    )
    p.add_argument("--models", default="tiny,mlp", help="models to benchmark (default tiny,mlp)")
    p.add_argument("--only", help="comma-separated configuration keys (see --list)")
    p.add_argument("--list", action="store_true", help="list the configurations and exit")
    p.add_argument(
        "--modelport-artifact",
        choices=["onnx", "joblib"],
        default="onnx",
        help="what modelport serves: the skl2onnx export (default) or the peers' .joblib",
    )
    p.add_argument(
        "--modelport-args",
        default=DEFAULT_MODELPORT_ARGS,
        help=f"extra `modelport serve` options (default {DEFAULT_MODELPORT_ARGS!r}; "
        "--grpc-port is added with a free port unless given)",
    )
    p.add_argument(
        "--modelport-mlp-args",
        default=DEFAULT_MLP_ARGS,
        help=f"further options for the MLP point (default {DEFAULT_MLP_ARGS!r})",
    )
    p.add_argument(
        "--modelport-exe",
        type=Path,
        default=REPO / ".venv" / "bin" / "modelport",
        help="the modelport command to benchmark (default .venv/bin/modelport)",
    )
    p.add_argument(
        "--ready-timeout", type=float, default=120.0, help="seconds to wait for a server"
    )
    p.add_argument("--write-results", action="store_true", help="write bench/RESULTS.md")
    args = p.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 3)
    args.duration = args.duration or (3.0 if quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if quick else 2.0)
    args.connections = [int(c) for c in args.connections.split(",")]
    args.models = tuple(m for m in args.models.split(",") if m)
    if not 1 <= args.rounds <= 9 or not 0 < args.duration <= 120 or max(args.connections) > 512:
        p.error("rounds must be 1-9, duration 0-120 s, connections at most 512")
    return args


def plan(args: argparse.Namespace) -> list[Target]:
    targets = all_targets(args.models)
    if args.only:
        keys = set(args.only.split(","))
        unknown = keys - {t.key for t in targets}
        if unknown:
            raise SystemExit(f"unknown configuration(s): {', '.join(sorted(unknown))}")
        return [t for t in targets if t.key in keys]
    if args.quick:
        return [t for t in targets if t.key in QUICK_KEYS]
    return targets


def points(target: Target, args: argparse.Namespace) -> list[Point]:
    out = [Point(m, "REST", c) for m in target.models for c in args.connections]
    if target.grpc and "tiny" in target.models:
        out.append(Point("tiny", "gRPC", args.grpc_concurrency))
    return out


def infer_path(model: str) -> str:
    return f"/v2/models/{model}/infer"


def check_answer(port: int, target: Target, model: str, ctx: Context, timeout: float) -> str | None:
    """None when one request gets a 200 with one [1, 2] output within ``timeout``, else why."""
    body = json.dumps(ctx.request(target, model))
    deadline = time.monotonic() + timeout
    problem = "no answer"
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            headers = {"Content-Type": "application/json", **ctx.headers(target)}
            conn.request("POST", infer_path(model), body, headers)
            response = conn.getresponse()
            data = response.read()
            if response.status == 200:
                outputs = json.loads(data).get("outputs", [])
                shapes = [o.get("shape") for o in outputs]
                if shapes and shapes[0] == [1, 2]:
                    return None
                return f"unexpected outputs: {data[:200]!r}"
            problem = f"HTTP {response.status}: {data[:200].decode(errors='replace')}"
        except (OSError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        time.sleep(0.5)  # workers may still be loading
    return problem


def rejected_option(log_path: Path, cli: ModelportCli) -> str | None:
    """The extra option a usage error (exit 2) in the log names, if any."""
    # The log's first line is the command itself, which names every option: skip it.
    lines = log_path.read_text(errors="replace").splitlines()[1:]
    text = "\n".join(lines[-12:])
    for option in sorted(cli.options(), key=len, reverse=True):
        if re.search(re.escape(option) + r"\b", text):
            return option
    return None


def start(target: Target, ctx: Context, args: argparse.Namespace, round_no: int) -> ServerProcess:
    """Start ``target``; for modelport, drop options this build rejects and try again.

    Raises:
        StartFailed: It could not be started.
    """
    while True:
        log_path = OUT / "logs" / f"round{round_no}-{target.key}.log"
        server = ServerProcess(launch(target, ctx), log_path)
        try:
            server.start(args.ready_timeout)
            return server
        except StartFailed as exc:
            code = server.exit_code()
            server.stop()
            if target.family == "modelport" and code == 2:
                option = rejected_option(log_path, ctx.modelport)
                if option:
                    lines = log_path.read_text(errors="replace").splitlines()[1:]
                    said = " | ".join(line.strip() for line in lines[-2:] if line.strip())
                    reason = f"rejected by `modelport serve`: {said}"
                    log(f"  modelport rejected {option}; running without it ({reason})")
                    ctx.modelport.drop(option, reason)
                    continue
            raise exc


def measure(target: Target, ctx: Context, args: argparse.Namespace, round_no: int) -> list[Run]:
    """Start one configuration, run all its points, stop it."""
    wanted = points(target, args)
    missing = ctx.unavailable(target)
    if missing:
        return [Run(round_no, target, p, failure=missing) for p in wanted]
    log(f"[round {round_no}] {target.key}: starting")
    try:
        server = start(target, ctx, args, round_no)
    except StartFailed as exc:
        log(f"  failed to start: {exc}")
        return [Run(round_no, target, p, failure=f"did not start: {exc}") for p in wanted]
    runs: list[Run] = []
    try:
        broken: dict[str, str] = {}
        for model in target.models:
            problem = check_answer(server.http_port, target, model, ctx, timeout=20)
            if problem:
                log(f"  {model}: bad answer: {problem}")
                broken[model] = f"bad answer: {problem}"
        for point in wanted:
            runs.append(run_point(server, target, point, ctx, args, round_no, broken))
    finally:
        server.stop()
    return runs


def run_point(
    server: ServerProcess,
    target: Target,
    point: Point,
    ctx: Context,
    args: argparse.Namespace,
    round_no: int,
    broken: dict[str, str],
) -> Run:
    if point.model in broken:
        return Run(round_no, target, point, failure=broken[point.model])
    if server.exit_code() is not None:
        return Run(round_no, target, point, failure=f"server exited: {tail(server.log_path)}")
    try:
        if point.transport == "REST":
            body = ctx.body_file(target, point.model)
            path = infer_path(point.model)
            headers = ctx.headers(target)
            if args.warmup > 0:
                load.wrk(server.http_port, path, body, point.connections, args.warmup, headers)
            sample = load.wrk(
                server.http_port, path, body, point.connections, args.duration, headers
            )
        else:
            if server.grpc_port is None:
                reason = ctx.modelport.rejected.get("--grpc-port", "no gRPC port")
                return Run(round_no, target, point, failure=f"no gRPC: {reason}")
            sample = load.grpc(
                server.grpc_port,
                point.model,
                ctx.datatype(target),
                ctx.models[point.model].row,
                ctx.grpc_output(target),
                point.connections,
                args.duration,
                args.warmup,
                ctx.headers(target),
            )
    except load.LoadFailed as exc:
        log(f"  {point.label()}: load failed: {exc}")
        return Run(round_no, target, point, failure=str(exc))
    log(
        f"  {point.label():<18} {sample.rps:>9,.0f} req/s  p50 {sample.p50_ms:6.2f} ms  "
        f"p99 {sample.p99_ms:7.2f} ms  errors {sample.errors}"
    )
    return Run(round_no, target, point, sample=sample)


def labels(targets: list[Target], ctx: Context) -> dict[str, str]:
    out = {}
    for t in targets:
        if t.family == "modelport":
            extra = ctx.modelport.args + (ctx.modelport.mlp_args if "mlp" in t.models else [])
            shown = " ".join(a for a in extra)
            out[t.key] = f"{t.label} ({ctx.artifact}{', ' + shown if shown else ''})"
        elif t.family in ("floor", "bare"):
            workers = ctx.modelport.workers
            name = "floor" if t.family == "floor" else t.label
            out[t.key] = f"{name}, {workers} worker{'s' if workers > 1 else ''}"
    return out


def results_markdown(
    tables: list[str], notes: list[str], command: str, args: argparse.Namespace, load_avg: str
) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Produced by `bench/run` (see bench/README.md for what is measured and how to read it).",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{command}`",
        f"- machine: {environment.machine()}",
        f"- load average (1 min) at start and end: {load_avg} (anything above the benchmark's own "
        "load means other processes shared the CPUs)",
    ]
    lines += [f"- {name}: {value}" for name, value in environment.versions()]
    lines += [
        f"- method: {args.rounds} alternating round(s); per point {args.warmup:g} s warm-up "
        f"(discarded) then {args.duration:g} s measured; wrk -t{load.WRK_THREADS} (REST), "
        "h2load -t1 (gRPC); "
        "single-row JSON requests; medians over rounds, errors summed over rounds; modelport "
        "with authentication on (an API key on every request) unless marked --no-auth",
        "",
    ]
    for table in tables:
        lines += [table, ""]
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    targets = plan(args)
    if args.list:
        for t in all_targets(args.models):
            print(f"{t.key:<22} {t.label}")
        return 0

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so every `finally` stops its server

    signal.signal(signal.SIGTERM, on_term)
    OUT.mkdir(parents=True, exist_ok=True)
    log("== training and exporting the benchmark models")
    built = models.build(OUT / "models")
    cli = ModelportCli(
        shlex.split(args.modelport_args),
        shlex.split(args.modelport_mlp_args),
        exe=args.modelport_exe.resolve(),
    )
    cli.probe()
    for option, reason in cli.rejected.items():
        log(f"modelport: not passing {option}: {reason}")
    chosen = {k: v for k, v in built.items() if k in args.models}
    home = modelport_home.ModelportHome(OUT / "modelport-home")
    if any(t.family == "modelport" for t in targets):
        registering = (
            ", registering the .joblib files" if args.modelport_artifact == "joblib" else ""
        )
        log(f"== modelport: a fresh MODELPORT_HOME with an API key{registering}")
        home = modelport_home.prepare(cli.exe, home.path, chosen, args.modelport_artifact)
        for line in home.notes + ([home.unavailable] if home.unavailable else []):
            log(f"modelport: {line}")
    ctx = Context(OUT, chosen, args.modelport_artifact, cli, home)
    per_point = args.duration + args.warmup
    n_points = sum(len(points(t, args)) for t in targets)
    log(
        f"== {len(targets)} configurations x {args.rounds} round(s), {n_points} points each round, "
        f"about {args.rounds * (n_points * (per_point + 0.5) + len(targets) * 8) / 60:.0f} min"
    )
    load_at_start = os.getloadavg()[0]
    runs: list[Run] = []
    interrupted = False
    try:
        for round_no in range(1, args.rounds + 1):
            shift = (round_no - 1) % len(targets)
            for target in targets[shift:] + targets[:shift]:
                runs += measure(target, ctx, args, round_no)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: reporting what was measured")
    summaries = report.summarize(runs, [t.key for t in targets])
    tables = [report.table(summaries, labels(targets, ctx))]
    auth_cost = report.auth_cost(summaries) if home.api_key else None
    if auth_cost:
        tables.append(auth_cost)
    access_log_cost = report.access_log_cost(summaries)
    if access_log_cost:
        tables.append(access_log_cost)
    headroom = report.headroom(summaries)
    if headroom:
        tables.append(headroom)
    extra = [f"modelport option {o} not used: {r}" for o, r in cli.rejected.items()] + home.notes
    notes = report.notes(summaries, extra)
    print("\n\n".join(tables))
    for note in notes:
        print(f"- {note}")
    (OUT / "results.json").write_text(
        json.dumps(
            [
                {
                    "round": r.round,
                    "target": r.target.key,
                    "point": asdict(r.point),
                    "sample": asdict(r.sample) if r.sample else None,
                    "failure": r.failure,
                }
                for r in runs
            ],
            indent=1,
        )
    )
    if args.write_results and interrupted:
        log("interrupted: bench/RESULTS.md keeps the last complete run")
    elif args.write_results:
        command = "bench/run " + " ".join(shlex.quote(a) for a in argv)
        load_avg = f"{load_at_start:.2f} / {os.getloadavg()[0]:.2f}"
        markdown = results_markdown(tables, notes, command.strip(), args, load_avg)
        (BENCH / "RESULTS.md").write_text(markdown)
        log("wrote bench/RESULTS.md")
    total_errors = sum(s.errors for s in summaries)
    return 0 if total_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
