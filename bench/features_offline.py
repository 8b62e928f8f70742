"""Point-in-time retrieval (issue 18): ``get_historical_features`` against one hand-written query.

    .venv/bin/python -m bench.features_offline                      # small: 10,000 x 100,000
    .venv/bin/python -m bench.features_offline --entity-rows 200000 --feature-rows 2000000
    .venv/bin/python -m bench.features_offline --entity-rows 1000000 --feature-rows 10000000

**Data** (numpy, seed 18), written once per size as Parquet under
``bench/.out/features_offline/N_M/``: an entity frame of N rows (``user_id`` among N/10 users,
``merchant_id`` among 100, ``event_timestamp`` uniform over 30 days, and an ``order_id``), and
two feature views of M rows each over the same users and 30 days (plus 3 days before):
``user_stats`` keyed by ``user_id``, with a created timestamp (event times repeat, so the
created-time tie-break matters), features ``a0``-``a4`` (float64); ``user_merchant`` keyed by
``(user_id, merchant_id)``, no created column, features ``b0``-``b4`` (int64 and float64).
Both have ``ttl = 2 days``.

**Method.** Each side runs in its own process (so its peak RSS is its own), after reading the
entity Parquet into an Arrow table (not timed): modelport's
``FeatureStore.get_historical_features(entity, 10 refs).to_arrow()``, and the hand-written
DuckDB query a person would write for the same answer over the same files (dedupe by
``QUALIFY``, two ``ASOF LEFT JOIN``s, the ttl as ``CASE``), to Arrow. Each is run ``--runs``
times; the median time is reported, with the process's peak RSS (``ru_maxrss``) and a checksum
of the result (both sides must agree).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent / ".out" / "features_offline"
DAY_S = 86_400
START = np.datetime64("2024-01-01T00:00:00", "s")


def _generate(folder: Path, n: int, m: int) -> None:
    if (folder / "done").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(18)
    users = max(1_000, n // 10)
    pq.write_table(
        pa.table(
            {
                "user_id": rng.integers(0, users, n),
                "merchant_id": rng.integers(0, 100, n),
                "event_timestamp": START + rng.integers(0, 30 * DAY_S, n).astype("timedelta64[s]"),
                "order_id": np.arange(n),
            }
        ),
        folder / "entity.parquet",
    )
    event = START + (rng.integers(-3 * DAY_S, 30 * DAY_S, m) // 60 * 60).astype("timedelta64[s]")
    stats = {
        "user_id": rng.integers(0, users, m),
        "event_ts": event,
        "created": event + rng.integers(0, 3_600, m).astype("timedelta64[s]"),
    }
    stats |= {f"a{i}": rng.normal(size=m) for i in range(5)}
    pq.write_table(pa.table(stats), folder / "user_stats.parquet", row_group_size=1_000_000)
    pairs = {
        "user_id": rng.integers(0, users, m),
        "merchant_id": rng.integers(0, 100, m),
        "event_ts": START + rng.integers(-3 * DAY_S, 30 * DAY_S, m).astype("timedelta64[s]"),
    }
    pairs |= {f"b{i}": rng.integers(0, 1_000, m) for i in range(3)}
    pairs |= {f"b{i}": rng.normal(size=m) for i in range(3, 5)}
    pq.write_table(pa.table(pairs), folder / "user_merchant.parquet", row_group_size=1_000_000)
    (folder / "done").write_text("")


def _modelport(folder: Path, entity: pa.Table) -> pa.Table:
    from modelport.features import (
        Entity,
        FeatureStore,
        FeatureView,
        Field,
        FileSource,
        Float64,
        Int64,
    )

    user = Entity(name="user", join_keys=["user_id"])
    merchant = Entity(name="merchant", join_keys=["merchant_id"])
    stats = FeatureView(
        name="user_stats",
        entities=[user],
        schema=[Field(name=f"a{i}", dtype=Float64) for i in range(5)],
        source=FileSource(
            path=str(folder / "user_stats.parquet"),
            timestamp_field="event_ts",
            created_timestamp_column="created",
        ),
        ttl=timedelta(days=2),
    )
    pairs = FeatureView(
        name="user_merchant",
        entities=[user, merchant],
        schema=[Field(name=f"b{i}", dtype=Int64 if i < 3 else Float64) for i in range(5)],
        source=FileSource(path=str(folder / "user_merchant.parquet"), timestamp_field="event_ts"),
        ttl=timedelta(days=2),
    )
    store = FeatureStore([user, merchant, stats, pairs])
    refs = [f"user_stats:a{i}" for i in range(5)] + [f"user_merchant:b{i}" for i in range(5)]
    return store.get_historical_features(entity, refs).to_arrow()


HAND_WRITTEN = """
WITH s AS (
  SELECT * FROM read_parquet('{folder}/user_stats.parquet')
  QUALIFY row_number() OVER (PARTITION BY user_id, event_ts ORDER BY created DESC) = 1
), p AS (SELECT * FROM read_parquet('{folder}/user_merchant.parquet'))
SELECT e.*,
  {a_cols},
  {b_cols}
