"""The prediction log: every prediction (or a sample) written in batches off the request path.

:meth:`PredictionLog.log` only appends to a bounded in-memory queue and returns; it never
blocks and never fails a request. When the queue is full the record is dropped and counted (and
one warning line says so, at most once a minute). A writer thread takes what is queued every
``flush_interval_s``, renders the deferred fields, groups the records by deployment and UTC day
(a :class:`Batch` each) and hands them to the log's :class:`PredictionSink` in one call.
:meth:`PredictionLog.close` writes everything still queued; after ``kill -9`` at most the
records of the last flush interval are lost.

A failed write loses nothing: the records are kept and written again at the next flush, together
with what arrived since, and while they wait they count against ``max_queue`` (so an outage of
the storage fills the queue, then records are dropped and counted; memory stays bounded). A
sink raises :class:`RejectedBatch` when the records themselves cannot be written (writing them
again cannot help): they are counted as lost instead of blocking the log.

Two sinks: :class:`ParquetSink` (the embedded default, below) and
:class:`~modelport.monitoring.prediction_postgres.PostgresSink` (one ``COPY`` per batch into a
PostgreSQL table with the same columns). Both read back the same ``pyarrow.Table`` and prune by
the same day rule.

:class:`ParquetSink` writes each batch as one Parquet *segment*, first to a hidden temporary
file and then renamed into place, so a reader never sees half a segment. Segments live under the
log's folder, one folder per deployment and day::

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
outputs           string                      the outputs as JSON, the same way (``{}`` for a
                                              failed request)
error             string (nullable)           why the request failed: its error kind
                                              (``unavailable``, ``invalid_input``...); null
                                              when it was answered
cpu_ms            float64 (nullable)          CPU time the model spent on this request, in
                                              milliseconds, where this process ran it; null
                                              otherwise (a remote replica, a cached answer)
================  ==========================  ==============================================

Version 2 added ``error`` and ``cpu_ms``. Segments written before (version 1) are read with the
current schema, their missing columns as nulls, so a folder may hold both versions.

``cpu_ms`` is the CPU time of the thread that called the model (``time.thread_time_ns``): all of
it for runtimes that compute on the calling thread (scikit-learn, and ONNX Runtime with one
intra-op thread); work a runtime hands to threads of its own is not counted. A batch's time is
shared among its requests by rows.

Personal fields are protected before a record is logged: :func:`protect` applies a deployment's
``predictionLog.redact`` (the values are replaced by ``"[redacted]"``) and ``predictionLog.hash``
(each value is replaced by an HMAC-SHA-256 under the installation's secret, so equal values stay
joinable across records and with other data hashed the same way, while the value itself cannot
be read back or guessed by hashing candidates without the secret).
"""

from __future__ import annotations

import collections
import dataclasses
import fcntl
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any, Final, Protocol

import orjson

from modelport.protocol.rest import decode_infer_request, decode_infer_response

__all__ = [
    "REDACTED",
    "SCHEMA_VERSION",
    "Batch",
    "LogStats",
    "ParquetSink",
    "PredictionLog",
    "PredictionRecord",
    "Exchange",
    "PredictionSink",
    "Pruned",
    "RejectedBatch",
    "arrow_schema",
    "protect",
    "prune_predictions",
    "read_predictions",
]

SCHEMA_VERSION: Final = 2

REDACTED: Final = "[redacted]"
"""What a redacted value is logged as."""

log = logging.getLogger(__name__)

_WARN_EVERY_S: Final = 60.0


