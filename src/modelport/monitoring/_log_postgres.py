"""The PostgreSQL prediction log (a URL, :class:`~.prediction_postgres.PostgresSink`), in SQL.

The same questions as the Parquet reader asks DuckDB, asked of the ``prediction_log`` table in
one transaction's snapshot (``REPEATABLE READ``). Feedback goes to a temporary table by
``COPY``; results come back by ``COPY ... TO STDOUT`` as CSV parsed by pyarrow, and each arm's
requests as one binary ``float8[]`` per slice of the window (no Python object per row). Every
value is a query parameter; a table that predates a column reads it as nulls.

A URL that is malformed, or a database that cannot be reached, raises
:class:`~modelport.core.errors.ConfigError`; an error of PostgreSQL once connected (a query
refused or cancelled, a lock not granted in time, the connection lost) raises
:class:`~modelport.core.errors.ServiceUnavailable`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from modelport.core.errors import ConfigError, DependencyMissing, ServiceUnavailable
from modelport.monitoring._log_tables import (
    CALLER_FAULTS,
    Pick,
    Query,
    Tables,
    Window,
    empty,
    nothing,
    table_types,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["PostgresReader"]

_PG_WINDOW: Final = (
    "{t}deployment = %(deployment)s AND {t}time >= %(since)s AND {t}time < %(until)s"
)

# Per arm, one binary float8[n][3] (latency, CPU time or NaN, failed as 0 or 1): no Python
# object per record, and one aggregate, so the three stay aligned in a parallel plan. Asked
# per slice of the window (_SLICE), so that a value stays far under PostgreSQL's 1 GB.
_PG_REQUESTS: Final = """SELECT array_position(%(arms)s::text[], variant) - 1,
       array_send(array_agg(ARRAY[
           latency_ms, coalesce({cpu}, 'NaN'),
           ({error} IS NOT NULL AND NOT ({error} = ANY(%(caller_faults)s::text[])))::int
       ]::float8[]))
FROM prediction_log
WHERE {window} AND NOT shadow AND variant = ANY(%(arms)s::text[])
GROUP BY 1"""

_SLICE: Final = timedelta(hours=6)
"""Up to 29 million records per arm in one slice (1,300 a second) fit in one array."""

_PG_COUNTS: Final = """SELECT variant, count(*) FROM prediction_log
WHERE {window} AND NOT shadow GROUP BY variant"""

_PG_LABELLED: Final = """SELECT f.fb, coalesce(array_position(%(arms)s::text[], l.variant), 0) - 1,
       {error} IS NULL AND l.variant = ANY(%(arms)s::text[]),
       CASE WHEN {error} IS NULL AND l.variant = ANY(%(arms)s::text[]) THEN {value} END
FROM pg_temp.feedback_ids AS f JOIN prediction_log AS l ON l.request_id = f.request_id
WHERE {window} AND NOT l.shadow"""

_PG_PAIRED: Final = """SELECT array_position(%(shadows)s::text[], s.variant) - 1, a.latency_ms,
       s.latency_ms, {answer_label}, {shadow_label}, {answer_score}, {shadow_score}
FROM prediction_log AS s JOIN prediction_log AS a ON a.request_id = s.request_id
WHERE {s_window} AND s.shadow AND {s_error} IS NULL AND s.variant = ANY(%(shadows)s::text[])
  AND {a_window} AND NOT a.shadow AND {a_error} IS NULL"""

_PG_FAILURES: Final = """SELECT variant, count(*) FROM prediction_log
WHERE {window} AND shadow AND {error} IS NOT NULL AND variant = ANY(%(shadows)s::text[])
GROUP BY variant"""


def _pg_output(table: str, pick: Pick | None, parameter: str) -> str:
    """PostgreSQL SQL for an output's JSON text (``json``, unlike ``jsonb``, keeps key order)."""
    if pick is None:
        return "NULL::text"
    if pick.output is None:
        return f"(SELECT value::text FROM json_each({table}.outputs::json) LIMIT 1)"
    return f"({table}.outputs::json -> %({parameter})s)::text"