FROM entity e
ASOF LEFT JOIN s ON e.user_id = s.user_id AND e.event_timestamp >= s.event_ts
ASOF LEFT JOIN p ON e.user_id = p.user_id AND e.merchant_id = p.merchant_id
  AND e.event_timestamp >= p.event_ts
ORDER BY e.order_id
"""


def _duckdb(folder: Path, entity: pa.Table) -> pa.Table:
    import duckdb

    fresh = "{t}.event_ts >= e.event_timestamp - INTERVAL 2 DAY"
    a = ", ".join(f"CASE WHEN {fresh.format(t='s')} THEN s.a{i} END AS a{i}" for i in range(5))
    b = ", ".join(f"CASE WHEN {fresh.format(t='p')} THEN p.b{i} END AS b{i}" for i in range(5))
    with duckdb.connect() as con:
        con.register("entity", entity)
        sql = HAND_WRITTEN.format(folder=folder, a_cols=a, b_cols=b)
        result: pa.Table = con.sql(sql).to_arrow_table()
    return result


def _checksum(table: pa.Table) -> list[float]:
    cols = [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
    sums = [pc.sum(table[c].cast(pa.float64())).as_py() or 0.0 for c in cols]
    return [round(s, 6) for s in sums] + [table[c].null_count for c in cols]


def _run_one(side: str, folder: Path, runs: int) -> None:
    entity = pq.read_table(folder / "entity.parquet")
    fn = _modelport if side == "modelport" else _duckdb
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn(folder, entity)
        times.append(time.perf_counter() - t0)
    assert result is not None and result.num_rows == entity.num_rows
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "side": side,
                "seconds": statistics.median(times),
                "all_seconds": times,
                "peak_rss_mb": round(rss_mb, 1),
                "rows": result.num_rows,
                "checksum": _checksum(result),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entity-rows", type=int, default=10_000)
    parser.add_argument("--feature-rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--side", choices=["modelport", "duckdb"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = OUT / f"{args.entity_rows}_{args.feature_rows}"
    if args.side:
        _run_one(args.side, folder, args.runs)
        return
    _generate(folder, args.entity_rows, args.feature_rows)
    results = {}
    for side in ("modelport", "duckdb"):
        cmd = [sys.executable, "-m", "bench.features_offline", "--side", side]
        cmd += ["--entity-rows", str(args.entity_rows), "--feature-rows", str(args.feature_rows)]
        cmd += ["--runs", str(args.runs)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[side] = json.loads(done.stdout.strip().splitlines()[-1])
    mp, dd = results["modelport"], results["duckdb"]
    print(
        f"entity rows {args.entity_rows:,}, feature rows {args.feature_rows:,} per view, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for r in (mp, dd):
        print(
            f"  {r['side']:<10} {r['seconds']:8.3f} s (median of {len(r['all_seconds'])})"
            f"  peak RSS {r['peak_rss_mb']:8.1f} MB"
        )
    print(f"  results agree: {mp['checksum'] == dd['checksum']}")
    (folder / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
