"""Reading an experiment's rows from the prediction log: ``experiment_rows`` + ``arm_counts``.

    .venv/bin/python -m bench.experiments_query [--rows 10000000] [--feedback 1000000] [--runs 5]
    .venv/bin/python -m bench.experiments_query --random-ids     # callers' own (random) ids
    .venv/bin/python -m bench.experiments_query --backend postgresql --rows 1000000 \\
        --feedback 100000 [--pg "host=127.0.0.1 port=5432 user=postgres dbname=postgres"]

What the experiments job reads each time it evaluates (issue 16's target: the whole decision in
under 10 s for 10 million logged predictions and 1 million feedback rows on the 2-core machine;
this part should take at most about 6 s of it): every answering arm's latency, failure and CPU
time per request, the labelled rows (feedback joined to the logged prediction by request id,
the label cut out of the outputs JSON), a shadow's answers paired with the callers', and the
non-shadow count per variant.

The log is made once with fixed seeds and kept under ``bench/.out/experiments-query/`` (the
Parquet folder ``ROWSr/``, the feedback ``feedback-ROWSr-FEEDBACK.parquet``; about 60 bytes a
record on disk): segments as ``ParquetSink`` writes them (its schema, version 2; zstd;
``FOLDER/DEPLOYMENT/DAY/``), about 100,000 answered requests each plus their shadow copies,
spread over the two days of the window, and one more day before the window (10% more segments)
that the query must skip. Two arms 50/50; request ids as modelport makes them (a random prefix
per worker process and a counter; ``--random-ids``: 32 random hex digits, as callers' UUIDs);
outputs as a float32 model's answers are logged, ``{"label":[1],"probabilities":
[[0.28371649980545044,0.7162835001945496]]}``; 2% of requests failed (``{}``, an error kind:
internal, unavailable or invalid_input); CPU time on every answer; a shadow copy of 10% of the
requests (its label agrees 90% of the time, 1% of its copies failed); feedback for answered
requests drawn at random, 1% of it for unknown ids.

PostgreSQL: a throw-away database (``modelport_bench_<hex>``, dropped at the end), migrated by
``PostgresSink``, loaded by ``COPY`` from the same generated segments (the first ``--rows``
answered requests' segments), then ``VACUUM ANALYZE``.

Each run is a fresh process (``python -m bench.experiments_query --measure ...``) that calls
both twice: the first call pays for importing DuckDB and for memory the process never touched,
the second is what the control plane's job pays each time; peak resident memory is the
process's (``VmHWM``) after the first call. The figures are the median over runs. The
segments are in the page cache (they were just written or read), as the recent days an
experiment reads are on a running server.
"""

from __future__ import annotations

import argparse
import binascii
import io
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".out" / "experiments-query"
DEPLOYMENT = "fraud"
START = datetime(2026, 12, 7, tzinfo=UTC)
WINDOW = (START, START + timedelta(days=2))
SEGMENT_ROWS = 100_000
ERROR_KINDS = ("internal", "unavailable", "invalid_input")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the log -------------------------------------------------------------------------------------


def _hex_ids(raw: bytes, n: int) -> pa.Array:
    """32-hex ids from ``16 * n`` bytes, without a Python string each."""
    text = binascii.hexlify(raw)
    offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def _random_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """``n`` random 32-hex request ids (ids callers send, such as UUIDs)."""
    return _hex_ids(rng.bytes(16 * n), n)


class _Workers:
    """Request ids as modelport makes them (``service/access.py`` ``new_request_id``).

    A random 64-bit prefix per worker process and a counter; two workers, restarted daily.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._day: date | None = None
        self._prefixes = np.zeros((2, 8), np.uint8)
        self._counters = np.zeros(2, np.uint64)

    def ids(self, day: date, n: int) -> pa.Array:
        if day != self._day:
            self._day = day
            self._prefixes = self._rng.integers(0, 256, (2, 8), dtype=np.uint8)
            self._counters[:] = 0
        worker = self._rng.integers(0, 2, n)
        counter = np.empty(n, np.uint64)
        for w in (0, 1):
            mine = worker == w
            counter[mine] = self._counters[w] + np.arange(np.count_nonzero(mine), dtype=np.uint64)
            self._counters[w] += np.count_nonzero(mine)
        raw = np.empty((n, 16), np.uint8)
        raw[:, :8] = self._prefixes[worker]
        raw[:, 8:] = counter.astype(">u8").view(np.uint8).reshape(n, 8)
        return _hex_ids(raw.tobytes(), n)


def _outputs(p: np.ndarray, error: np.ndarray) -> list[str]:
    """The outputs JSON as the log writes a float32 model's answer (full float precision)."""
    positive = p.astype(np.float32)
    negative = (1 - positive).astype(np.float32)
    labels = (positive >= 0.5).astype(int)
    return [
        "{}" if bad else f'{{"label":[{label}],"probabilities":[[{q0!r},{q1!r}]]}}'
        for q0, q1, label, bad in zip(
            negative.astype(np.float64).tolist(),
            positive.astype(np.float64).tolist(),
            labels.tolist(),
            error.tolist(),
            strict=True,
        )
    ]


