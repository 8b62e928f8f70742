"""PostgreSQL sources: describe, stream as Arrow, append; psycopg 3 is imported when used.

DuckDB's ``postgres`` extension is downloaded at run time (no wheel exists for the DuckDB in
use), so rows come over psycopg instead: a server-side cursor fetches ``batch_rows`` rows at a
time, each fetch becomes one Arrow record batch, and DuckDB scans the
:class:`pyarrow.RecordBatchReader`, so memory holds one batch, not the table. Only the columns
a read needs are selected and its time bounds are a ``WHERE`` clause in PostgreSQL.

Every session runs with ``TimeZone=UTC``: ``timestamptz`` values arrive in UTC and naive
``timestamp`` bounds and values are taken as UTC, as everywhere in the feature store.

Errors::

    ServiceUnavailable  the server cannot be reached or refuses the login
    NotFound            the table does not exist
    ConfigError         the query does not run, or a column is missing
    InvalidInput        pushed rows do not fit the table (COPY refused them)
    DependencyMissing   psycopg is not installed (pip install 'modelport[postgres]')
"""

from __future__ import annotations

import importlib
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa

from modelport.core.errors import (
    ConfigError,
    DependencyMissing,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)
from modelport.features.definitions import PostgreSQLSource, source_label

__all__ = [
    "BATCH_ROWS",
    "Column",
    "Stream",
    "append_rows",
    "columns_of",
    "describe",
    "display_url",
    "stream",
]

#: Rows per server-side fetch, and so per Arrow record batch.
BATCH_ROWS = 10_000
_CONNECT_TIMEOUT_S = 10

# PostgreSQL type OID -> (the DuckDB type name the source checks compare, the Arrow type).
_TYPES: dict[int, tuple[str, pa.DataType]] = {
    16: ("BOOLEAN", pa.bool_()),
    17: ("BLOB", pa.binary()),
    19: ("VARCHAR", pa.string()),
    20: ("BIGINT", pa.int64()),
    21: ("SMALLINT", pa.int16()),
    23: ("INTEGER", pa.int32()),
    25: ("VARCHAR", pa.string()),
    700: ("FLOAT", pa.float32()),
    701: ("DOUBLE", pa.float64()),
    1042: ("VARCHAR", pa.string()),
    1043: ("VARCHAR", pa.string()),
    1082: ("DATE", pa.date32()),
    1114: ("TIMESTAMP", pa.timestamp("us")),
    1184: ("TIMESTAMP WITH TIME ZONE", pa.timestamp("us", tz="UTC")),
    1700: ("DECIMAL", pa.float64()),  # streamed as float8: Float64 is the type that admits it
}
_NUMERIC = 1700


class Column:
    """A column of a PostgreSQL source.

    Attributes:
        name: Its name.
        duckdb_type: The DuckDB type name of the values (the PostgreSQL name, upper case,
            for types without a DuckDB counterpart, which no feature type admits).
        arrow_type: The Arrow type it streams as (text for types without a counterpart).
        oid: The PostgreSQL type OID.
    """

    def __init__(self, name: str, oid: int, display: str) -> None:
        self.name = name
        self.oid = oid
        known = _TYPES.get(oid)
        self.duckdb_type = known[0] if known else display.upper()
        self.arrow_type: pa.DataType = known[1] if known else pa.string()

    def select(self) -> str:
        """The column's ``SELECT`` expression, converted to what :attr:`arrow_type` holds."""
        quoted = _ident(self.name)
        if self.oid == _NUMERIC:
            return f"{quoted}::float8 AS {quoted}"
        if self.oid not in _TYPES:
            return f"{quoted}::text AS {quoted}"
        return quoted


def display_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _psycopg() -> Any:
    try:
        return importlib.import_module("psycopg")
    except ImportError:
        raise DependencyMissing(
            "PostgreSQL sources need psycopg: pip install 'modelport[postgres]'"
        ) from None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _relation(source: PostgreSQLSource) -> str:
    if source.table_parts:
        return ".".join(_ident(p) for p in source.table_parts)
    return f"({source.query}) AS __mp_query"


@contextmanager
def _connect(source: PostgreSQLSource) -> Iterator[Any]:
    psycopg = _psycopg()
    url = source.url.replace("postgresql+psycopg2://", "postgresql://").replace(
        "postgresql+psycopg://", "postgresql://"
    )
    settings = psycopg.conninfo.conninfo_to_dict(url)
    settings.setdefault("connect_timeout", str(_CONNECT_TIMEOUT_S))
    options = settings.get("options", "")
    settings["options"] = f"{options} -c TimeZone=UTC".strip()
    try:
        conn = psycopg.connect(**settings)
    except psycopg.Error as exc:
        raise ServiceUnavailable(
            f"cannot connect to PostgreSQL at {display_url(source.url)} for "
            f"{source_label(source)}: {str(exc).strip()}"
        ) from None
    try:
        yield conn
    finally:
        conn.close()


def _query_error(source: PostgreSQLSource, exc: Exception) -> Exception:
    psycopg = _psycopg()
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return NotFound(
            f"{source_label(source)} does not exist in {display_url(source.url)}: {message}"
        )
    if isinstance(exc, psycopg.OperationalError):
        return ServiceUnavailable(f"reading {source_label(source)} failed: {message}")
    return ConfigError(f"cannot read {source_label(source)}: {message}")


