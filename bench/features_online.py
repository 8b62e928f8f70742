"""Online reads (issue 18), in-process: modelport against Feast 0.67, and against the raw store.

    .venv/bin/python bench/setup_peers.py features-feast        # once, for Feast's rows
    .venv/bin/python -m bench.features_online                    # both parts, defaults below
    .venv/bin/python -m bench.features_online --part products --product-entities 10000 \\
        --rounds 1 --iterations 1000                             # a quick run
    .venv/bin/python -m bench.features_online --part products --product-entities 100000 \\
        --rounds 3 --iterations 5000 --json bench/.out/features_online/products.json

Issue 18's targets on this machine: 1 x 10 p99 under 0.25 ms (SQLite) and 0.5 ms (Redis);
100 x 10 under 3 ms. The issue reports Feast 0.67 at 1 x 10 p99 0.62 ms (SQLite) / 0.82 ms
(Redis), 100 x 10 about 20 ms.

**Part ``products``** (the issue's comparison). ``bench/.out/features_online/N/online.parquet``
holds two rows per entity for ``--product-entities`` users (seed 18; ``user_id``, ``event_ts``
1-47 hours before a fixed ``now``, ``created``, ``f0``-``f9`` float64); ``batches.json`` the
entity ids to read: ``--iterations`` single ids and a fifth of that (at least 500) lists of
100, each plus 200 warm-up reads, and 100 ids whose values are checked. Each product, in a
process of its own (modelport's here with ``--side``, Feast's ``bench/peers/feast_online.py``
in the ``features-feast`` environment), defines the view the product's way (entity ``user``,
10 Float64 features, ttl 7 days), materialises the file into a fresh online store the product's
way (timed: ``FeatureStore.materialize`` / Feast's ``store.materialize``, window the last 10
days), then times each ``get_online_features(refs, [{"user_id": i}, ...]).to_dict()`` with
``perf_counter_ns`` (modelport passes ``now=``; Feast has no such argument and does not apply
the ttl online). Backends: SQLite (a file in a temporary folder) and Redis
(``--redis-host-db``, default ``127.0.0.1:6379`` db 13: modelport under a fresh
``modelport-bench:<hex>:`` prefix, Feast under a fresh project; both delete their keys at the
end). ``--rounds`` rounds alternate the products' order; medians over rounds of each p50/p99.
The check batch's values must equal the newest row per entity in the Parquet file.

**Part ``layers``** (what the store adds over its storage). Each backend is loaded with
``--entities`` entities (keys ``("user", i)``), 10 float features each, then read at random
entities with a TTL that every row is within, through ``OnlineStore.read``. The baseline reads
the same rows straight from the store in the same run, interleaved with the store's reads in
blocks of 100 so that both see the same machine load: SQLite, the store's own ``SELECT entity,
event_us, data ... WHERE view = ? AND entity IN (...)`` on a ``sqlite3`` connection, rows
fetched but not decoded; Redis, ``GET`` of the entity's key (1 entity) or ``MGET`` of the 100
keys, values not decoded. The ratio says what the store adds on top: key encoding, input
checks, JSON decoding, TTL and statuses. p50 and p99 are over ``--iterations`` reads (a fifth
of that for 100 x 10), after a warm-up of 200.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import redis

from modelport.features.online import (
    FeatureStatus,
    OnlineStore,
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
    open_online_store,
)

VIEW = "user_stats"
FEATURES = [f"f{j}" for j in range(10)]
NOW = datetime(2024, 6, 1, tzinfo=UTC)
TTL = timedelta(days=1)
BLOCK = 100
WARMUP = 200


def _load(store: OnlineStore, entities: int) -> None:
    rng = random.Random(7)
    for start in range(0, entities, 1000):
        keys = [("user", i) for i in range(start, min(start + 1000, entities))]
        values = {f: [rng.random() for _ in keys] for f in FEATURES}
        event = NOW - timedelta(hours=1)
        store.write(VIEW, keys, [event] * len(keys), [None] * len(keys), values)


def _percentiles(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "mean_ms": statistics.fmean(ordered) / 1e6}


def _interleaved(
    store_read: Callable[[list[tuple[Any, ...]]], object],
    raw_read: Callable[[list[tuple[Any, ...]]], object],
    batches: list[list[tuple[Any, ...]]],
) -> tuple[list[int], list[int]]:
    for keys in batches[:WARMUP]:
        store_read(keys)
        raw_read(keys)
    gc.collect()
    store_ns: list[int] = []
    raw_ns: list[int] = []
    clock = time.perf_counter_ns
    for start in range(WARMUP, len(batches), BLOCK):
        block = batches[start : start + BLOCK]
        for fn, out in ((raw_read, raw_ns), (store_read, store_ns)):
            for keys in block:
                t0 = clock()
                fn(keys)
                out.append(clock() - t0)
    return store_ns, raw_ns


def _raw_sqlite(path: Path) -> Callable[[list[tuple[Any, ...]]], object]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    sqls = {
        n: "SELECT entity, event_us, data FROM online_features WHERE view = ? AND entity IN ("
        + ",".join("?" * n)
        + ")"
        for n in (1, 100)
    }

    def read(keys: list[tuple[Any, ...]]) -> object:
        encoded = [orjson.dumps(k) for k in keys]
        return conn.execute(sqls[len(keys)], (VIEW, *encoded)).fetchall()

    return read


def _raw_redis(url: str, prefix: str) -> Callable[[list[tuple[Any, ...]]], object]:
    client = redis.Redis.from_url(url)
    head = prefix.encode() + orjson.dumps(VIEW) + b":"

    def read(keys: list[tuple[Any, ...]]) -> object:
        if len(keys) == 1:
            return client.get(head + orjson.dumps(keys[0]))
        return client.mget([head + orjson.dumps(k) for k in keys])

    return read


def _bench_backend(name: str, args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    prefix = f"modelport-bench:{secrets.token_hex(6)}:"
    config: SqliteOnlineStoreConfig | RedisOnlineStoreConfig
    if name == "sqlite":
        config = SqliteOnlineStoreConfig(path=folder / "online.db")
    else:
        config = RedisOnlineStoreConfig(url=args.redis, prefix=prefix)
    rng = random.Random(11)
    rows = []
    with open_online_store(config) as store:
        _load(store, args.entities)
        raw = (
            _raw_sqlite(folder / "online.db")
            if name == "sqlite"
            else _raw_redis(args.redis, prefix)
        )

        def store_read(keys: list[tuple[Any, ...]]) -> object:
            return store.read(VIEW, keys, FEATURES, NOW, TTL)

        for width, iterations in ((1, args.iterations), (100, max(args.iterations // 5, 500))):
            batches = [
                [("user", rng.randrange(args.entities)) for _ in range(width)]
                for _ in range(iterations + WARMUP)
            ]
            check = store.read(VIEW, batches[0], FEATURES, NOW, TTL)
            if any(status is not FeatureStatus.PRESENT for status in check.statuses["f0"]):
                raise RuntimeError(f"{name}: the loaded rows do not read back as present")
            store_ns, raw_ns = _interleaved(store_read, raw, batches)
            mine, base = _percentiles(store_ns), _percentiles(raw_ns)
            rows.append(
                {
                    "backend": name,
                    "shape": f"{width}x10",
                    "iterations": len(store_ns),
                    "store": mine,
                    "raw": base,
                    "p99_ratio": mine["p99_ms"] / base["p99_ms"],
                    "p50_ratio": mine["p50_ms"] / base["p50_ms"],
                }
            )
        store.delete_view(VIEW)
    return rows


OUT = Path(__file__).resolve().parent / ".out" / "features_online"
FEAST_PYTHON = Path(__file__).resolve().parent / ".venvs" / "features-feast" / "bin" / "python"
FEAST_SCRIPT = Path(__file__).resolve().parent / "peers" / "feast_online.py"
PRODUCT_FEATURES = [f"f{j}" for j in range(10)]


def _product_data(n: int, iterations: int) -> Path:
    """Write the products' Parquet file and batches (once per size and iteration count)."""
    folder = OUT / str(n)
    spec_path = folder / "batches.json"
    if spec_path.exists() and json.loads(spec_path.read_text())["iterations"] == iterations:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(18)
    now = np.datetime64(NOW.replace(tzinfo=None), "us")
    users = np.concatenate([np.arange(n), np.arange(n)])
    event = now - rng.integers(3_600, 47 * 3_600, 2 * n).astype("timedelta64[s]")
    table = {
        "user_id": users,
        "event_ts": event,
        "created": event + rng.integers(0, 60, 2 * n).astype("timedelta64[s]"),
    }
    table |= {f: rng.normal(size=2 * n) for f in PRODUCT_FEATURES}
    pq.write_table(pa.table(table), folder / "online.parquet")
    pick = random.Random(11)
    batches = {
        "1x10": [[pick.randrange(n)] for _ in range(iterations + WARMUP)],
        "100x10": [
            [pick.randrange(n) for _ in range(100)]
            for _ in range(max(iterations // 5, 500) + WARMUP)
        ],
    }
    spec = {
        "now": NOW.isoformat(),
        "iterations": iterations,
        "batches": batches,
        "check": [pick.randrange(n) for _ in range(100)],
    }
    spec_path.write_text(json.dumps(spec))
    return folder


def _expected(folder: Path, ids: list[int]) -> dict[str, list[float]]:
    """The newest row's values of each entity in ``ids`` (latest event, then created time)."""
    rows = pq.read_table(folder / "online.parquet", filters=[("user_id", "in", ids)]).to_pylist()
    best: dict[int, dict[str, Any]] = {}
    for row in rows:
        have = best.get(row["user_id"])
        if have is None or (row["event_ts"], row["created"]) > (
            have["event_ts"],
            have["created"],
        ):
            best[row["user_id"]] = row
    return {f: [best[i][f] for i in ids] for f in PRODUCT_FEATURES}


def _product_modelport(folder: Path, backend: str, redis_host_db: str) -> dict[str, Any]:
    """modelport's side of the products part, in this process."""
    from modelport.features import Entity, FeatureStore, FeatureView, Field, FileSource, Float64

    spec = json.loads((folder / "batches.json").read_text())
    now = datetime.fromisoformat(spec["now"])
    user = Entity(name="user", join_keys=["user_id"])
    view = FeatureView(
        name="user_stats",
        entities=[user],
        schema=[Field(name=f, dtype=Float64) for f in PRODUCT_FEATURES],
        source=FileSource(
            path=str(folder / "online.parquet"),
            timestamp_field="event_ts",
            created_timestamp_column="created",
        ),
        ttl=timedelta(days=7),
    )
    with tempfile.TemporaryDirectory(prefix="modelport-bench-online-") as tmp:
        config: SqliteOnlineStoreConfig | RedisOnlineStoreConfig
        if backend == "sqlite":
            config = SqliteOnlineStoreConfig(path=Path(tmp) / "online.db")
        else:
            prefix = f"modelport-bench:{secrets.token_hex(6)}:"
            config = RedisOnlineStoreConfig(url=f"redis://{redis_host_db}", prefix=prefix)
        with FeatureStore([user, view], online_store=config) as store:
            try:
                t0 = time.perf_counter()
                store.materialize(now - timedelta(days=10), now, progress=False)
                materialize_s = time.perf_counter() - t0
                refs = [f"user_stats:{f}" for f in PRODUCT_FEATURES]
                check = store.get_online_features(
                    refs, [{"user_id": i} for i in spec["check"]], now=now
                ).to_dict()
                shapes: dict[str, Any] = {}
                clock = time.perf_counter_ns
                gc.collect()
                for shape, batches in spec["batches"].items():
                    rows = [[{"user_id": i} for i in ids] for ids in batches]
                    samples = []
                    for n, entity_rows in enumerate(rows):
                        t0 = clock()
                        store.get_online_features(refs, entity_rows, now=now).to_dict()
                        if n >= WARMUP:
                            samples.append(clock() - t0)
                    shapes[shape] = _percentiles(samples) | {"iterations": len(samples)}
            finally:
                store.online_store().delete_view("user_stats")
    return {
        "side": "modelport",
        "backend": backend,
        "at": datetime.now(UTC).isoformat(),
        "materialize_s": materialize_s,
        "shapes": shapes,
        "check": {f: check[f] for f in PRODUCT_FEATURES},
    }


def _products(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Alternating rounds of modelport and Feast per backend; one result per process run."""
    folder = _product_data(args.product_entities, args.iterations)
    spec = json.loads((folder / "batches.json").read_text())
    expected = _expected(folder, spec["check"])
    sides = ["modelport"]
    if not args.no_feast:
        if FEAST_PYTHON.exists():
            sides.append("feast")
        else:
            print("note: Feast not installed: python bench/setup_peers.py features-feast")
    db = args.redis_host_db.partition("/")[2]
    runs = []
    for r in range(args.rounds):
        for backend in args.backend or ["sqlite", "redis"]:
            order = sides if r % 2 == 0 else sides[::-1]
            for side in order:
                if side == "modelport":
                    cmd = [sys.executable, "-m", "bench.features_online", "--side", "modelport"]
                    cmd += ["--product-entities", str(args.product_entities)]
                    cmd += ["--backend", backend, "--redis-host-db", args.redis_host_db]
                else:
                    cmd = [str(FEAST_PYTHON), str(FEAST_SCRIPT), "--data", str(folder)]
                    cmd += ["--backend", backend, "--redis-db", db or "13"]
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=1_800)
                if done.returncode != 0:
                    tail = " | ".join(done.stderr.strip().splitlines()[-3:])
                    res: dict[str, Any] = {"side": side, "backend": backend, "failed": tail}
                else:
                    res = json.loads(done.stdout.strip().splitlines()[-1])
                    got = res.pop("check")
                    res["check_equal"] = all(
                        [float(v) for v in got[f]] == expected[f] for f in PRODUCT_FEATURES
                    )
                res["round"] = r + 1
                runs.append(res)
                brief = {k: v for k, v in res.items() if k != "at"}
                print(f"  round {r + 1} {backend} {side}: {json.dumps(brief)}", flush=True)
    return runs


def _products_table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted(
        {(r["backend"], r["side"]) for r in runs}, key=lambda k: (k[0], k[1] != "modelport")
    )
    for backend, side in keys:
        mine = [r for r in runs if (r["backend"], r["side"]) == (backend, side) and "shapes" in r]
        for shape in ("1x10", "100x10"):
            if not mine:
                rows.append({"backend": backend, "side": side, "shape": shape, "failed": True})
                continue
            p50 = [r["shapes"][shape]["p50_ms"] for r in mine]
            p99 = [r["shapes"][shape]["p99_ms"] for r in mine]
            rows.append(
                {
                    "backend": backend,
                    "side": side,
                    "shape": shape,
                    "p50_ms": statistics.median(p50),
                    "p99_ms": statistics.median(p99),
                    "p99_each": p99,
                    "materialize_s": statistics.median([r["materialize_s"] for r in mine]),
                    "check_equal": all(r["check_equal"] for r in mine),
                }
            )
    for row in rows:
        base = next(
            (
                x
                for x in rows
                if x["side"] == "modelport"
                and x["backend"] == row["backend"]
                and x["shape"] == row["shape"]
                and "p99_ms" in x
            ),
            None,
        )
        if base and "p99_ms" in row:
            row["p99_vs_modelport"] = row["p99_ms"] / base["p99_ms"]
    return rows


def main(argv: list[str]) -> int:
    """Run the benchmark and print a table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["all", "products", "layers"], default="all")
    parser.add_argument("--entities", type=int, default=10_000, help="layers part")
    parser.add_argument("--product-entities", type=int, default=100_000, help="products part")
    parser.add_argument("--iterations", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3, help="products part")
    parser.add_argument("--no-feast", action="store_true")
    parser.add_argument("--backend", action="append", choices=["sqlite", "redis"])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="layers part")
    parser.add_argument("--redis-host-db", default="127.0.0.1:6379/13", help="products part")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--side", choices=["modelport"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        folder = OUT / str(args.product_entities)
        (backend,) = args.backend
        print(json.dumps(_product_modelport(folder, backend, args.redis_host_db)))
        return 0
    out: dict[str, Any] = {"load_average_start": os.getloadavg()[0]}
    if args.part in ("all", "products"):
        runs = _products(args)
        table = _products_table(runs)
        out |= {"product_runs": runs, "products": table}
        print(
            f"products: {args.product_entities:,} entities, {args.rounds} alternating rounds, "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        print(
            f"{'backend':8} {'product':10} {'shape':7} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'p99 x mp':>8} {'mat. s':>7}  p99 each round / values equal"
        )
        for r in table:
            if "p99_ms" not in r:
                print(f"{r['backend']:8} {r['side']:10} {r['shape']:7} failed")
                continue
            print(
                f"{r['backend']:8} {r['side']:10} {r['shape']:7} {r['p50_ms']:8.4f} "
                f"{r['p99_ms']:8.4f} {r.get('p99_vs_modelport', 0):8.2f} "
                f"{r['materialize_s']:7.2f}  {[round(x, 3) for x in r['p99_each']]} "
                f"{r['check_equal']}"
            )
    if args.part in ("all", "layers"):
        out["layers"] = _layers(args)
    out["load_average_end"] = os.getloadavg()[0]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


def _layers(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelport-bench-online-") as folder:
        for name in args.backend or ["sqlite", "redis"]:
            results.extend(_bench_backend(name, args, Path(folder)))
    load = os.getloadavg()[0]
    print(f"layers: load average (1 min): {load:.2f}; python {sys.version.split()[0]}")
    print(
        f"{'backend':8} {'shape':7} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'raw p50':>8} {'raw p99':>8} {'p50 x':>6} {'p99 x':>6}"
    )
    for r in results:
        s, b = r["store"], r["raw"]
        print(
            f"{r['backend']:8} {r['shape']:7} {r['iterations']:6d} {s['p50_ms']:8.4f} "
            f"{s['p99_ms']:8.4f} {b['p50_ms']:8.4f} {b['p99_ms']:8.4f} "
            f"{r['p50_ratio']:6.2f} {r['p99_ratio']:6.2f}"
        )
    return results


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