def _segment(rng: np.random.Generator, ids: pa.Array, start: datetime, span: timedelta) -> pa.Table:
    """Answered requests ``ids`` in ``[start, start + span)`` and the shadow copies of 10%."""
    from modelport.monitoring.prediction_log import SCHEMA_VERSION, arrow_schema

    n = len(ids)
    offsets_us = np.sort(rng.integers(0, int(span.total_seconds() * 1e6), n))
    times = np.datetime64(start.replace(tzinfo=None), "us") + offsets_us.astype("timedelta64[us]")
    arm_b = rng.random(n) < 0.5
    failed = rng.random(n) < 0.02
    error = np.where(failed, rng.choice(np.array(ERROR_KINDS, dtype=object), n), None)
    score = np.clip(rng.beta(2, 2, n) + np.where(arm_b, 0.02, 0.0), 0.0, 1.0)
    latency = rng.lognormal(np.log(2.0), 0.4, n) + np.where(arm_b, 0.1, 0.0)
    cpu = np.where(failed, np.nan, latency * 0.6)
    features = rng.random((n, 4)).round(3).tolist()
    inputs = [f'{{"x":[{row}]}}' for row in features]
    # Shadow copies: 10% of the requests, answered a little later by variant "s".
    copied = np.flatnonzero(rng.random(n) < 0.10)
    m = len(copied)
    agree = rng.random(m) < 0.9
    shadow_score = np.where(agree, score[copied] + rng.normal(0, 0.02, m), 1 - score[copied])
    shadow_score = np.clip(shadow_score, 0.0, 1.0)
    shadow_failed = rng.random(m) < 0.01
    shadow_error = np.where(shadow_failed, "internal", None)
    columns: dict[str, Any] = {
        "request_id": pa.concat_arrays([ids, ids.take(pa.array(copied))]),
        "time": np.concatenate([times, times[copied] + np.timedelta64(3, "ms")]),
        "variant": ["b" if b else "a" for b in arm_b.tolist()] + ["s"] * m,
        "shadow": np.concatenate([np.zeros(n, bool), np.ones(m, bool)]),
        "latency_ms": np.concatenate([latency, rng.lognormal(np.log(2.5), 0.4, m)]),
        "outputs": _outputs(score, failed) + _outputs(shadow_score, shadow_failed),
        "error": list(error) + list(shadow_error),
        "cpu_ms": np.concatenate([cpu, np.full(m, np.nan)]),
        "inputs": inputs + [inputs[i] for i in copied.tolist()],
    }
    total = n + m
    schema = arrow_schema()
    columns |= {
        "schema_version": np.full(total, SCHEMA_VERSION, np.int16),
        "deployment": [DEPLOYMENT] * total,
        "model": [DEPLOYMENT] * total,
        "model_version": ["1"] * (n + m),
        "identity": [None] * total,
    }
    arrays = []
    for field in schema:
        values = columns[field.name]
        if field.name == "cpu_ms":
            values = pa.array(values, field.type, from_pandas=True)  # NaN: not measured
        arrays.append(pa.array(values, field.type) if not isinstance(values, pa.Array) else values)
    return pa.Table.from_arrays(arrays, schema=schema)


