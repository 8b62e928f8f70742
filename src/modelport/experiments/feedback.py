"""Feedback in the metadata database (SQLite or PostgreSQL): the true outcomes of predictions.

A feedback row says what really happened to one logged prediction of a deployment, found by its
request id: a label (classification) or a value (regression), possibly hours after the answer.
The prediction log is joined with these rows when an experiment is evaluated. A later feedback
for the same request replaces the earlier one (an upsert keyed by deployment and request id).

Writing many rows is one transaction and one upsert (``INSERT .. ON CONFLICT DO UPDATE``): on
SQLite the driver's ``executemany``, after counting the rows already there under the write lock
the transaction holds from its start; on PostgreSQL a single statement over the rows sent as
arrays (``unnest``), whose ``RETURNING`` counts the inserted rows by their ``xmax`` (0 for an
inserted row). Fifty thousand rows take about 0.3 s on SQLite and 0.6 s on PostgreSQL.

:meth:`FeedbackStore.read` returns a deployment's rows as a ``pyarrow.Table``, fetched with the
driver's own cursor in blocks that Arrow turns into columns (a million rows in about a second on
SQLite), since the experiments' analysis reads them all at every evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from sqlalchemy import func, select

from modelport import db
from modelport.core.clock import Clock
from modelport.core.errors import InvalidInput
from modelport.experiments._schema import MIGRATIONS, feedback

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Feedback", "FeedbackKind", "FeedbackStore", "FeedbackWritten"]

FeedbackKind = Literal["label", "value"]
"""``label``: a classification's true class; ``value``: a regression's true number."""

_FETCH_ROWS: Final = 65_536
"""Rows fetched from the driver at a time when reading: memory stays bounded by a block."""
_LOOKUP_IDS: Final = 500
"""Request ids per ``IN (...)`` list (SQLite allows at most 32,766 parameters a statement)."""
_UPDATED: Final = ("kind", "truth", "value", "received_at", "received_by")


@dataclass(frozen=True, slots=True)
class Feedback:
    """One request's true outcome, checked (see :mod:`modelport.service.feedback`).

    Attributes:
        request_id: The request id of the logged prediction.
        kind: ``label`` or ``value``.
        truth_json: The truth as JSON text: a scalar, or a list with one per row of the request.
        value: The number itself when ``kind`` is ``value`` and one number was given, else
            ``None``.
    """

    request_id: str
    kind: FeedbackKind
    truth_json: str
    value: float | None


@dataclass(frozen=True, slots=True)
class FeedbackWritten:
    """What :meth:`FeedbackStore.put` did.

    Attributes:
        inserted: Rows for requests that had no feedback yet.
        replaced: Rows that replaced an earlier feedback for the same request.
    """

    inserted: int
    replaced: int


class FeedbackStore(db.MigratedDatabase):
    """The feedback table, migrated to the newest schema on open.

    Args:
        url: SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DB``.
        clock: Source of the times rows are received at.

    Raises:
        ConfigError: The URL is unsupported or the database cannot be reached.
        DependencyMissing: The PostgreSQL driver is not installed.
    """

    def __init__(self, url: str, clock: Clock) -> None:
        super().__init__(url, MIGRATIONS)
        self._clock = clock

    def put(self, deployment: str, items: Sequence[Feedback], actor: str) -> FeedbackWritten:
        """Write feedback for requests of ``deployment``, all in one transaction.

        Args:
            deployment: The deployment the requests were made to.
            items: Checked feedback, one per request id.
            actor: Who sent it (recorded with each row).

        Returns:
            How many rows were new and how many replaced an earlier feedback.

        Raises:
            InvalidInput: A request id appears twice in ``items``.
        """
        if not items:
            return FeedbackWritten(0, 0)
        ids = [item.request_id for item in items]
        if len(set(ids)) != len(ids):
            raise InvalidInput(
                f"feedback for deployment {deployment!r} names a request id more than once; "
                "send one feedback per request"
            )
        received_at = self._clock.now().astimezone(UTC)
        with db.write(self._engine) as conn:
            cursor = conn.connection.cursor()
            try:
                if conn.dialect.name == "postgresql":
                    inserted = _upsert_postgresql(cursor, deployment, items, received_at, actor)
                else:
                    inserted = _upsert_sqlite(cursor, deployment, items, received_at, actor)
            finally:
                cursor.close()
        return FeedbackWritten(inserted, len(items) - inserted)

    def read(self, deployment: str, since: datetime | None = None) -> pa.Table:
        """Every feedback row of ``deployment`` (received at or after ``since``), in no order.

        Args:
            deployment: The deployment.
            since: Only rows received at or after this aware time; ``None`` for all.

        Returns:
            A table with the columns ``request_id``, ``kind``, ``truth`` (JSON text) and
            ``value`` (float64, null unless one number was given).

        Raises:
            ValueError: ``since`` has no timezone.
        """
        import pyarrow as pa

        schema = pa.schema(
            [
                ("request_id", pa.string()),
                ("kind", pa.string()),
                ("truth", pa.string()),
                ("value", pa.float64()),
            ]
        )
        # Arrow converts a block of the driver's row tuples to columns in C: building each
        # column in Python doubles the time (measured: a million rows in 0.9 s against 1.5 s).
        rows_type = pa.struct(list(schema))
        batches = []
        with db.read(self._engine) as conn:
            sql, parameters = _read_query(conn.dialect.name, deployment, since)
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql, parameters)
                while rows := cursor.fetchmany(_FETCH_ROWS):
                    columns = pa.array(rows, rows_type).flatten()
                    batches.append(pa.RecordBatch.from_arrays(columns, schema=schema))
            finally:
                cursor.close()
        return pa.Table.from_batches(batches, schema=schema)

    def count(self, deployment: str) -> int:
        """How many requests of ``deployment`` have feedback."""
        query = (
            select(func.count()).select_from(feedback).where(feedback.c.deployment == deployment)
        )
        with db.read(self._engine) as conn:
            return int(conn.execute(query).scalar_one())


_SQLITE_UPSERT: Final = """\
INSERT INTO feedback (deployment, request_id, kind, truth, value, received_at, received_by)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (deployment, request_id) DO UPDATE SET
    kind = excluded.kind, truth = excluded.truth, value = excluded.value,
    received_at = excluded.received_at, received_by = excluded.received_by"""

_POSTGRESQL_UPSERT: Final = """\
WITH written AS (
    INSERT INTO feedback (deployment, request_id, kind, truth, value, received_at, received_by)
    SELECT %(deployment)s, r, k, t, v, %(received_at)s, %(actor)s
    FROM unnest(%(ids)s::text[], %(kinds)s::text[], %(truths)s::text[], %(values)s::float8[])
        AS given (r, k, t, v)
    ON CONFLICT (deployment, request_id) DO UPDATE SET
        kind = excluded.kind, truth = excluded.truth, value = excluded.value,
        received_at = excluded.received_at, received_by = excluded.received_by
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) FROM written"""


def _upsert_sqlite(
    cursor: Any, deployment: str, items: Sequence[Feedback], received_at: datetime, actor: str
) -> int:
    """Upsert ``items`` on SQLite; return how many were new.

    The transaction holds the write lock from its start (``BEGIN IMMEDIATE``), so the rows
    counted before the upsert are exactly the ones it replaces.
    """
    ids = [item.request_id for item in items]
    existing = 0
    for start in range(0, len(ids), _LOOKUP_IDS):
        chunk = ids[start : start + _LOOKUP_IDS]
        marks = ", ".join("?" * len(chunk))
        cursor.execute(
            f"SELECT count(*) FROM feedback WHERE deployment = ? AND request_id IN ({marks})",
            (deployment, *chunk),
        )
        existing += cursor.fetchone()[0]
    at = _sqlite_time(received_at)
    cursor.executemany(
        _SQLITE_UPSERT,
        [(deployment, i.request_id, i.kind, i.truth_json, i.value, at, actor) for i in items],
    )
    return len(ids) - existing


def _upsert_postgresql(
    cursor: Any, deployment: str, items: Sequence[Feedback], received_at: datetime, actor: str
) -> int:
    """Upsert ``items`` on PostgreSQL in one statement; return how many were new.

    The rows travel as four arrays (one statement, one round trip: six times faster than a
    statement per row). A row version an ``INSERT`` made has ``xmax`` 0; one that
    ``ON CONFLICT DO UPDATE`` made carries the updating transaction's id there.
    """
    cursor.execute(
        _POSTGRESQL_UPSERT,
        {
            "deployment": deployment,
            "received_at": received_at,
            "actor": actor,
            "ids": [i.request_id for i in items],
            "kinds": [i.kind for i in items],
            "truths": [i.truth_json for i in items],
            "values": [i.value for i in items],
        },
    )
    return int(cursor.fetchone()[0])


def _sqlite_time(at: datetime) -> str:
    """An aware time as SQLAlchemy's ``UTCDateTime`` stores it in SQLite: UTC wall time, text."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _read_query(
    dialect: str, deployment: str, since: datetime | None
) -> tuple[str, tuple[Any, ...]]:
    """The driver-level query of :meth:`FeedbackStore.read` and its parameters."""
    mark = "?" if dialect == "sqlite" else "%s"
    sql = f"SELECT request_id, kind, truth, value FROM feedback WHERE deployment = {mark}"
    if since is None:
        return sql, (deployment,)
    if since.tzinfo is None:
        raise ValueError(f"naive datetime {since.isoformat()} given; use an aware (UTC) one")
    # SQLite keeps UTC wall times as text, in the form SQLAlchemy writes (compared as text).
    bound: Any = _sqlite_time(since) if dialect == "sqlite" else since
    return f"{sql} AND received_at >= {mark}", (deployment, bound)