@dataclass(slots=True)
class PredictionRecord:
    """One prediction, as the log keeps it.

    ``inputs`` and ``outputs`` are JSON text, or functions that return it: a gateway hands over
    the request and answer bytes undecoded, and the writer thread decodes them, off the request
    path. A function that fails logs ``{"error": ...}`` in place of the tensors.

    ``error`` is the :class:`~modelport.core.errors.ErrorKind` value of a failed request (its
    ``outputs`` are then ``{}``); ``cpu_ms`` the model's CPU time where it was measured.
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
    error: str | None = None
    cpu_ms: float | None = None


Exchange = tuple[
    str, float, str, str, str, str, bool, float, str | None,
    bytes, int | None, bytes, int | None, tuple[str, ...], tuple[str, ...],
    str | None, float | None,
]  # fmt: skip
"""One request as a gateway hands it over, undecoded: ``(request_id, unix time, deployment,
variant, model, model_version, shadow, latency_ms, identity, request body, its
Inference-Header-Content-Length, answer body, its header length, names to redact, names to
hash, error kind, cpu_ms)``. A failed request has its error kind set, and its answer body is not
decoded (its outputs are logged as ``{}``). A plain tuple of strings, numbers and bytes, which
the garbage collector stops tracking at its first look: queued records that are objects (a
dataclass, closures) are scanned again by every collection while they wait, measured at 4.9 us
per record (bench/notes/2026-12-07-issue15.md); these cost nothing there."""


@dataclass(frozen=True, slots=True)
class Batch:
    """The records of one flush for one deployment and one UTC day, oldest queued first.

    Their ``inputs`` and ``outputs`` are JSON text: deferred fields were rendered before the
    batch was made.
    """

    deployment: str
    day: date
    records: Sequence[PredictionRecord]


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a prune deleted.

    Attributes:
        unit: What one entry of ``removed`` is (``segment``, ``deployment day``).
        removed: What was deleted, oldest first: segment paths relative to the folder (Parquet),
            ``DEPLOYMENT/DAY`` (PostgreSQL).
        records: Records deleted, when the backend counts them; ``None`` when it does not.
        where: The folder or the database (password hidden), for messages.
    """

    unit: str
    removed: tuple[str, ...]
    records: int | None
    where: str


class RejectedBatch(Exception):
    """A sink refused the records themselves: writing them again cannot succeed.

    Raised by :meth:`PredictionSink.write` (for a value the storage cannot hold); the log counts
    the flush's records as lost instead of retrying them. Never leaves the log.
    """


