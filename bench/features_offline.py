"""Point-in-time retrieval (issue 18): modelport, one hand-written DuckDB query, and Feast 0.67.

    .venv/bin/python -m bench.features_offline                      # small: 10,000 x 100,000
    .venv/bin/python -m bench.features_offline --entity-rows 200000 --feature-rows 2000000
    .venv/bin/python bench/setup_peers.py features-feast             # once, for Feast's rows
    .venv/bin/python -m bench.features_offline --entity-rows 1000000 --feature-rows 10000000 \\
        --runs 3 --json bench/.out/features_offline/full.json
    .venv/bin/python -m bench.features_offline --feast-file --memory-cap-gb 12 --timeout 400

**Data** (numpy, seed 18), written once per size as Parquet under
``bench/.out/features_offline/N_M/``: an entity frame of N rows (``user_id`` among N/10 users,
``merchant_id`` among 100, ``event_timestamp`` uniform over 30 days, and an ``order_id``), and
two feature views of M rows each over the same users and 30 days (plus 3 days before):
``user_stats`` keyed by ``user_id``, with a created timestamp (event times repeat, so the
created-time tie-break matters), features ``a0``-``a4`` (float64); ``user_merchant`` keyed by
``(user_id, merchant_id)``, no created column, features ``b0``-``b4`` (int64 and float64).
Both have ``ttl = 2 days``.

**Sides**, each run in a process of its own (so its peak RSS, ``ru_maxrss``, is its own), after
reading the entity Parquet (not timed): ``modelport``,
``FeatureStore.get_historical_features(entity, 10 refs).to_arrow()``; ``duckdb``, the
hand-written DuckDB query a person would write for the same answer over the same files (dedupe
by ``QUALIFY``, two ``ASOF LEFT JOIN``s, the ttl as ``CASE``), to Arrow; ``feast-duckdb``, Feast
0.67 with ``offline_store: type: duckdb`` (``bench/peers/feast_offline.py`` in the
``features-feast`` environment; left out with a note when that is not installed); with
``--feast-file`` also ``feast-file``, Feast's default file (dask/pandas) store, run once. Each
process is watched: past ``--memory-cap-gb`` of RSS or ``--timeout`` seconds it is killed and
reported so. The ``--runs`` rounds alternate the sides' order (one process per side per round);
medians over the rounds are reported, with the ratios Feast / modelport and modelport / query.

**Correctness.** The first round's results are written (not timed) sorted by ``order_id``.
Every side must return every entity row exactly once. All cells of each side are compared with
modelport's; and ``--check-rows`` entity rows (seeded sample) are recomputed by brute force in
Python from the source rows of their users (read with a pyarrow filter, no SQL): the latest row
with ``T - 2 days <= event_ts <= T``, ties to the latest created time (``user_stats``); rows
where a tie is left undecided (equal event and created times) are counted, not judged.
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


FEATURES = [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
FEAST_PYTHON = Path(__file__).resolve().parent / ".venvs" / "features-feast" / "bin" / "python"
FEAST_SCRIPT = Path(__file__).resolve().parent / "peers" / "feast_offline.py"


def _checksum(table: pa.Table) -> list[float]:
    sums = [pc.sum(table[c].cast(pa.float64())).as_py() or 0.0 for c in FEATURES]
    return [round(s, 6) for s in sums] + [table[c].null_count for c in FEATURES]


def _run_one(side: str, folder: Path, out: Path | None) -> None:
    entity = pq.read_table(folder / "entity.parquet")
    fn = _modelport if side == "modelport" else _duckdb
    t0 = time.perf_counter()
    result = fn(folder, entity)
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if out is not None:
        pq.write_table(result, out)
    print(
        json.dumps(
            {
                "side": side,
                "seconds": seconds,
                "peak_rss_mb": round(rss_mb, 1),
                "rows": result.num_rows,
            }
        )
    )


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _watched(cmd: list[str], cap_mb: float, timeout: float) -> dict[str, object]:
    """Run one side's process; kill it past ``cap_mb`` of RSS or ``timeout`` seconds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0, seen, why = time.monotonic(), 0.0, None
    while proc.poll() is None:
        seen = max(seen, _rss_mb(proc.pid))
        if seen > cap_mb:
            why = f"killed: RSS passed the {cap_mb / 1024:.0f} GiB cap"
        elif time.monotonic() - t0 > timeout:
            why = f"killed: still running after {timeout:.0f} s"
        if why:
            proc.kill()
            proc.wait()
            break
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    elapsed = time.monotonic() - t0
    if why or proc.returncode != 0:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        return {
            "failed": why or f"exit {proc.returncode}: {tail}",
            "wall_s": elapsed,
            "seen_rss_mb": seen,
        }
    result: dict[str, object] = json.loads(stdout.strip().splitlines()[-1])
    result["wall_s"] = elapsed
    return result


