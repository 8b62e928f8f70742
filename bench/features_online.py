"""Online-store read latency, in-process: 1 entity x 10 features and 100 entities x 10 features.

    .venv/bin/python -m bench.features_online [--entities 10000] [--iterations 5000] \\
        [--backend sqlite --backend redis] [--redis redis://127.0.0.1:6379/0] [--json FILE]

Issue 18's targets on this machine: 1 x 10 p99 under 0.25 ms (SQLite) and 0.5 ms (Redis);
100 x 10 under 3 ms. Feast 0.67 reads 1 x 10 at p99 0.62 ms (SQLite) / 0.82 ms (Redis).

Each backend is loaded with ``--entities`` entities (keys ``("user", i)``), 10 float features
each, then read at random entities with a TTL that every row is within. Each read's wall time
is taken with ``perf_counter_ns``; p50 and p99 are over ``--iterations`` reads (a fifth of
that for 100 x 10), after a warm-up of 200. The baseline reads the same rows straight from the
store in the same run, interleaved with the store's reads in blocks of 100 so that both see
the same machine load: SQLite, the store's own ``SELECT entity, event_us, data ... WHERE view =
? AND entity IN (...)`` on a ``sqlite3`` connection, rows fetched but not decoded; Redis,
``GET`` of the entity's key (1 entity) or ``MGET`` of the 100 keys, values not decoded. The
ratio says what the store adds on top: key encoding, input checks, JSON decoding, TTL and
statuses.

Redis keys live under a fresh ``modelport-bench:<hex>:`` prefix and are deleted at the end;
the SQLite file is in a temporary folder.
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
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
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


def main(argv: list[str]) -> int:
    """Run the benchmark and print a table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=5_000)
    parser.add_argument("--backend", action="append", choices=["sqlite", "redis"])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelport-bench-online-") as folder:
        for name in args.backend or ["sqlite", "redis"]:
            results.extend(_bench_backend(name, args, Path(folder)))
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}")
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
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
