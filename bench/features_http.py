"""Online features over HTTP (issue 18): ``POST /v1/features/online`` against ``feast serve``.

    .venv/bin/python bench/setup_peers.py features-feast      # once
    .venv/bin/python -m bench.features_http                   # 10,000 users, 2 rounds of 10 s
    .venv/bin/python -m bench.features_http --users 100000 --rounds 3 --seconds 15

One feature view ``user_stats`` (entity ``user``, 10 Float64 features ``f0``-``f9``, ttl 7
days) over the same generated Parquet file, materialised by each product its own way
(``modelport features materialize``; ``feast materialize``), both online stores SQLite. Then
each server is started alone on a loopback port, one worker each:

- modelport: ``modelport controlplane`` with authentication on (a viewer API key in every
  request's ``Authorization`` header), the platform's own feature routes;
- Feast 0.67: ``feast serve`` (uvicorn, ``--workers 1``, access log off) from the
  ``features-feast`` environment, no authentication (it has none).

``wrk`` (one thread, ``--connections`` keep-alive connections, ``--seconds`` per side) sends
``POST`` bodies asking for the 10 features of one entity, the user id cycling through a fixed
list of 1,000 ids (bench/wrk/features_online.lua); the rounds alternate the sides. Every answer
is checked once before the load: both servers must return the same 10 values for the same
user. Reported: requests per second per side and round, the medians and their ratio, and the
non-2xx counts (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FEAST_BIN = BENCH / ".venvs" / "features-feast" / "bin"
MODELPORT = str(Path(sys.executable).with_name("modelport"))
LUA = BENCH / "wrk" / "features_online.lua"
FEATURES = [f"f{j}" for j in range(10)]
IDS = 1_000

DEFINITIONS = """\
from datetime import timedelta

from {package} import Entity, FeatureView, Field, FileSource
from {types} import Float64, Int64

user = Entity(name="user", join_keys=["user_id"]{value_type})
user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    schema=[{schema}],
    source=FileSource(path="{path}", timestamp_field="event_timestamp"),
    ttl=timedelta(days=7),
)
"""


def write_data(folder: Path, users: int, now: datetime) -> Path:
    """Two rows per user (the newer one wins), 10 float features; returns the Parquet path."""
    rng = np.random.default_rng(18)
    path = folder / "user_stats.parquet"
    ids = np.concatenate([np.arange(users), np.arange(users)])
    times = [now - timedelta(hours=2)] * users + [now - timedelta(hours=1)] * users
    columns = {"user_id": ids, "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC"))}
    for name in FEATURES:
        columns[name] = np.round(rng.normal(size=ids.size), 6)
    pq.write_table(pa.table(columns), path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"no server at {url} within {deadline_s} s")


def setup_modelport(home: Path, data: Path, now: datetime) -> tuple[dict[str, str], str]:
    """Apply and materialise with the CLI; return the environment and a viewer key."""
    env = {**os.environ, "MODELPORT_HOME": str(home), "MODELPORT_LOG__ACCESS": "false"}
    repo = home / "repo"
    repo.mkdir(parents=True)
    (repo / "definitions.py").write_text(
        DEFINITIONS.format(
            package="modelport.features",
            types="modelport.features",
            value_type="",
            schema=", ".join(f'Field(name="{f}", dtype=Float64)' for f in FEATURES),
            path=data,
        )
    )

    def run(*args: str) -> str:
        done = subprocess.run([MODELPORT, *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"modelport {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    run("features", "apply", str(repo))
    start, end = (now - timedelta(days=1)).isoformat(), now.isoformat()
    run("features", "materialize", "--start", start, "--end", end)
    created = run("keys", "create", "--role", "viewer", "--scope", "*", "--json")
    return env, json.loads(created)["key"]


def setup_feast(repo: Path, data: Path, now: datetime) -> None:
    """A Feast repository with a SQLite online store, applied and materialised with its CLI."""
    repo.mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(
        "project: bench_http\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        "offline_store:\n  type: duckdb\n"
        f"online_store:\n  type: sqlite\n  path: {repo / 'online.db'}\n"
        "entity_key_serialization_version: 3\n"
    )
    (repo / "definitions.py").write_text(
        DEFINITIONS.format(
            package="feast",
            types="feast.types",
            value_type="",
            schema=", ".join(
                ['Field(name="user_id", dtype=Int64)']
                + [f'Field(name="{f}", dtype=Float64)' for f in FEATURES]
            ),
            path=data,
        )
    )
    feast = str(FEAST_BIN / "feast")
    for args in (
        ["apply"],
        ["materialize", (now - timedelta(days=1)).isoformat(), now.isoformat()],
    ):
        done = subprocess.run([feast, *args], cwd=repo, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"feast {args[0]} failed: {done.stderr[-2000:]}")


def wrk(url: str, path: str, seconds: int, connections: int, key: str | None) -> dict[str, float]:
    env = {**os.environ, "WRK_PATH": path, "WRK_KEY": key or "", "WRK_IDS": str(IDS)}
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(LUA), url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
    return {"rps": rps, "non_2xx": float(errors.group(1)) if errors else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not (FEAST_BIN / "feast").exists():
        raise SystemExit("no Feast environment: python bench/setup_peers.py features-feast")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="features-http-") as tmp:
        folder = Path(tmp)
        data = write_data(folder, args.users, now)
        env, key = setup_modelport(folder / "home", data, now)
        setup_feast(folder / "feast", data, now)
        mp_port, feast_port = free_port(), free_port()
        servers = {
            "modelport": subprocess.Popen(
                [MODELPORT, "controlplane", "--port", str(mp_port)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
            "feast": subprocess.Popen(
                [str(FEAST_BIN / "feast"), "serve", "--port", str(feast_port), "--workers", "1",
                 "--no-access-log"],
                cwd=folder / "feast", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
        }  # fmt: skip
        sides = {
            "modelport": (f"http://127.0.0.1:{mp_port}", "/v1/features/online", key),
            "feast": (f"http://127.0.0.1:{feast_port}", "/get-online-features", None),
        }
        try:
            for url, _, _ in sides.values():
                wait_ready(url)
            check(sides)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
            for round_ in range(args.rounds):
                order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
                for name in order:
                    url, path, auth = sides[name]
                    result = wrk(url, path, args.seconds, args.connections, auth)
                    results[name].append(result)
                    print(f"round {round_ + 1} {name}: {json.dumps(result)}", flush=True)
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(timeout=15)
    medians = {name: statistics.median(r["rps"] for r in runs) for name, runs in results.items()}
    print(
        json.dumps(
            {
                "users": args.users,
                "connections": args.connections,
                "seconds": args.seconds,
                "median_rps": medians,
                "modelport_over_feast": medians["modelport"] / medians["feast"],
            }
        )
    )
    return 0


def check(sides: dict[str, tuple[str, str, str | None]]) -> None:
    """Both servers answer the same values for the same user before any load."""
    answers: dict[str, dict[str, object]] = {}
    for name, (url, path, key) in sides.items():
        headers = {"authorization": f"Bearer {key}"} if key else {}
        body = {"features": [f"user_stats:{f}" for f in FEATURES], "entities": {"user_id": [7]}}
        reply = httpx.post(url + path, json=body, headers=headers, timeout=10)
        reply.raise_for_status()
        answer = reply.json()
        names = answer["metadata"]["feature_names"]  # Feast orders them its own way
        answers[name] = {n: r["values"][0] for n, r in zip(names, answer["results"], strict=True)}
    if answers["modelport"] != answers["feast"]:
        raise SystemExit(f"the servers disagree: {answers}")


if __name__ == "__main__":
    sys.exit(main())