def build_log(rows: int, feedback_rows: int, random_ids: bool) -> tuple[Path, Path]:
    """The Parquet log of ``rows`` answered requests (made once) and its feedback."""
    name = f"{rows}r-random-ids" if random_ids else f"{rows}r"
    folder = CACHE / name
    feedback_path = CACHE / f"feedback-{name}-{feedback_rows}.parquet"
    done = folder / ".complete"
    if not done.exists():
        log(f"making the log: {rows:,} answered requests under {folder} (once)")
        started = time.perf_counter()
        rng = np.random.default_rng(16)
        workers = _Workers(rng)
        segments = max(1, rows // SEGMENT_ROWS)
        days = 2
        per_day = -(-segments // days)
        before = max(1, segments // 10)  # a day outside the window
        plan = [(START - timedelta(days=1), i, before) for i in range(before)]
        plan += [
            (START + timedelta(days=s // per_day), s % per_day, per_day) for s in range(segments)
        ]
        for number, (day, slot, slots) in enumerate(plan):
            span = timedelta(days=1) / slots
            n = rows // segments if day >= START else SEGMENT_ROWS
            ids = _random_ids(rng, n) if random_ids else workers.ids(day.date(), n)
            table = _segment(rng, ids, day + slot * span, span)
            target = folder / DEPLOYMENT / day.date().isoformat()
            target.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, target / f"seg-{number:05d}.parquet", compression="zstd")
        done.touch()
        log(f"  made in {time.perf_counter() - started:.0f} s")
    if not feedback_path.exists():
        log(f"making {feedback_rows:,} feedback rows")
        feedback = _feedback(folder, feedback_rows)
        pq.write_table(feedback, feedback_path)
    return folder, feedback_path


def _feedback(folder: Path, n: int) -> pa.Table:
    """Feedback for ``n`` requests: answered ones of the window drawn at random, 1% unknown."""
    rng = np.random.default_rng(17)
    paths = sorted(
        str(p)
        for p in (folder / DEPLOYMENT).glob("*/*.parquet")
        if date.fromisoformat(p.parent.name) >= START.date()
    )
    ids = pq.ParquetDataset(paths, filters=[("shadow", "==", False)]).read(
        columns=["request_id", "outputs"]
    )
    known = n - n // 100
    picked = ids.take(pa.array(np.sort(rng.choice(ids.num_rows, known, replace=False))))
    label = np.array(["1" in text[10:13] for text in picked["outputs"].to_pylist()])
    truth = np.where(rng.random(known) < 0.8, label, ~label).astype(int).astype(str)
    request_ids = pa.concat_arrays(
        [picked["request_id"].combine_chunks(), _random_ids(rng, n - known)]
    )
    return pa.table(
        {
            "request_id": request_ids,
            "kind": pa.array(["label"] * n),
            "truth": pa.array(truth.tolist() + ["1"] * (n - known)),
            "value": pa.nulls(n, pa.float64()),
        }
    )


# --- PostgreSQL ----------------------------------------------------------------------------------


def load_postgres(admin: str, folder: Path, rows: int) -> tuple[str, str]:
    """A new database holding the first ``rows`` answered requests' segments of the window."""
    import psycopg
    import pyarrow.csv as csv
    from psycopg import sql

    from modelport.monitoring.prediction_postgres import PostgresSink

    name = f"modelport_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin) | {"dbname": name}
    url = "postgresql+psycopg://{user}@{host}:{port}/{dbname}".format(
        **{"user": "postgres", "host": "127.0.0.1", "port": 5432} | info
    )
    sink = PostgresSink(url)
    sink.write([])  # migrates
    sink.close()
    paths = sorted(
        p
        for p in (folder / DEPLOYMENT).glob("*/*.parquet")
        if date.fromisoformat(p.parent.name) >= START.date()
    )
    loaded = 0
    started = time.perf_counter()
    with psycopg.connect(psycopg.conninfo.make_conninfo(admin, dbname=name)) as conn:
        with conn.cursor() as cursor:
            for path in paths:
                if loaded >= rows:
                    break
                table = pq.read_table(path)
                loaded += table.num_rows - sum(table["shadow"].to_pylist())
                data = io.BytesIO()
                csv.write_csv(table, data, csv.WriteOptions(include_header=False))
                columns = ", ".join(table.column_names)
                with cursor.copy(f"COPY prediction_log ({columns}) FROM STDIN (FORMAT csv)") as cp:
                    cp.write(data.getbuffer())
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE prediction_log")
    log(f"loaded {loaded:,} answered requests into {name} in {time.perf_counter() - started:.0f} s")
    return name, url


def drop_postgres(admin: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# --- measuring -----------------------------------------------------------------------------------


def measure(source: str, feedback_path: Path) -> dict[str, Any]:
    """One run, in this (fresh) process: the timings and what was read.

    The first call pays for importing DuckDB and for memory the process never touched; the
    second is what a long-running control plane's job pays each time.
    """
    from modelport.monitoring.log_query import arm_counts, experiment_rows

    feedback = pq.read_table(feedback_path)
    where: Path | str = source if source.startswith("postgresql") else Path(source)
    out: dict[str, Any] = {}
    for call in ("first", "second"):
        started = time.perf_counter()
        rows = experiment_rows(
            where,
            DEPLOYMENT,
            *WINDOW,
            arms=["a", "b"],
            shadows=["s"],
            task="classification",
            output="label",
            score_output="probabilities",
            feedback=feedback,
        )
        middle = time.perf_counter()
        counts = arm_counts(where, DEPLOYMENT, *WINDOW)
        ended = time.perf_counter()
        out[f"{call}_rows_s"] = middle - started
        out[f"{call}_counts_s"] = ended - middle
        out[f"{call}_s"] = ended - started
        if call == "first":
            out["peak_rss_mib"] = peak_rss_mib()
    shadow = rows.shadows["s"]
    return out | {
        "requests": {name: len(arm.latency_ms) for name, arm in rows.arms.items()},
        "labelled_rows": {name: len(arm.predicted) for name, arm in rows.arms.items()},
        "failed": {name: int(arm.failed.sum()) for name, arm in rows.arms.items()},
        "feedback": rows.feedback,
        "feedback_unmatched": rows.feedback_unmatched,
        "shadow_pairs": shadow.pairs,
        "shadow_failures": shadow.failures,
        "shadow_agreement": float(shadow.agree.mean()) if len(shadow.agree) else None,
        "counts": counts,
    }


def peak_rss_mib() -> float:
    """This process's peak resident memory since it started.

    ``VmHWM`` where Linux has it: ``getrusage``'s ``ru_maxrss`` survives ``exec`` and so counts
    the parent's memory at ``fork`` (this harness's, after it made the log: 2.4 GB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def runs(source: str, feedback_path: Path, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        child = subprocess.run(
            [sys.executable, "-m", "bench.experiments_query", "--measure", source]
            + ["--feedback-file", str(feedback_path)],
            cwd=BENCH.parent,
            capture_output=True,
            text=True,
            check=True,
        )
        out.append(json.loads(child.stdout))
        log(
            f"  run {i + 1}/{n}: {out[-1]['first_s']:.2f} s, then {out[-1]['second_s']:.2f} s, "
            f"{out[-1]['peak_rss_mib']:.0f} MiB"
        )
    return out


def report(title: str, results: list[dict[str, Any]], rows: int, feedback_rows: int) -> list[str]:
    def cell(key: str, unit: str = "s", digits: int = 2) -> str:
        values = [r[key] for r in results]
        return (
            f"{statistics.median(values):,.{digits}f} {unit} | "
            f"{min(values):,.{digits}f}-{max(values):,.{digits}f} {unit}"
        )

    last = results[-1]
    load = os.getloadavg()[0]
    return [
        f"### {title}: {rows:,} answered requests, {feedback_rows:,} feedback rows",
        "",
        "| what | median | range |",
        "|---|---:|---:|",
        f"| first call: experiment_rows | {cell('first_rows_s')} |",
        f"| first call: arm_counts | {cell('first_counts_s')} |",
        f"| first call: both | {cell('first_s')} |",
        f"| second call: both | {cell('second_s')} |",
        f"| peak resident memory (first call) | {cell('peak_rss_mib', 'MiB', 0)} |",
        "",
        f"Read: requests per arm {last['requests']}, failed {last['failed']}, labelled rows "
        f"{last['labelled_rows']}, feedback {last['feedback']:,} ({last['feedback_unmatched']:,}"
        f" unmatched), shadow pairs {last['shadow_pairs']:,} (agreement "
        f"{last['shadow_agreement']:.3f}, {last['shadow_failures']:,} failed copies), "
        f"counts {last['counts']}. {len(results)} runs, each a fresh process (first call) "
        f"calling twice; load average at the end {load:.2f}.",
        "",
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--feedback", type=int, default=None, help="default: rows / 10")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=["parquet", "postgresql"], default="parquet")
    parser.add_argument(
        "--pg", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
    )
    parser.add_argument(
        "--random-ids",
        action="store_true",
        help="random request ids (as callers' UUIDs) instead of modelport's own",
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--feedback-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, Path(args.feedback_file))))
        return 0
    feedback_rows = args.feedback if args.feedback is not None else args.rows // 10
    folder, feedback_path = build_log(args.rows, feedback_rows, args.random_ids)
    lines = [
        f"## Experiments: reading the log ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)",
        "",
    ]
    if args.backend == "parquet":
        results = runs(str(folder), feedback_path, args.runs)
        lines += report("Parquet (DuckDB)", results, args.rows, feedback_rows)
    else:
        name, url = load_postgres(args.pg, folder, args.rows)
        try:
            results = runs(url, feedback_path, args.runs)
        finally:
            drop_postgres(args.pg, name)
        lines += report("PostgreSQL", results, args.rows, feedback_rows)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