def _side_cmd(side: str, args: argparse.Namespace, folder: Path, out: Path | None) -> list[str]:
    if side.startswith("feast-"):
        cmd = [str(FEAST_PYTHON), str(FEAST_SCRIPT), "--data", str(folder)]
        cmd += ["--store", side.removeprefix("feast-")]
    else:
        cmd = [sys.executable, "-m", "bench.features_offline", "--side", side]
        cmd += ["--entity-rows", str(args.entity_rows), "--feature-rows", str(args.feature_rows)]
    if out is not None:
        cmd += ["--out", str(out)]
    return cmd


def _brute_force(folder: Path, sample: int) -> tuple[dict[int, list[object]], int]:
    """Expected feature values of ``sample`` entity rows (by ``order_id``), computed in Python.

    Returns:
        Per order id, the ten expected values (None where nothing qualifies), and how many
        (row, view) pairs had an undecided tie (those rows are left out of the expectation).
    """
    entity = pq.read_table(folder / "entity.parquet")
    rng = np.random.default_rng(1818)
    picked = np.sort(rng.choice(entity.num_rows, size=min(sample, entity.num_rows), replace=False))
    rows = entity.take(pa.array(picked)).to_pylist()
    users = sorted({r["user_id"] for r in rows})
    ttl = np.timedelta64(2 * DAY_S, "s")

    def load(name: str) -> dict[object, list[dict[str, object]]]:
        table = pq.read_table(folder / name, filters=[("user_id", "in", users)])
        by_key: dict[object, list[dict[str, object]]] = {}
        for rec in table.to_pylist():
            key = rec["user_id"] if "a0" in rec else (rec["user_id"], rec["merchant_id"])
            by_key.setdefault(key, []).append(rec)
        return by_key

    stats, pairs = load("user_stats.parquet"), load("user_merchant.parquet")
    expected: dict[int, list[object]] = {}
    ties = 0
    for r in rows:
        t = np.datetime64(r["event_timestamp"], "s")
        out: list[object] = []
        undecided = False
        for recs, cols, order in (
            (stats.get(r["user_id"], []), FEATURES[:5], ("event_ts", "created")),
            (pairs.get((r["user_id"], r["merchant_id"]), []), FEATURES[5:], ("event_ts",)),
        ):
            ok = [x for x in recs if t - ttl <= np.datetime64(x["event_ts"], "s") <= t]
            if not ok:
                out += [None] * 5
                continue
            rank = [tuple(x[k] for k in order) for x in ok]
            best = max(rank)
            winners = [x for x, k in zip(ok, rank, strict=True) if k == best]
            if len({tuple(x[c] for c in cols) for x in winners}) > 1:
                undecided = True
            out += [winners[0][c] for c in cols]
        if undecided:
            ties += 1
        else:
            expected[r["order_id"]] = out
    return expected, ties


