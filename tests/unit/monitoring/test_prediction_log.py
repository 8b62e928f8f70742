"""The prediction log: records round-trip through Parquet, a full queue drops and counts, a
graceful stop loses nothing, and kill -9 loses at most the last flush interval."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.core.errors import InvalidInput
from modelport.monitoring.prediction_log import (
    REDACTED,
    SCHEMA_VERSION,
    Batch,
    Exchange,
    ParquetSink,
    PredictionLog,
    PredictionRecord,
    Pruned,
    RejectedBatch,
    arrow_schema,
    protect,
    prune_predictions,
    read_predictions,
)

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def record(i: int, deployment: str = "fraud", at: datetime = T0) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"r-{i}",
        time=at + timedelta(milliseconds=i),
        deployment=deployment,
        variant="current" if i % 10 else "candidate",
        model=deployment,
        model_version="3",
        shadow=False,
        latency_ms=0.5 + i / 1000,
        identity="5d41402abc4b" if i % 2 else None,
        inputs=json.dumps({"x": [i, i + 1]}),
        outputs=json.dumps({"label": [i % 3]}),
    )


def test_records_round_trip_and_a_close_writes_everything(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval_s=30)
    for i in range(500):
        assert log.log(record(i, "fraud" if i % 2 else "churn"))
    log.close()
    stats = log.stats()
    assert (stats.logged, stats.written, stats.dropped) == (500, 500, 0)
    table = read_predictions(tmp_path, deployment="fraud")
    assert table.num_rows == 250
    first = table.slice(0, 1).to_pylist()[0]
    assert first == {
        "schema_version": SCHEMA_VERSION,
        "request_id": "r-1",
        "time": T0 + timedelta(milliseconds=1),
        "deployment": "fraud",
        "variant": "current",
        "model": "fraud",
        "model_version": "3",
        "shadow": False,
        "latency_ms": 0.501,
        "identity": "5d41402abc4b",
        "inputs": '{"x": [1, 2]}',
        "outputs": '{"label": [1]}',
        "error": None,
        "cpu_ms": None,
    }
    assert read_predictions(tmp_path).num_rows == 500
    later = read_predictions(tmp_path, since=T0 + timedelta(milliseconds=400))
    assert later.num_rows == 100


def test_segments_are_plain_parquet_in_a_folder_per_deployment_and_day(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval_s=30)
    log.log(record(1, at=T0))
    log.log(record(2, at=T0 + timedelta(days=1)))
    log.close()
    files = sorted(p.relative_to(tmp_path).parts[:2] for p in tmp_path.rglob("*.parquet"))
    assert files == [("fraud", "2026-12-07"), ("fraud", "2026-12-08")]
    assert not list(tmp_path.rglob("*.tmp"))
    one = next(tmp_path.rglob("*.parquet"))
    assert pq.read_table(one).column("request_id").to_pylist() in (["r-1"], ["r-2"])
    assert oct(tmp_path.joinpath("fraud").stat().st_mode & 0o777) == "0o700"


def test_records_reach_disk_within_the_flush_interval(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval_s=0.2)
    try:
        log.log(record(1))
        deadline = time.monotonic() + 5
        while read_predictions(tmp_path).num_rows == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read_predictions(tmp_path).num_rows == 1
    finally:
        log.close()


def test_a_full_queue_drops_counts_and_never_blocks(tmp_path: Path, caplog: object) -> None:
    log = PredictionLog(tmp_path, flush_interval_s=30, max_queue=100)
    started = time.perf_counter()
    accepted = [log.log(record(i)) for i in range(1000)]
    assert time.perf_counter() - started < 1.0
    assert accepted.count(True) == 100 and accepted.count(False) == 900
    log.close()
    assert (log.stats().written, log.stats().dropped) == (100, 900)
    warnings = [r for r in caplog.records if "queue full" in r.getMessage()]  # type: ignore[attr-defined]
    assert len(warnings) == 1  # one line, not one per dropped record


_WRITER = """
import sys, time, json
from datetime import UTC, datetime
from pathlib import Path
from modelport.monitoring.prediction_log import PredictionLog, PredictionRecord
log = PredictionLog(Path(sys.argv[1]), flush_interval_s=float(sys.argv[2]))
i = 0
while True:
    log.log(PredictionRecord(f"r-{i}", datetime.now(UTC), "fraud", "v", "fraud", "1", False,
                             0.1, None, "{}", "{}"))
    i += 1
    if i % 100 == 0:
        print(i, flush=True)
    time.sleep(0.0005)
