"""The prediction log's PostgreSQL backend: each flush one transaction, each batch one ``COPY``.

:class:`PostgresSink` is the :class:`~modelport.monitoring.prediction_log.PredictionSink` for
installations that keep their state in PostgreSQL: a :class:`PredictionLog` built on it writes
every flush in one transaction, with one ``COPY prediction_log (...) FROM STDIN`` per batch
(psycopg 3's ``cursor.copy()``), so a flush is stored whole or not at all. When the database is
down the log keeps the records and writes them at a later flush (see the log's module).

The table ``prediction_log`` is created by the monitoring package's own Alembic history
(version table ``monitoring_alembic_version``), migrated when the sink first writes or reads. Its
columns are the Parquet schema's, with the same names and meanings:

================  ================  ===================================================
column            type              notes
================  ================  ===================================================
schema_version    smallint          :data:`~.prediction_log.SCHEMA_VERSION`
time              timestamptz       read back as UTC
shadow            boolean
latency_ms        double precision
identity          text (nullable)
inputs, outputs   text              the JSON text exactly as logged (cast with ``::jsonb``)
error             text (nullable)   the error kind of a failed request
cpu_ms            double precision  nullable
everything else   text
================  ================  ===================================================

Schema version 2 (migration ``0002``) added ``error`` and ``cpu_ms``; rows written before have
them null, as Parquet segments of version 1 read back.

``inputs`` and ``outputs`` are ``text``, not ``jsonb``: the log keeps what it was given byte for
byte (``jsonb`` reorders keys and refuses some JSON, such as ``NaN`` or an escaped NUL, which would
make a whole flush fail), it costs no parsing on the write path, and a query can still cast
(``inputs::jsonb -> 'x'``). NUL characters, which PostgreSQL text cannot hold, are written as
U+FFFD, and unpaired surrogates as ``?``.

Indexes: ``(deployment, time)`` for a deployment's queries, ``(deployment, request_id)`` for
:meth:`PostgresSink.find_request_ids`, and a BRIN index on ``time`` for retention and queries
across deployments.

Retention follows the Parquet rule: a UTC day of a deployment is deleted once its last moment is
``max_age_s`` old. ``max_bytes`` is measured on the rows, not the table's files: PostgreSQL
returns the space of deleted rows to the operating system only on ``VACUUM FULL`` (it reuses it
for new rows), so the table's file size would never fall below the limit after a ``DELETE``.
When ``pg_total_relation_size`` (files, indexes included) is within the limit nothing is done;
otherwise the rows are measured per deployment and day (``sum(pg_column_size(row))``) and the
oldest days go until what remains is within ``max_bytes``. The files then stay near that size
plus the indexes, as new rows fill the freed space.

SQLite is not a backend of the log: an installation on SQLite logs to Parquet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Text, any_, bindparam, delete, false, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.sql import ColumnElement

from modelport import db
from modelport.core.errors import ConfigError
from modelport.monitoring._schema import MIGRATIONS, prediction_log
from modelport.monitoring.prediction_log import (
    SCHEMA_VERSION,
    Batch,
    PredictionRecord,
    Pruned,
    RejectedBatch,
    arrow_schema,
)

__all__ = ["PostgresSink"]

log = logging.getLogger(__name__)

_COLUMNS: Final = tuple(column.name for column in prediction_log.columns)
_COPY: Final = f"COPY prediction_log ({', '.join(_COLUMNS)}) FROM STDIN"
_CONNECT_TIMEOUT_S: Final = "5"
# Arbitrary constant: the key of the advisory lock that lets one process prune at a time.
_PRUNE_LOCK_KEY: Final = 0x6D6F6E69746F7270  # "monitorp"
_DAY: Final = timedelta(days=1)
# A literal, not a parameter: the same day expression must read alike in SELECT and GROUP BY.
_UTC: Final[ColumnElement[str]] = literal_column("'UTC'")


class PostgresSink:
    """The prediction log's table in PostgreSQL.

    Nothing is connected on construction: the schema is migrated on the first write or read, and
    again after a failed write (the database may have been recreated meanwhile).

    Args:
        url: SQLAlchemy URL of a PostgreSQL database (``postgresql+psycopg://USER@HOST:PORT/DB``;
            ``postgresql://`` means psycopg 3). Without a ``connect_timeout`` in it, a
            connection attempt gives up after 5 seconds.

    Raises:
        ConfigError: The URL is malformed or names another database than PostgreSQL.
        DependencyMissing: psycopg is not installed.
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"invalid prediction log database URL {url!r}: {exc}") from None
        if parsed.get_backend_name() != "postgresql":
            raise ConfigError(
                f"the prediction log's postgresql backend needs a PostgreSQL URL, not "
                f"{db.display_url(parsed)!r} (postgresql+psycopg://USER@HOST:PORT/DB); "
                "with SQLite, log to Parquet (MODELPORT_PREDICTIONS__BACKEND=parquet)"
            )
        if parsed.drivername not in ("postgresql", "postgresql+psycopg"):
            raise ConfigError(
                f"the prediction log writes with psycopg 3's COPY: use postgresql+psycopg:// "
                f"(or postgresql://), not {parsed.drivername}://"
            )
        self._display = db.display_url(parsed)
        if "connect_timeout" not in parsed.query:
            # A host that does not answer must not hold the writer thread (or close()) for long.
            parsed = parsed.update_query_dict({"connect_timeout": _CONNECT_TIMEOUT_S})
        self._engine = db.open_engine(parsed.render_as_string(hide_password=False))
        self._migrated = False

    @property
    def url(self) -> str:
        """The database URL as given, password hidden."""
        return self._display

    def write(self, batches: Sequence[Batch]) -> None:
        """Write one flush in one transaction: one ``COPY`` per batch.

        Raises:
            RejectedBatch: PostgreSQL refused a value (nothing was written).
            Exception: The database cannot be reached or failed (nothing was written; the log
                retries).
        """
        import psycopg

        self._migrate()
        try:
            with db.write(self._engine) as conn:
                driver: Any = conn.connection.driver_connection  # a psycopg.Connection
                with driver.cursor() as cursor:
                    for batch in batches:
                        with cursor.copy(_COPY) as copy:
                            for record in batch.records:
                                copy.write_row(_row(record))
        except (psycopg.DataError, psycopg.IntegrityError, UnicodeError) as exc:
            raise RejectedBatch(f"PostgreSQL refused a record: {exc}") from exc
        except BaseException:
            self._migrated = False  # the table may be gone with the database: check next time
            raise

    def read(
        self,
        deployment: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> Any:
        """The logged predictions as a ``pyarrow.Table``, oldest first (the newest ``limit``).

        Raises:
            ConfigError: The database cannot be reached.
        """
        import pyarrow as pa

        self._migrate()
        table = prediction_log
        query = select(table)
        if deployment is not None:
            query = query.where(table.c.deployment == deployment)
        if since is not None:
            query = query.where(table.c.time >= since)
        if limit is not None:
            newest = query.order_by(table.c.time.desc()).limit(limit).subquery()
            query = select(newest).order_by(newest.c.time)
        else:
            query = query.order_by(table.c.time)
        with db.read(self._engine) as conn:
            rows = conn.execute(query).all()
        schema = arrow_schema()
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
        return pa.Table.from_arrays(
            [
                pa.array(values, type=field.type)
                for values, field in zip(columns, schema, strict=True)
            ],
            schema=schema,
        )

    def find_request_ids(
        self, deployment: str, request_ids: Sequence[str], since: datetime | None = None
    ) -> set[str]:
        """Which of ``request_ids`` have a non-shadow row of ``deployment`` (one query).

        The ids go as one array parameter (``request_id = ANY(%s)``), served by the
        ``(deployment, request_id)`` index.

        Raises:
            ConfigError: The database cannot be reached.
        """
        wanted = list(dict.fromkeys(request_ids))
        if not wanted:
            return set()
        self._migrate()
        table = prediction_log
        ids = bindparam("request_ids", [_text(i) for i in wanted], type_=ARRAY(Text))
        query = (
            select(table.c.request_id)
            .distinct()
            .where(
                table.c.deployment == deployment,
                table.c.request_id == any_(ids),
                table.c.shadow == false(),
            )
        )
        if since is not None:
            query = query.where(table.c.time >= since)
        with db.read(self._engine) as conn:
            found = set(conn.execute(query).scalars())
        # Ids are stored as PostgreSQL text can hold them: give back the caller's spelling.
        return {i for i in wanted if _text(i) in found}

    def prune(
        self, now: datetime, max_age_s: float | None = None, max_bytes: int | None = None
    ) -> Pruned:
        """Delete days by age, then the oldest days by the rows' size (see the module).

        Runs one at a time across processes (a transaction-level advisory lock).

        Raises:
            ConfigError: The database cannot be reached.
        """
        self._migrate()
        removed: list[tuple[str, str, int]] = []  # (day, deployment, records)
        with db.write(self._engine) as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PRUNE_LOCK_KEY})
            if max_age_s is not None:
                removed += _prune_by_age(conn, _first_kept_day(now, max_age_s))
            if max_bytes is not None:
                removed += _prune_by_size(conn, max_bytes)
        removed.sort()
        return Pruned(
            "deployment day",
            tuple(f"{deployment}/{day}" for day, deployment, _ in removed),
            sum(records for _, _, records in removed),
            self.url,
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def _migrate(self) -> None:
        if self._migrated:
            return
        try:
            db.migrate(self._engine, MIGRATIONS)
        except ConfigError as exc:
            if not isinstance(exc.__cause__, OperationalError):
                raise  # a schema from a newer modelport
            raise ConfigError(
                f"cannot open the prediction log's database {self.url}: {exc.__cause__.orig}"
            ) from exc
        self._migrated = True


def _row(record: PredictionRecord) -> tuple[Any, ...]:
    """One record as the ``COPY`` row, in the table's column order."""
    identity = record.identity
    return (
        SCHEMA_VERSION,
        _text(record.request_id),
        record.time if record.time.tzinfo is not None else record.time.replace(tzinfo=UTC),
        _text(record.deployment),
        _text(record.variant),
        _text(record.model),
        _text(record.model_version),
        record.shadow,
        record.latency_ms,
        None if identity is None else _text(identity),
        _text(_rendered(record.inputs)),
        _text(_rendered(record.outputs)),
        None if record.error is None else _text(record.error),
        record.cpu_ms,
    )


def _rendered(value: str | Callable[[], str]) -> str:
    # The log renders deferred fields before a batch is made; a sink used directly may not.
    return value if isinstance(value, str) else value()


def _text(value: str) -> str:
    """``value`` as PostgreSQL text can hold it: no NUL, no unpaired surrogate."""
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _first_kept_day(now: datetime, max_age_s: float) -> datetime:
    """The start of the oldest UTC day the age rule keeps.

    A day goes once its end is ``max_age_s`` old, that is when its start is at or before
    ``now - max_age_s - 1 day``: every day up to that moment's day goes.
    """
    latest = (now - timedelta(seconds=max_age_s) - _DAY).astimezone(UTC)
    return datetime(latest.year, latest.month, latest.day, tzinfo=UTC) + _DAY


def _prune_by_age(conn: Connection, first_kept: datetime) -> list[tuple[str, str, int]]:
    gone = (
        delete(prediction_log)
        .where(prediction_log.c.time < first_kept)
        .returning(prediction_log.c.time, prediction_log.c.deployment)
        .cte("gone")
    )
    day = func.date(func.timezone(_UTC, gone.c.time))
    counted = select(day, gone.c.deployment, func.count()).group_by(day, gone.c.deployment)
    return [(str(d), deployment, n) for d, deployment, n in conn.execute(counted)]


def _prune_by_size(conn: Connection, max_bytes: int) -> list[tuple[str, str, int]]:
    files = conn.execute(text("SELECT pg_total_relation_size('prediction_log')")).scalar_one()
    if files <= max_bytes:
        return []  # the rows take less than the files: nothing to measure
    day = func.date(func.timezone(_UTC, prediction_log.c.time))
    size = func.sum(func.pg_column_size(literal_column("prediction_log.*")))
    days = conn.execute(
        select(day, prediction_log.c.deployment, func.count(), size)
        .group_by(day, prediction_log.c.deployment)
        .order_by(day, prediction_log.c.deployment)
    ).all()
    total = sum(int(bytes_) for *_, bytes_ in days)
    removed: list[tuple[str, str, int]] = []
    for start, deployment, records, bytes_ in days:
        if total <= max_bytes:
            break
        begins = datetime(start.year, start.month, start.day, tzinfo=UTC)
        conn.execute(
            delete(prediction_log).where(
                prediction_log.c.deployment == deployment,
                prediction_log.c.time >= begins,
                prediction_log.c.time < begins + _DAY,
            )
        )
        total -= int(bytes_)
        removed.append((str(start), deployment, records))
    return removed