def _compare(folder: Path, sides: list[str], check_rows: int) -> dict[str, dict[str, object]]:
    """Row keeping, full agreement with modelport, and the brute-force sample, per side."""
    n = pq.read_metadata(folder / "entity.parquet").num_rows
    expected, ties = _brute_force(folder, check_rows)
    ids = pa.array(sorted(expected), pa.int64())
    base = pq.read_table(folder / "result-modelport.parquet")
    report: dict[str, dict[str, object]] = {}
    for side in sides:
        path = folder / f"result-{side}.parquet"
        if not path.exists():
            continue
        table = pq.read_table(path)
        order_ids = table["order_id"].combine_chunks()
        keeps = (
            table.num_rows == n
            and pc.count_distinct(order_ids).as_py() == n
            and pc.min(order_ids).as_py() == 0
            and pc.max(order_ids).as_py() == n - 1
        )
        diff = 0
        if table.num_rows == base.num_rows and keeps:
            for c in FEATURES:
                mine = base[c].cast(pa.float64())
                theirs = table[c].cast(pa.float64())
                same = pc.or_kleene(
                    pc.equal(mine, theirs), pc.and_(pc.is_null(mine), pc.is_null(theirs))
                )
                diff += table.num_rows - pc.sum(pc.fill_null(same, False).cast(pa.int64())).as_py()
        sample = table.filter(pc.is_in(table["order_id"], value_set=ids)).to_pylist()
        wrong = 0
        for rec in sample:
            want = expected[rec["order_id"]]
            got = [rec[c] for c in FEATURES]
            got = [None if isinstance(v, float) and v != v else v for v in got]
            wrong += sum(
                1
                for w, g in zip(want, got, strict=True)
                if not (w is None and g is None)
                and (w is None or g is None or float(w) != float(g))
            )
        report[side] = {
            "rows": table.num_rows,
            "keeps_every_row_once": keeps,
            "cells_differing_from_modelport": diff if keeps else None,
            "sample_rows_checked": len(sample),
            "sample_cells_wrong": wrong,
            "sample_rows_with_undecided_ties": ties,
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entity-rows", type=int, default=10_000)
    parser.add_argument("--feature-rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="alternating rounds")
    parser.add_argument("--no-feast", action="store_true", help="modelport and the query only")
    parser.add_argument(
        "--feast-file", action="store_true", help="also Feast's file (dask) store, once"
    )
    parser.add_argument("--check-rows", type=int, default=2_000, help="brute-force sample")
    parser.add_argument("--memory-cap-gb", type=float, default=12.0, help="kill a side past it")
    parser.add_argument("--timeout", type=float, default=600.0, help="kill a side after it (s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--side", choices=["modelport", "duckdb"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = OUT / f"{args.entity_rows}_{args.feature_rows}"
    if args.side:
        _run_one(args.side, folder, args.out)
        return
    _generate(folder, args.entity_rows, args.feature_rows)
    sides = ["modelport", "duckdb"]
    notes = []
    if not args.no_feast:
        if FEAST_PYTHON.exists():
            sides.append("feast-duckdb")
        else:
            notes.append("Feast not installed: python bench/setup_peers.py features-feast")
    for old in folder.glob("result-*.parquet"):
        old.unlink()
    cap_mb = args.memory_cap_gb * 1024
    load = [os.getloadavg()[0]]
    runs: dict[str, list[dict[str, object]]] = {s: [] for s in sides}
    for r in range(args.runs):
        shift = r % len(sides)
        for side in sides[shift:] + sides[:shift]:
            out = folder / f"result-{side}.parquet" if r == 0 else None
            res = _watched(_side_cmd(side, args, folder, out), cap_mb, args.timeout)
            runs[side].append(res)
            print(f"  round {r + 1} {side}: {json.dumps(res)}", flush=True)
    if args.feast_file and FEAST_PYTHON.exists():
        out = folder / "result-feast-file.parquet"
        res = _watched(_side_cmd("feast-file", args, folder, out), cap_mb, args.timeout)
        runs["feast-file"] = [res]
        print(f"  feast-file: {json.dumps(res)}", flush=True)
    load.append(os.getloadavg()[0])
    summary: dict[str, dict[str, object]] = {}
    for side, results in runs.items():
        good = [x for x in results if "failed" not in x]
        summary[side] = {
            "runs": len(results),
            "failed": [x["failed"] for x in results if "failed" in x],
            "seconds": [x["seconds"] for x in good],
            "median_s": statistics.median([x["seconds"] for x in good]) if good else None,
            "peak_rss_mb": [x["peak_rss_mb"] for x in good],
            "max_peak_rss_mb": max((x["peak_rss_mb"] for x in good), default=None),
        }
    checks = _compare(folder, list(runs), args.check_rows)
    print(
        f"entity rows {args.entity_rows:,}, feature rows {args.feature_rows:,} per view; "
        f"{args.runs} alternating rounds; load average {load[0]:.2f} -> {load[1]:.2f}"
    )
    mp = summary["modelport"]["median_s"]
    for side, row in summary.items():
        med = row["median_s"]
        if med is None:
            print(f"  {side:<13} failed: {row['failed']}")
            continue
        ratio = f"{med / mp:6.2f}x modelport" if isinstance(mp, float) else ""
        print(
            f"  {side:<13} median {med:8.3f} s  all {[round(x, 2) for x in row['seconds']]}"
            f"  peak RSS max {row['max_peak_rss_mb']:8.1f} MB  {ratio}"
        )
    for side, c in checks.items():
        print(f"  check {side:<13} {json.dumps(c)}")
    for note in notes:
        print(f"  note: {note}")
    results = {
        "entity_rows": args.entity_rows,
        "feature_rows": args.feature_rows,
        "load_average": load,
        "runs": runs,
        "summary": summary,
        "checks": checks,
    }
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