def describe(source: PostgreSQLSource) -> dict[str, Column]:
    """The source's columns, by name, from the result description of a ``LIMIT 0`` query.

    Raises:
        ServiceUnavailable: The server cannot be reached.
        NotFound: The table does not exist.
        ConfigError: The query does not run.
    """
    psycopg = _psycopg()
    with _connect(source) as conn:
        try:
            cur = conn.execute(f"SELECT * FROM {_relation(source)} LIMIT 0")
        except psycopg.Error as exc:
            raise _query_error(source, exc) from None
        return {d.name: Column(d.name, d.type_code, d.type_display) for d in cur.description}


def _timestamp(ts: datetime) -> str:
    # isoformat of a naive datetime is digits, '-', ':', '.' and a space: safe to inline, and
    # inlining (no parameters) leaves a source query's own '%' characters alone.
    return f"'{ts.replace(tzinfo=None).isoformat(' ')}'::timestamp"


def _select(
    source: PostgreSQLSource,
    columns: Sequence[Column],
    lower: datetime | None,
    upper: datetime | None,
    not_null: Sequence[str],
) -> str:
    ts = _ident(source.timestamp_field)
    where = [f"{_ident(c)} IS NOT NULL" for c in not_null]
    if lower is not None:
        where.append(f"{ts} >= {_timestamp(lower)}")
    if upper is not None:
        where.append(f"{ts} <= {_timestamp(upper)}")
    sql = f"SELECT {', '.join(c.select() for c in columns)} FROM {_relation(source)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql


class Stream:
    """An open stream of a source's rows.

    Attributes:
        reader: The batches, for DuckDB to scan once.
        error: The error that ended the stream early, if any: DuckDB reports a failure in a
            scan as its own error, and the caller raises this one instead.
    """

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self.reader = reader
        self.error: Exception | None = None


@contextmanager
def stream(
    source: PostgreSQLSource,
    columns: Sequence[Column],
    *,
    lower: datetime | None = None,
    upper: datetime | None = None,
    not_null: Sequence[str] = (),
    batch_rows: int = BATCH_ROWS,
) -> Iterator[Stream]:
    """The rows of ``columns`` with an event time in ``[lower, upper]``, as Arrow batches.

    The connection opens when the first batch is read and closes when the reader is
    exhausted or this context exits, whichever comes first.

    Args:
        source: The source.
        columns: The columns to select (from :func:`describe`).
        lower: The earliest event time wanted (naive UTC), or ``None``.
        upper: The latest event time wanted (naive UTC), or ``None``.
        not_null: Columns whose null rows are left out (join keys).
        batch_rows: Rows per fetch and per record batch.

    Yields:
        The stream: a reader of batches of the columns' Arrow types.
    """
    schema = pa.schema([(c.name, c.arrow_type) for c in columns])
    sql = _select(source, columns, lower, upper, not_null)
    psycopg = _psycopg()
    opened: Stream

    def batches() -> Generator[pa.RecordBatch, None, None]:
        try:
            with _connect(source) as conn, conn.cursor(name="__mp_stream", binary=True) as cur:
                cur.execute(sql)
                while rows := cur.fetchmany(batch_rows):
                    values = list(zip(*rows, strict=True))
                    del rows
                    yield pa.record_batch(
                        [pa.array(v, f.type) for v, f in zip(values, schema, strict=True)],
                        schema=schema,
                    )
        except psycopg.Error as exc:
            opened.error = _query_error(source, exc)
            raise opened.error from None
        except ServiceUnavailable as exc:
            opened.error = exc
            raise

    generator = batches()
    opened = Stream(pa.RecordBatchReader.from_batches(schema, generator))
    try:
        yield opened
    finally:
        generator.close()  # closes the cursor and connection if DuckDB stopped early


def append_rows(
    source: PostgreSQLSource, column_names: Sequence[str], batches: Iterator[pa.RecordBatch]
) -> int:
    """Append rows to the source's table with ``COPY ... FROM STDIN``, in one transaction.

    Args:
        source: A source with ``table=``.
        column_names: The columns the batches hold, in order (each one of the table's).
        batches: The rows; timestamps naive UTC or aware.

    Returns:
        The rows appended.

    Raises:
        ConfigError: The source is a query.
        ServiceUnavailable: The server cannot be reached.
        InvalidInput: PostgreSQL refused the rows (a value of the wrong type, a constraint).
    """
    if not source.table_parts:
        raise ConfigError(
            f"cannot append to {source_label(source)}: rows are appended to a table; give the "
            "PostgreSQLSource table= instead of query="
        )
    psycopg = _psycopg()
    target = f"{_relation(source)} ({', '.join(_ident(c) for c in column_names)})"
    rows = 0
    with _connect(source) as conn:
        try:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(f"COPY {target} FROM STDIN") as copy:
                    for batch in batches:
                        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                        for row in zip(*columns, strict=True):
                            copy.write_row(row)
                        rows += batch.num_rows
        except psycopg.OperationalError as exc:
            raise ServiceUnavailable(
                f"appending to {source_label(source)} failed: {str(exc).strip()}"
            ) from None
        except psycopg.errors.UndefinedTable as exc:
            raise _query_error(source, exc) from None
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0]
            raise InvalidInput(
                f"PostgreSQL refused the rows for {source_label(source)}: {message}"
            ) from None
    return rows


def columns_of(described: Mapping[str, Column], names: Sequence[str]) -> list[Column]:
    """The described columns called ``names``, in order, each once."""
    seen: dict[str, Column] = {}
    for name in names:
        if name and name not in seen:
            seen[name] = described[name]
    return list(seen.values())
