"""The prediction log: every prediction (or a sample) written to Parquet off the request path.

:meth:`PredictionLog.log` only appends to a bounded in-memory queue and returns; it never
blocks and never fails a request. When the queue is full the record is dropped and counted (and
one warning line says so, at most once a minute). A writer thread takes what is queued every
``flush_interval_s`` and writes it as one Parquet *segment*, first to a hidden temporary file
and then renamed into place, so a reader never sees half a segment. :meth:`PredictionLog.close`
writes everything still queued; after ``kill -9`` at most the records of the last flush
interval are lost.

Segments live under the log's folder, one folder per deployment and day::

    FOLDER/fraud/2026-12-07/20261207T101502.318Z-4121-000042.parquet

Every segment carries all its columns (the deployment included), so the folders are only for
finding and pruning files: DuckDB (``read_parquet('FOLDER/*/*/*.parquet')``), pandas and pyarrow
read them as they are. Folder names have no ``key=value`` form, so no reader mistakes them for
Hive partitions.

Schema (version :data:`SCHEMA_VERSION`; a new column or a changed meaning raises it):

================  ==========================  ==============================================
column            type                        meaning
================  ==========================  ==============================================
schema_version    int16                       this table's version
request_id        string                      the request id the server used
time              timestamp (us, UTC)         when the prediction was answered
deployment        string                      the deployment called (also the partition)
variant           string                      the variant that answered, or the shadow's
model             string                      registered model name
model_version     string                      the version that answered
shadow            bool                        a shadow's copy (its answer reached no caller)
latency_ms        float64                     time to answer, in milliseconds
identity          string (nullable)           a short hash of the caller's identity
inputs            string                      the inputs as JSON (``{"name": values, ...}``)
outputs           string                      the outputs as JSON, the same way
================  ==========================  ==============================================

Personal fields are protected before a record is logged: :func:`protect` applies a deployment's
``predictionLog.redact`` (the values are replaced by ``"[redacted]"``) and ``predictionLog.hash``
(each value is replaced by an HMAC-SHA-256 under the installation's secret, so equal values stay
joinable across records and with other data hashed the same way, while the value itself cannot
be read back or guessed by hashing candidates without the secret).
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any, Final

__all__ = [
    "REDACTED",
    "SCHEMA_VERSION",
    "LogStats",
    "PredictionLog",
    "PredictionRecord",
    "protect",
    "prune_predictions",
    "read_predictions",
]

SCHEMA_VERSION: Final = 1

REDACTED: Final = "[redacted]"
"""What a redacted value is logged as."""

log = logging.getLogger(__name__)

_WARN_EVERY_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One prediction, as the log keeps it.

    ``inputs`` and ``outputs`` are JSON text, or functions that return it: a gateway hands over
    the request and answer bytes undecoded, and the writer thread decodes them, off the request
    path. A function that fails logs ``{"error": ...}`` in place of the tensors.
    """

    request_id: str
    time: datetime
    deployment: str
    variant: str
    model: str
    model_version: str
    shadow: bool
    latency_ms: float
    identity: str | None
    inputs: str | Callable[[], str]
    outputs: str | Callable[[], str]


@dataclass(frozen=True, slots=True)
class LogStats:
    """What the log did since it started."""

    logged: int
    """Records accepted into the queue."""
    written: int
    """Records written to segments."""
    dropped: int
    """Records refused because the queue was full."""
    segments: int
    """Segments written."""