class PostgresReader:
    """The questions asked of the ``prediction_log`` table, in one transaction's snapshot."""

    def __init__(self, url: str, deployment: str, window: Window) -> None:
        self._conninfo, self._display = _conninfo(url)
        self._where = f"deployment {deployment!r} in {self._display}"
        self._params: dict[str, Any] = {
            "deployment": deployment,
            "since": window[0],
            "until": window[1],
        }
        self._conn: Any = None
        self._columns: set[str] = set()

    def close(self) -> None:
        """Close the connection, if one was opened."""
        if self._conn is not None:
            self._conn.close()

    def counts(self) -> dict[str, int]:
        """Non-shadow records per variant."""
        with self._reading():
            if not self._present():
                return {}
            return self._grouped(_PG_COUNTS.format(window=_PG_WINDOW.format(t="")))

    def read(self, query: Query) -> Tables:
        """The tables of ``query`` (see :class:`~._log_tables.Tables`)."""
        with self._reading():
            if not self._present():
                return nothing()
            return self._read(query)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """PostgreSQL's errors once connected (see the module) as unavailable."""
        psycopg = _psycopg()
        try:
            yield
        except psycopg.Error as exc:
            raise ServiceUnavailable(
                f"cannot read the prediction log of {self._where}: {exc}"
            ) from exc

    def _read(self, query: Query) -> Tables:
        error, cpu = self._column("", "error", "text"), self._column("", "cpu_ms", "float8")
        statement = _PG_REQUESTS.format(error=error, cpu=cpu, window=_PG_WINDOW.format(t=""))
        params = {
            "arms": query.arms,
            "shadows": query.shadows,
            "caller_faults": list(CALLER_FAULTS),
            "value": query.value.output,
            "score": None if query.score is None else query.score.output,
        }
        requests = self._requests(statement, params)
        labelled, paired = empty(**table_types("labelled")), empty(**table_types("paired"))
        failures: dict[str, int] = {}
        if query.feedback.num_rows:
            self._send_feedback(query.feedback)
            statement = _PG_LABELLED.format(
                error=self._column("l.", "error", "text"),
                value=_pg_output("l", query.value, "value"),
                window=_PG_WINDOW.format(t="l."),
            )
            labelled = self._copy(statement, table_types("labelled"), params)
        if query.shadows:
            label = query.value if query.labels else None
            statement = _PG_PAIRED.format(
                answer_label=_pg_output("a", label, "value"),
                shadow_label=_pg_output("s", label, "value"),
                answer_score=_pg_output("a", query.score, "score"),
                shadow_score=_pg_output("s", query.score, "score"),
                s_error=self._column("s.", "error", "text"),
                a_error=self._column("a.", "error", "text"),
                s_window=_PG_WINDOW.format(t="s."),
                a_window=_PG_WINDOW.format(t="a."),
            )
            paired = self._copy(statement, table_types("paired"), params)
            if "error" in self._columns:
                window = _PG_WINDOW.format(t="")
                statement = _PG_FAILURES.format(error="error", window=window)
                failures = self._grouped(statement, shadows=query.shadows)
        return Tables(requests, labelled, paired, failures)

    def _present(self) -> bool:
        """Connect; whether the table exists (nothing was ever logged to it otherwise)."""
        if self._conn is None:
            self._connect()
        return bool(self._columns)

    def _connect(self) -> None:
        psycopg = _psycopg()
        try:
            self._conn = psycopg.connect(self._conninfo, connect_timeout=5)
        except psycopg.Error as exc:  # unreachable, refused, or an option libpq does not know
            raise ConfigError(
                f"cannot open the prediction log's database {self._display}: {exc}"
            ) from None
        # Every query of the call sees the same rows.
        self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with self._conn.cursor() as cursor:
            cursor.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = "
                "to_regclass('prediction_log') AND attnum > 0 AND NOT attisdropped"
            )
            self._columns = {row[0] for row in cursor.fetchall()}

    def _column(self, prefix: str, name: str, kind: str) -> str:
        """``prefix + name``, or a typed null where the table predates the column."""
        return prefix + name if name in self._columns else f"NULL::{kind}"

    def _requests(self, statement: str, params: dict[str, Any]) -> pa.Table:
        """The ``requests`` table out of the per-arm binary arrays of :data:`_PG_REQUESTS`."""
        import pyarrow as pa

        parts: list[tuple[int, np.ndarray]] = []
        start, end = self._params["since"], self._params["until"]
        with self._conn.cursor(binary=True) as cursor:
            while start < end:
                window = {"since": start, "until": min(start + _SLICE, end)}
                cursor.execute(statement, self._params | params | window)
                parts += [(arm, _float8_matrix(data)) for arm, data in cursor.fetchall()]
                start += _SLICE
        if not parts:
            return empty(**table_types("requests"))
        cells = np.concatenate([matrix for _, matrix in parts])
        arm = np.concatenate([np.full(len(matrix), arm, np.int32) for arm, matrix in parts])
        return pa.table(
            {
                "arm": arm,
                "latency_ms": cells[:, 0],
                "failed": cells[:, 2] != 0,
                "cpu_ms": cells[:, 1],
            }
        )

    def _grouped(self, statement: str, **params: Any) -> dict[str, int]:
        with self._conn.cursor() as cursor:
            cursor.execute(statement, self._params | params)
            return {variant: int(n) for variant, n in cursor.fetchall()}

    def _send_feedback(self, feedback: pa.Table) -> None:
        """The feedback's ids in a temporary table, by one ``COPY`` of CSV."""
        import pyarrow.compute as pc
        import pyarrow.csv as csv

        # PostgreSQL text holds no NUL: the sink logs one as U+FFFD, so look that up.
        ids = feedback.set_column(
            0, "request_id", pc.replace_substring(feedback.column(0), "\x00", "\ufffd")
        )
        ids = ids.filter(pc.is_valid(ids.column("request_id")))
        data = io.BytesIO()
        csv.write_csv(ids, data, csv.WriteOptions(include_header=False))
        with self._conn.cursor() as cursor:
            cursor.execute(
                "CREATE TEMPORARY TABLE feedback_ids (request_id text, fb bigint) ON COMMIT DROP"
            )
            with cursor.copy("COPY pg_temp.feedback_ids FROM STDIN (FORMAT csv)") as copy:
                copy.write(data.getbuffer())
            cursor.execute("ANALYZE pg_temp.feedback_ids")

    def _copy(self, statement: str, types: dict[str, Any], params: dict[str, Any]) -> pa.Table:
        """Run ``statement`` as ``COPY (...) TO STDOUT`` (CSV) and parse it with pyarrow."""
        import pyarrow.csv as csv

        buffer = io.BytesIO()
        with self._conn.cursor() as cursor:
            copy_statement = f"COPY ({statement}) TO STDOUT (FORMAT csv)"
            with cursor.copy(copy_statement, self._params | params) as copy:
                for chunk in copy:
                    buffer.write(chunk)
        if not buffer.tell():
            return empty(**types)
        buffer.seek(0)
        return csv.read_csv(
            buffer,
            read_options=csv.ReadOptions(column_names=list(types)),
            parse_options=csv.ParseOptions(newlines_in_values=True),
            convert_options=csv.ConvertOptions(
                column_types=types,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise DependencyMissing(
            "reading the prediction log in PostgreSQL needs psycopg: "
            "pip install 'modelport[postgres]'"
        ) from None
    return psycopg


def _float8_matrix(data: bytes) -> np.ndarray:
    """A two-dimensional ``float8[]`` in PostgreSQL's binary form (``array_send``), no nulls.

    The form: dimensions, a null flag, the element type, then per dimension its length and
    lower bound, then per element its byte length (8) and the big-endian value.
    """
    header = np.frombuffer(data, ">i4", 7)
    rows, columns = int(header[3]), int(header[5])
    cells = np.frombuffer(data, np.dtype([("size", ">i4"), ("value", ">f8")]), rows * columns, 28)
    return cells["value"].astype(np.float64).reshape(rows, columns)


def _conninfo(url: str) -> tuple[str, str]:
    """The libpq URI of a SQLAlchemy PostgreSQL URL, and the URL to show (password hidden)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid prediction log database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(
            "the prediction log is read from a Parquet folder or a PostgreSQL URL "
            f"(postgresql+psycopg://USER@HOST:PORT/DB), not {parsed.render_as_string()!r}"
        )
    from psycopg.conninfo import make_conninfo

    # From the URL's parts, not its text: libpq reads "+" in a URI's query as a plus sign,
    # where SQLAlchemy writes it for a space (options=-csearch_path%3Dx%20-c...).
    parts: dict[str, str | int | None] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    for key, value in parsed.query.items():
        parts[key] = value if isinstance(value, str) else value[-1]
    given = {key: value for key, value in parts.items() if value is not None}
    try:
        conninfo = make_conninfo("", **given)
    except Exception as exc:  # psycopg's ProgrammingError: an option libpq does not know
        raise ConfigError(f"invalid prediction log database URL {url!r}: {exc}") from None
    return conninfo, parsed.render_as_string()