"""


def test_kill_9_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    interval = 0.5
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path), str(interval)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        time.sleep(3.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with proc.stdout:
        logged = max(int(line) for line in proc.stdout.read().split())
    times = read_predictions(tmp_path).column("time").to_pylist()
    kept = len(times)
    assert kept > 0 and not list(tmp_path.rglob("*.tmp"))
    # Records are logged at a steady rate; what was lost is what the last interval gathered.
    rate = kept / (times[-1] - times[0]).total_seconds()
    lost_s = (logged - kept) / rate
    assert lost_s <= interval + 0.25, (logged, kept, rate, lost_s)


def test_prune_by_age_then_by_size(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval_s=30)
    for day in range(5):  # one segment per day, 2026-12-07 to 2026-12-11
        log.log(record(day, at=T0 + timedelta(days=day)))
    log.log(record(9, deployment="churn", at=T0))
    log.close()
    now = datetime(2026, 12, 12, 12, 0, tzinfo=UTC)
    # Older than 3 days: only days whose last moment is 3 days back (12-07 and 12-08).
    removed = prune_predictions(tmp_path, now, max_age_s=3 * 86_400)
    assert [p.parent.name for p in removed] == ["2026-12-07", "2026-12-07", "2026-12-08"]
    assert not (tmp_path / "churn").exists()  # emptied folders go too
    left = sorted(tmp_path.rglob("*.parquet"), key=lambda p: p.parent.name)
    total = sum(p.stat().st_size for p in left)
    removed = prune_predictions(tmp_path, now, max_bytes=total - left[0].stat().st_size)
    assert [p.parent.name for p in removed] == ["2026-12-09"]
    assert read_predictions(tmp_path).num_rows == 2


def test_protect_redacts_and_hashes_named_fields_only() -> None:
    secret = b"s" * 32
    tensors = {
        "email": ["a@x.io", "b@x.io", "a@x.io"],
        "ssn": ["123"],
        "amount": [10.5, 3.0],
        "id": 7,
    }
    protected = protect(tensors, redact=["ssn"], hashed=["email", "id"], secret=secret)
    assert protected["ssn"] == REDACTED and protected["amount"] == [10.5, 3.0]
    first, second, third = protected["email"]
    assert first == third != second and len(first) == 64  # joinable, one hash per row
    assert "a@x.io" not in json.dumps(protected)
    expected = hmac.new(secret, b"a@x.io", hashlib.sha256).hexdigest()
    assert first == expected
    assert protected["id"] == hmac.new(secret, b"7", hashlib.sha256).hexdigest()
    other = protect(tensors, redact=[], hashed=["email"], secret=b"t" * 32)
    assert other["email"][0] != first  # another installation's secret: another hash


def test_protect_needs_a_real_secret() -> None:
    with pytest.raises(InvalidInput, match="at least 16 bytes"):
        protect({"a": [1]}, redact=[], hashed=["a"], secret=b"short")


class FlakySink:
    """A sink that fails its first ``failures`` writes (then refuses, when ``reject``)."""

    def __init__(self, failures: int = 0, reject: bool = False) -> None:
        self.failures, self.reject = failures, reject
        self.batches: list[Batch] = []
        self.closed = False

    def write(self, batches: Sequence[Batch]) -> None:
        if self.reject:
            raise RejectedBatch("a value does not fit")
        if self.failures:
            self.failures -= 1
            raise OSError("storage down")
        self.batches.extend(batches)

    def read(self, deployment: str | None = None, since: Any = None, limit: Any = None) -> Any:
        raise NotImplementedError

    def find_request_ids(self, deployment: str, request_ids: Any, since: Any = None) -> set[str]:
        raise NotImplementedError

    def prune(self, now: datetime, max_age_s: Any = None, max_bytes: Any = None) -> Pruned:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


def _flushed(log: PredictionLog, sink: FlakySink, failures: int) -> None:
    deadline = time.monotonic() + 5
    while log.stats().failures < failures and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_failed_write_keeps_the_rendered_records_for_the_next_flush() -> None:
    sink = FlakySink(failures=2)
    renders: list[int] = []

    def inputs() -> str:
        renders.append(1)
        return '{"x": [1]}'

    log = PredictionLog(sink, flush_interval_s=0.02)
    log.log(dataclasses.replace(record(1), inputs=inputs))
    log.log(record(2, "churn", at=T0 + timedelta(days=1)))
    _flushed(log, sink, 2)
    log.close()
    stats = log.stats()
    assert (stats.written, stats.failures, stats.lost, stats.segments) == (2, 2, 0, 2)
    assert renders == [1]  # rendered once, not once per try
    by_key = {(b.deployment, b.day.isoformat()): b.records for b in sink.batches}
    assert set(by_key) == {("fraud", "2026-12-07"), ("churn", "2026-12-08")}
    assert by_key["fraud", "2026-12-07"][0].inputs == '{"x": [1]}'
    assert sink.closed


def test_records_waiting_for_a_retry_count_against_max_queue() -> None:
    sink = FlakySink(failures=10**6)
    log = PredictionLog(sink, flush_interval_s=0.02, max_queue=10)
    assert all(log.log(record(i)) for i in range(6))
    _flushed(log, sink, 1)
    accepted = [log.log(record(i)) for i in range(6, 12)]
    assert accepted[-2:] == [False, False]  # 6 waiting + 4 queued fill it
    log.close()  # one more try fails: nothing raised, the records are counted lost
    stats = log.stats()
    # (a flush starting during those calls may refuse one early: never one too many)
    assert stats.logged <= 10 and stats.logged + stats.dropped == 12
    assert (stats.written, stats.lost) == (0, stats.logged)


def test_records_the_sink_refuses_are_lost_and_the_log_goes_on() -> None:
    sink = FlakySink(reject=True)
    log = PredictionLog(sink, flush_interval_s=0.02)
    log.log(record(1))
    deadline = time.monotonic() + 5
    while log.stats().lost == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    sink.reject = False
    log.log(record(2))
    log.close()
    assert (log.stats().lost, log.stats().written, log.stats().failures) == (1, 1, 0)
    assert [r.request_id for b in sink.batches for r in b.records] == ["r-2"]


# -- schema version 2 ---------------------------------------------------------------------------

V1_COLUMNS = arrow_schema().names[: arrow_schema().get_field_index("outputs") + 1]


def write_v1_segment(folder: Path, deployment: str, records: Sequence[PredictionRecord]) -> Path:
    """A segment as version 1 wrote it: without the ``error`` and ``cpu_ms`` columns."""
    schema = pa.schema([arrow_schema().field(name) for name in V1_COLUMNS])
    columns: dict[str, list[Any]] = {name: [] for name in V1_COLUMNS}
    for r in records:
        columns["schema_version"].append(1)
        for name in V1_COLUMNS[1:]:
            columns[name].append(getattr(r, name))
    day = records[0].time.astimezone(UTC).date().isoformat()
    path = folder / deployment / day / "20261207T000000.000Z-1-000001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), path)
    return path


def test_error_and_cpu_time_are_written_after_the_outputs(tmp_path: Path) -> None:
    assert SCHEMA_VERSION == 2
    assert arrow_schema().names[-3:] == ["outputs", "error", "cpu_ms"]
    assert arrow_schema().field("error").nullable and arrow_schema().field("cpu_ms").nullable
    log = PredictionLog(tmp_path, flush_interval_s=30)
    log.log(dataclasses.replace(record(1), error="unavailable", outputs="{}"))
    log.log(dataclasses.replace(record(2), cpu_ms=0.125))
    log.close()
    failed, answered = read_predictions(tmp_path).to_pylist()
    assert (failed["error"], failed["cpu_ms"], failed["outputs"]) == ("unavailable", None, "{}")
    assert (answered["error"], answered["cpu_ms"]) == (None, 0.125)
    assert answered["schema_version"] == 2


def test_version_1_segments_read_back_with_null_error_and_cpu_time(tmp_path: Path) -> None:
    old = write_v1_segment(tmp_path, "fraud", [record(1), record(3)])
    assert pq.read_schema(old).names == V1_COLUMNS
    log = PredictionLog(tmp_path, flush_interval_s=30)
    log.log(dataclasses.replace(record(5), error="internal", outputs="{}", cpu_ms=1.5))
    log.close()
    table = read_predictions(tmp_path, deployment="fraud")
    assert table.schema == arrow_schema()
    got = [
        (r["request_id"], r["schema_version"], r["error"], r["cpu_ms"]) for r in table.to_pylist()
    ]
    assert got == [("r-1", 1, None, None), ("r-3", 1, None, None), ("r-5", 2, "internal", 1.5)]
    sink = ParquetSink(tmp_path)
    assert sink.read(limit=2).column("request_id").to_pylist() == ["r-3", "r-5"]
    assert sink.find_request_ids("fraud", ["r-1", "r-5", "r-9"]) == {"r-1", "r-5"}


def test_a_failed_exchange_is_logged_with_its_kind_and_no_outputs(tmp_path: Path) -> None:
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [2]}]})
    answer = json.dumps({"outputs": [{"name": "y", "datatype": "FP64", "shape": [1], "data": [4]}]})

    def exchange(request_id: str, answer: bytes, error: str | None, cpu: float | None) -> Exchange:
        return (request_id, T0.timestamp(), "fraud", "current", "fraud", "3", False, 2.5, None,
                body.encode(), None, answer, None, (), (), error, cpu)  # fmt: skip

    log = PredictionLog(tmp_path, flush_interval_s=30)
    log.log(exchange("ok", answer.encode(), None, 0.75))
    log.log(exchange("bad", b'{"error": "no such thing"}', "invalid_input", None))
    log.log(exchange("down", b"", "unavailable", None))
    log.close()
    rows = {r["request_id"]: r for r in read_predictions(tmp_path).to_pylist()}
    assert json.loads(rows["ok"]["outputs"]) == {"y": [4]}
    assert (rows["ok"]["error"], rows["ok"]["cpu_ms"]) == (None, 0.75)
    for request_id, kind in (("bad", "invalid_input"), ("down", "unavailable")):
        assert (rows[request_id]["error"], rows[request_id]["outputs"]) == (kind, "{}")
        assert json.loads(rows[request_id]["inputs"]) == {"x": [2]}  # the inputs are kept


def test_finding_request_ids_reads_only_the_days_from_since(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval_s=30)
    for day in range(3):
        log.log(record(day, at=T0 + timedelta(days=day)))
    log.close()
    # An unreadable segment on a day before ``since`` is never opened.
    (tmp_path / "fraud" / "2026-12-07" / "broken.parquet").write_bytes(b"not parquet")
    sink = ParquetSink(tmp_path)
    since = T0 + timedelta(days=1, hours=1)  # the 12-08 record is older: its day is read, it is not
    assert sink.find_request_ids("fraud", ["r-0", "r-1", "r-2"], since) == {"r-2"}
    assert sink.find_request_ids("fraud", []) == set()
    assert sink.find_request_ids("../fraud", ["r-2"]) == set()  # not a deployment's folder