class PredictionLog:
    """A bounded queue of records and the thread that writes them to Parquet segments.

    Args:
        folder: Where segments go (created private if missing).
        flush_interval_s: Seconds between two writes; what ``kill -9`` can lose at most.
        max_queue: Records held at most; more are dropped and counted.

    Raises:
        DependencyMissing: pyarrow is not installed.
    """

    def __init__(
        self, folder: Path, flush_interval_s: float = 1.0, max_queue: int = 100_000
    ) -> None:
        self._schema = _schema()  # pyarrow is checked here, not at the first flush
        self._folder = folder
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._interval = flush_interval_s
        self._queue: collections.deque[PredictionRecord] = collections.deque()
        self._max_queue = max_queue
        self._logged = self._written = self._dropped = self._segments = 0
        self._warned_at = -_WARN_EVERY_S
        self._sequence = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="modelport-prediction-log", daemon=True
        )
        self._thread.start()

    def log(self, record: PredictionRecord) -> bool:
        """Queue ``record`` for writing; ``False`` when the queue is full and it was dropped."""
        if len(self._queue) >= self._max_queue:
            self._dropped += 1
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                log.warning(
                    "prediction log queue full (%d records): dropping records (%d so far); "
                    "the disk is slower than the traffic, or raise max_queue",
                    self._max_queue,
                    self._dropped,
                )
            return False
        self._queue.append(record)
        self._logged += 1
        return True

    def stats(self) -> LogStats:
        """Counts since the log started."""
        return LogStats(self._logged, self._written, self._dropped, self._segments)

    def close(self) -> None:
        """Write everything queued, then stop the writer thread."""
        self._stop.set()
        self._thread.join()
        self._flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._flush()
            except Exception:  # noqa: BLE001 - a failed write must not end the thread
                log.exception("cannot write a prediction log segment; will retry")

    def _flush(self) -> None:
        batch: list[PredictionRecord] = []
        queue = self._queue
        while queue:
            batch.append(queue.popleft())
        if not batch:
            return
        by_deployment: dict[tuple[str, date], list[PredictionRecord]] = collections.defaultdict(
            list
        )
        for record in batch:
            by_deployment[record.deployment, record.time.astimezone(UTC).date()].append(record)
        for (deployment, day), records in by_deployment.items():
            self._write_segment(deployment, day.isoformat(), records)

    def _write_segment(self, deployment: str, day: str, records: list[PredictionRecord]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = self._schema.names[1:]
        columns: dict[str, list[Any]] = {
            name: list(values)
            for name, values in zip(
                names, zip(*map(attrgetter(*names), records), strict=True), strict=True
            )
        }
        for name in ("inputs", "outputs"):
            columns[name] = [_rendered(v) if callable(v) else v for v in columns[name]]
        columns["schema_version"] = [SCHEMA_VERSION] * len(records)
        table = pa.Table.from_pydict(columns, schema=self._schema)
        folder = self._folder / deployment / day
        for private in (folder.parent, folder):  # parents=True would make the first 0o755
            private.mkdir(mode=0o700, exist_ok=True)
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
        name = f"{stamp}Z-{os.getpid()}-{self._sequence:06d}.parquet"
        temporary = folder / f".{name}.tmp"
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, folder / name)
        self._written += len(records)
        self._segments += 1


def _rendered(render: Callable[[], str]) -> str:
    try:
        return render()
    except Exception as exc:  # noqa: BLE001 - one bad record must not lose the segment
        return json.dumps({"error": f"cannot decode: {exc}"})


def protect(
    tensors: Mapping[str, Any], redact: Iterable[str], hashed: Iterable[str], secret: bytes
) -> dict[str, Any]:
    """Return ``tensors`` (name -> values) with the named ones redacted or hashed.

    Args:
        tensors: Input or output values by name, as they will be logged.
        redact: Names whose values are replaced by :data:`REDACTED`.
        hashed: Names whose values are replaced by their keyed hash: one hex string per element
            of a list (so a batch of rows keeps one hash per row), or one for a single value.
        secret: The installation's key for the hashes (at least 16 bytes).

    Raises:
        InvalidInput: ``secret`` is too short to key a hash.
    """
    if len(secret) < 16:
        from modelport.core.errors import InvalidInput

        raise InvalidInput("the prediction log's hashing secret must be at least 16 bytes")
    redacted, to_hash = set(redact), set(hashed)
    protected: dict[str, Any] = {}
    for name, values in tensors.items():
        if name in redacted:
            protected[name] = REDACTED
        elif name in to_hash:
            if isinstance(values, list):
                protected[name] = [_keyed_hash(secret, value) for value in values]
            else:
                protected[name] = _keyed_hash(secret, values)
        else:
            protected[name] = values
    return protected