class PredictionSink(Protocol):
    """Where a prediction log's batches go, and how they are read back and pruned."""

    def write(self, batches: Sequence[Batch]) -> None:
        """Write one flush's batches, all or none.

        Raises:
            RejectedBatch: The records cannot be stored; retrying cannot help.
            Exception: Anything else means "not written, try again later" (the storage is
                down or full): the log keeps the records and retries at its next flush.
        """
        ...

    def read(
        self,
        deployment: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> Any:
        """The logged predictions as a ``pyarrow.Table`` (:func:`arrow_schema`), oldest first.

        Args:
            deployment: Only this deployment's records.
            since: Only records answered at or after this time.
            limit: Only the newest this many (still returned oldest first).
        """
        ...

    def find_request_ids(
        self, deployment: str, request_ids: Sequence[str], since: datetime | None = None
    ) -> set[str]:
        """Which of ``request_ids`` have a logged record of ``deployment`` that is not a shadow's.

        Records of failed requests count; records still queued in a log (not yet written) do not.

        Args:
            deployment: The deployment the requests were sent to.
            request_ids: The ids to look for.
            since: Only records answered at or after this time.
        """
        ...

    def prune(
        self, now: datetime, max_age_s: float | None = None, max_bytes: int | None = None
    ) -> Pruned:
        """Delete the days older than ``max_age_s``, then the oldest until ``max_bytes`` remain.

        A day is deleted once its last moment is ``max_age_s`` old, so no record younger than
        that is deleted by age. Safe to run in several processes at once.
        """
        ...

    def close(self) -> None:
        """Release connections; the sink is not used afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class LogStats:
    """What the log did since it started."""

    logged: int
    """Records accepted into the queue."""
    written: int
    """Records written by the sink."""
    dropped: int
    """Records refused because the queue (with the records waiting for a retry) was full."""
    segments: int
    """Batches written (Parquet segments, PostgreSQL ``COPY`` s)."""
    failures: int = 0
    """Writes that failed and were retried at the next flush (their records were kept)."""
    lost: int = 0
    """Accepted records never written: refused by the sink as unwritable, or still waiting for
    a retry when the log was closed."""


class PredictionLog:
    """A bounded queue of records and the thread that writes them to a sink in batches.

    Args:
        sink: Where batches go; a folder means a :class:`ParquetSink` there. The log closes it.
        flush_interval_s: Seconds between two writes; what ``kill -9`` can lose at most.
        max_queue: Records held at most, those waiting for a retry included; more are dropped
            and counted.
        secret: The installation's key for the hashed fields of exchanges (see :func:`protect`).
        observer: Told, on the writer thread, the records of every flush as they were rendered
            (each record once, before it is written; an empty list when nothing arrived), so
            it can count them (the drift windows); what it raises is logged, never kept.

    Raises:
        DependencyMissing: pyarrow is not installed (the Parquet sink).
    """

    def __init__(
        self,
        sink: PredictionSink | Path,
        flush_interval_s: float = 1.0,
        max_queue: int = 100_000,
        secret: bytes = b"",
        observer: Callable[[Sequence[PredictionRecord]], None] | None = None,
    ) -> None:
        self._secret = secret
        self._observer = observer
        self._sink: PredictionSink = ParquetSink(sink) if isinstance(sink, Path) else sink
        self._interval = flush_interval_s
        self._queue: collections.deque[PredictionRecord | Exchange] = collections.deque()
        self._max_queue = max_queue
        # Written by the writer thread only: rendered records a failed write left for a retry.
        self._pending: list[PredictionRecord] = []
        self._waiting = 0  # len(self._pending), read by log() without a lock
        self._logged = self._written = self._dropped = self._segments = 0
        self._failures = self._failing = self._lost = 0
        self._warned_at = self._failure_warned_at = -_WARN_EVERY_S
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="modelport-prediction-log", daemon=True
        )
        self._thread.start()

    @property
    def sink(self) -> PredictionSink:
        """Where the log writes (and where its records are read back)."""
        return self._sink

    def log(self, record: PredictionRecord | Exchange) -> bool:
        """Queue ``record`` for writing; ``False`` when the queue is full and it was dropped.

        An :data:`Exchange` is decoded (and its named fields redacted or hashed) on the writer
        thread.
        """
        if len(self._queue) + self._waiting >= self._max_queue:
            self._dropped += 1
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                log.warning(
                    "prediction log queue full (%d records): dropping records (%d so far); "
                    "the log's storage is slower than the traffic or failing, or raise max_queue",
                    self._max_queue,
                    self._dropped,
                )
            return False
        self._queue.append(record)
        self._logged += 1
        return True

    def stats(self) -> LogStats:
        """Counts since the log started."""
        return LogStats(
            self._logged,
            self._written,
            self._dropped,
            self._segments,
            self._failures,
            self._lost,
        )

    def close(self) -> None:
        """Write everything queued (one try), stop the writer thread and close the sink.

        Records a failing sink still could not take are counted as lost and logged; nothing is
        raised.
        """
        self._stop.set()
        self._thread.join()
        try:
            self._flush()
            if self._pending:
                self._lost += len(self._pending)
                log.error(
                    "prediction log closed with %d records not written: they are lost",
                    len(self._pending),
                )
                self._pending, self._waiting = [], 0
        finally:
            self._sink.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._flush()
            except Exception:  # noqa: BLE001 - a bug here must not end the thread
                log.exception("the prediction log's writer failed; will retry")

    def _flush(self) -> None:
        queue = self._queue
        taken = len(queue)  # log() may append meanwhile; those wait for the next flush
        # Counted before they leave the queue, so log() never sees room that is not there.
        self._waiting = len(self._pending) + taken
        fresh = [queue.popleft() for _ in range(taken)]
        secret = self._secret
        rendered = [_rendered_record(record, secret) for record in fresh]
        if self._observer is not None:
            try:
                self._observer(rendered)
            except Exception:  # noqa: BLE001 - an observer must not cost the log its records
                log.exception("the prediction log's observer failed")
        records = self._pending + rendered
        if not records:
            return
        by_day: dict[tuple[str, date], list[PredictionRecord]] = collections.defaultdict(list)
        for record in records:
            by_day[record.deployment, record.time.astimezone(UTC).date()].append(record)
        batches = [Batch(deployment, day, rows) for (deployment, day), rows in by_day.items()]
        try:
            self._sink.write(batches)
        except RejectedBatch as exc:
            self._lost += len(records)
            self._pending, self._waiting = [], 0
            log.error("the prediction log's storage refused %d records: %s", len(records), exc)
        except Exception as exc:  # noqa: BLE001 - kept and retried, whatever the storage says
            self._keep(records, exc)
        else:
            self._written += len(records)
            self._segments += len(batches)
            self._pending, self._waiting = [], 0
            if self._failing:
                log.warning(
                    "prediction log written again after %d failed writes (%d records)",
                    self._failing,
                    len(records),
                )
                self._failing = 0

    def _keep(self, records: list[PredictionRecord], exc: Exception) -> None:
        """Keep a failed write's records for the next flush, within ``max_queue``."""
        self._failures += 1
        self._failing += 1
        excess = len(records) - self._max_queue
        if excess > 0:  # only when log() raced a flush; the oldest go
            self._dropped += excess
            records = records[excess:]
        self._pending, self._waiting = records, len(records)
        now = time.monotonic()
        if self._failing == 1 or now - self._failure_warned_at >= _WARN_EVERY_S:
            self._failure_warned_at = now
            log.error(
                "cannot write the prediction log (%s: %s); %d records kept, retried every %gs",
                type(exc).__name__,
                str(exc).strip(),
                len(records),
                self._interval,
                exc_info=self._failing == 1,
            )


def _rendered_record(record: PredictionRecord | Exchange, secret: bytes) -> PredictionRecord:
    """``record`` with deferred fields rendered to JSON text (on the writer thread)."""
    if isinstance(record, tuple):
        return _exchange_record(record, secret)
    inputs, outputs = record.inputs, record.outputs
    if not callable(inputs) and not callable(outputs):
        return record
    return dataclasses.replace(
        record,
        inputs=_rendered(inputs) if callable(inputs) else inputs,
        outputs=_rendered(outputs) if callable(outputs) else outputs,
    )


def _exchange_record(exchange: Exchange, secret: bytes) -> PredictionRecord:
    (request_id, at, deployment, variant, model, version, shadow, latency_ms, identity,
     request, request_header, answer, answer_header, redact, hashed,
     error, cpu_ms) = exchange  # fmt: skip

    def tensors(body: bytes, header: int | None, field: str) -> str:
        values = _tensor_values(body, header, field)
        if redact or hashed:
            values = protect(values, redact, hashed, secret)
        return orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY).decode()

    # A failed request's answer body is an error message, or nothing: no outputs.
    if error is None:
        outputs = _rendered(lambda: tensors(answer, answer_header, "outputs"))
    else:
        outputs = "{}"
    return PredictionRecord(
        request_id=request_id,
        time=datetime.fromtimestamp(at, UTC),
        deployment=deployment,
        variant=variant,
        model=model,
        model_version=version,
        shadow=shadow,
        latency_ms=latency_ms,
        identity=identity,
        inputs=_rendered(lambda: tensors(request, request_header, "inputs")),
        outputs=outputs,
        error=error,
        cpu_ms=cpu_ms,
    )


def _tensor_values(body: bytes, header: int | None, field: str) -> dict[str, Any]:
    """``{name: values}`` of an OIP REST request's inputs or answer's outputs.

    All-JSON bodies are logged as the caller sent them (no numpy); binary tensors are decoded
    to nested lists.
    """
    if header is None:
        document = orjson.loads(body)
        return {tensor["name"]: tensor.get("data") for tensor in document.get(field) or ()}
    if field == "inputs":
        tensors = decode_infer_request(body, header).inputs
    else:
        tensors = decode_infer_response(body, header).outputs
    return {tensor.name: tensor.data.tolist() for tensor in tensors}


def _rendered(render: Callable[[], str]) -> str:
    try:
        return render()
    except Exception as exc:  # noqa: BLE001 - one bad record must not lose the segment
        return json.dumps({"error": f"cannot decode: {exc}"})


class ParquetSink:
    """Parquet segments in a folder: one segment per batch, ``FOLDER/DEPLOYMENT/DAY/*.parquet``.

    A write is all or none: every batch's segment is written to a hidden temporary file first,
    and only when all are written are they renamed into place.

    Args:
        folder: Where segments go (created private when first written).

    Raises:
        DependencyMissing: pyarrow is not installed.
    """

    def __init__(self, folder: Path) -> None:
        self._schema = arrow_schema()  # pyarrow is checked here, not at the first flush
        self._folder = folder
        self._sequence = 0

    @property
    def folder(self) -> Path:
        """The folder of the segments."""
        return self._folder

    def write(self, batches: Sequence[Batch]) -> None:
        """Write each batch as one segment.

        Raises:
            RejectedBatch: A record's values do not fit the schema.
            OSError: A segment cannot be written (nothing was renamed into place).
        """
        import pyarrow.parquet as pq

        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        tables = [self._table(batch.records) for batch in batches]
        placed: list[tuple[Path, Path]] = []
        try:
            for batch, table in zip(batches, tables, strict=True):
                folder = self._folder / batch.deployment / batch.day.isoformat()
                for private in (folder.parent, folder):  # parents=True would make the first 0o755
                    private.mkdir(mode=0o700, exist_ok=True)
                self._sequence += 1
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
                name = f"{stamp}Z-{os.getpid()}-{self._sequence:06d}.parquet"
                placed.append((folder / f".{name}.tmp", folder / name))
                pq.write_table(table, placed[-1][0], compression="zstd")
        except BaseException:
            for temporary, _ in placed:
                temporary.unlink(missing_ok=True)
            raise
        for temporary, final in placed:
            os.replace(temporary, final)

    def _table(self, records: Sequence[PredictionRecord]) -> Any:
        import pyarrow as pa

        names = self._schema.names[1:]
        columns: dict[str, list[Any]] = {
            name: list(values)
            for name, values in zip(
                names, zip(*map(attrgetter(*names), records), strict=True), strict=True
            )
        }
        columns["schema_version"] = [SCHEMA_VERSION] * len(records)
        try:
            return pa.Table.from_pydict(columns, schema=self._schema)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise RejectedBatch(f"a record does not fit the Parquet schema: {exc}") from exc

    def read(
        self,
        deployment: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> Any:
        """The logged predictions as a ``pyarrow.Table``, oldest first (see the protocol)."""
        table = read_predictions(self._folder, deployment, since)
        if limit is not None and table.num_rows > limit:
            table = table.slice(table.num_rows - limit)
        return table

    def find_request_ids(
        self, deployment: str, request_ids: Sequence[str], since: datetime | None = None
    ) -> set[str]:
        """Which of ``request_ids`` have a non-shadow record of ``deployment`` (see the protocol).

        Reads only the ``request_id``, ``shadow`` and ``time`` columns of the deployment's
        segments, skipping the day folders before ``since``'s UTC day; the ids are matched by
        pyarrow (row groups whose statistics exclude them are not read).
        """
        import pyarrow as pa
        import pyarrow.dataset as ds

        wanted = list(dict.fromkeys(request_ids))
        if not wanted or not deployment or "/" in deployment or deployment.startswith("."):
            return set()  # no ids, or a name that is no deployment's folder
        first_day = since.astimezone(UTC).date().isoformat() if since is not None else ""
        paths = [
            str(path)
            for path in sorted((self._folder / deployment).glob("*/*.parquet"))
            if path.parent.name >= first_day
        ]
        if not paths:
            return set()
        condition = ds.field("request_id").isin(pa.array(wanted, pa.string())) & ~ds.field("shadow")
        if since is not None:
            condition &= ds.field("time") >= pa.scalar(since, pa.timestamp("us", "UTC"))
        dataset = ds.dataset(paths, schema=self._schema, format="parquet")
        found = dataset.to_table(columns=["request_id"], filter=condition)
        return set(found.column("request_id").to_pylist())

    def prune(
        self, now: datetime, max_age_s: float | None = None, max_bytes: int | None = None
    ) -> Pruned:
        """Delete segments by age, then by size (:func:`prune_predictions`)."""
        removed = prune_predictions(self._folder, now, max_age_s, max_bytes)
        names = tuple(str(path.relative_to(self._folder)) for path in removed)
        return Pruned("segment", names, None, str(self._folder))

    def close(self) -> None:
        """Nothing to release: every write closes its files."""


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
    tables = [pq.read_table(path, schema=arrow_schema()) for path in paths]
    if not tables:
        return arrow_schema().empty_table()
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


def arrow_schema() -> Any:
    """The log's columns as a ``pyarrow.Schema`` (the table in the module docstring).

    Raises:
        DependencyMissing: pyarrow is not installed.
    """
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
            ("error", pa.string()),
            ("cpu_ms", pa.float64()),
        ]
    )