def _keyed_hash(secret: bytes, value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hmac.new(secret, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def read_predictions(
    folder: Path, deployment: str | None = None, since: datetime | None = None
) -> Any:
    """Every logged prediction under ``folder`` as a ``pyarrow.Table``, oldest first.

    Args:
        folder: The prediction log's folder.
        deployment: Only this deployment's records.
        since: Only records answered at or after this time.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pattern = f"{deployment}/*/*.parquet" if deployment else "*/*/*.parquet"
    paths: Iterable[Path] = sorted(folder.glob(pattern))
    tables = [pq.read_table(path, schema=_schema()) for path in paths]
    if not tables:
        return _schema().empty_table()
    table = pa.concat_tables(tables)
    if since is not None:
        table = table.filter(
            pc.greater_equal(table["time"], pa.scalar(since, pa.timestamp("us", "UTC")))
        )
    return table.sort_by("time")


def prune_predictions(
    folder: Path, now: datetime, max_age_s: float | None = None, max_bytes: int | None = None
) -> list[Path]:
    """Delete segments older than ``max_age_s``, then the oldest until at most ``max_bytes`` remain.

    A segment's age is that of its day folder's end (a segment is never deleted while records of
    its day could still be younger than ``max_age_s``). Empty folders left behind are removed.
    Runs one at a time across processes (an exclusive lock on ``FOLDER/.prune.lock``), so the
    control plane and every ``modelport up`` worker may prune the same folder.

    Returns:
        The segments deleted, oldest first.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(folder / ".prune.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _prune(folder, now, max_age_s, max_bytes)


def _prune(
    folder: Path, now: datetime, max_age_s: float | None, max_bytes: int | None
) -> list[Path]:
    segments = sorted(folder.glob("*/*/*.parquet"), key=lambda p: (p.parent.name, p.name))
    removed: list[Path] = []
    if max_age_s is not None:
        for path in segments:
            try:
                day_end = datetime.strptime(path.parent.name, "%Y-%m-%d").replace(tzinfo=UTC)
            except ValueError:
                continue  # not one of ours
            if (now - day_end).total_seconds() - 86_400 >= max_age_s:
                removed.append(path)
    if max_bytes is not None:
        kept = [p for p in segments if p not in removed]
        total = sum(p.stat().st_size for p in kept)
        for path in kept:
            if total <= max_bytes:
                break
            total -= path.stat().st_size
            removed.append(path)
    for path in removed:
        path.unlink(missing_ok=True)
    for day in {p.parent for p in removed}:
        for empty in (day, day.parent):
            if empty.is_dir() and not any(empty.iterdir()):
                empty.rmdir()
    return sorted(removed, key=lambda p: (p.parent.name, p.name))


def _schema() -> Any:
    try:
        import pyarrow as pa
    except ImportError:
        from modelport.core.errors import DependencyMissing

        raise DependencyMissing(
            "the prediction log writes Parquet with pyarrow: pip install pyarrow"
        ) from None
    return pa.schema(
        [
            ("schema_version", pa.int16()),
            ("request_id", pa.string()),
            ("time", pa.timestamp("us", "UTC")),
            ("deployment", pa.string()),
            ("variant", pa.string()),
            ("model", pa.string()),
            ("model_version", pa.string()),
            ("shadow", pa.bool_()),
            ("latency_ms", pa.float64()),
            ("identity", pa.string()),
            ("inputs", pa.string()),
            ("outputs", pa.string()),
        ]
    )
