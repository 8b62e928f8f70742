"""The Parquet prediction log (a folder, :class:`~.prediction_log.ParquetSink`), read by DuckDB.

Only the deployment's day folders that can hold the window are opened. The request ids wanted
(the feedback's, a ``pyarrow.Table`` registered with DuckDB, and the shadow copies') are joined
with the answered records in *one* pass over ``request_id`` and ``outputs``, and the outputs
JSON is cut (``json_extract``) for the matched records only; labelled rows and shadow pairs are
then joined from that small table. Segments of schema version 1 read their missing ``error``
and ``cpu_ms`` as nulls. Every value is a query parameter.

An error of DuckDB while it reads (a segment that is no Parquet, one that pruning deleted while
it was read) or of listing the folder is raised as
:class:`~modelport.core.errors.ServiceUnavailable`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from modelport.core.errors import DependencyMissing, ServiceUnavailable
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

__all__ = ["ParquetReader", "load_duckdb"]

_LOG: Final = """log AS (
    SELECT *{missing} FROM read_parquet($files, union_by_name = true)
    WHERE deployment = $deployment AND time >= $since AND time < $until
)"""

_DUCK_REQUESTS: Final = """WITH {log}
SELECT list_position($arms::VARCHAR[], variant)::INTEGER - 1 AS arm, latency_ms,
       error IS NOT NULL AND NOT list_contains($caller_faults::VARCHAR[], error) AS failed,
       cpu_ms
FROM log WHERE NOT shadow AND list_contains($arms::VARCHAR[], variant)"""

_DUCK_COUNTS: Final = """WITH {log}
SELECT variant, count(*) AS n FROM log WHERE NOT shadow GROUP BY variant"""

# The shadow copies, read once: only the rows of a shadow are decoded past the filter.
_DUCK_SHADOW_ROWS: Final = """CREATE TEMPORARY TABLE shadow_rows AS WITH {log}
SELECT request_id, shadow, failed, latency_ms,
       CASE WHEN $labels THEN {value} END AS label, {score} AS score
FROM (
    SELECT request_id, list_position($shadows::VARCHAR[], variant)::INTEGER - 1 AS shadow,
           error IS NOT NULL AS failed, latency_ms, CASE WHEN error IS NULL THEN {json} END AS j
    FROM log WHERE shadow AND list_contains($shadows::VARCHAR[], variant)
)"""

# The one pass over the answered records' request ids and outputs, for the ids wanted: each
# feedback row's (with its position, ``fb``) and each answered shadow copy's (``fb`` null).
# DuckDB pushes a Bloom filter of the wanted ids into the scan, so the other columns are
# decoded for matching records only.
_DUCK_ANSWERS: Final = """CREATE TEMPORARY TABLE answers AS WITH {log},
wanted AS (
    SELECT request_id, fb FROM feedback_ids
    UNION ALL SELECT {distinct} request_id, NULL::BIGINT FROM shadow_rows WHERE NOT failed
)
SELECT request_id, fb, arm, ok, latency_ms, {value} AS value,
       CASE WHEN fb IS NULL THEN {score} END AS score
FROM (
    SELECT w.request_id, w.fb,
           coalesce(list_position($arms::VARCHAR[], l.variant), 0)::INTEGER - 1 AS arm,
           l.error IS NULL AS ok, l.latency_ms, CASE WHEN l.error IS NULL THEN {json} END AS j
    FROM wanted AS w JOIN log AS l ON l.request_id = w.request_id
    WHERE NOT l.shadow
)"""

_DUCK_LABELLED: Final = """SELECT fb, arm, ok AND arm >= 0 AS answered,
       CASE WHEN ok AND arm >= 0 THEN value END AS value
FROM answers WHERE fb IS NOT NULL"""

_DUCK_PAIRED: Final = """SELECT s.shadow, a.latency_ms AS answer_latency,
       s.latency_ms AS shadow_latency, CASE WHEN $labels THEN a.value END AS answer_label,
       s.label AS shadow_label, a.score AS answer_score, s.score AS shadow_score
FROM shadow_rows AS s JOIN answers AS a ON a.request_id = s.request_id
WHERE a.fb IS NULL AND a.ok AND NOT s.failed"""

_DUCK_FAILURES: Final = "SELECT shadow, count(*) AS n FROM shadow_rows WHERE failed GROUP BY shadow"


def _duck_output(pick: Pick | None, parameter: str) -> str:
    """DuckDB SQL for an output's JSON text out of outputs ``j`` (a string label stays quoted)."""
    if pick is None:
        return "NULL::VARCHAR"
    if pick.output is None:
        return "json_extract(j, '$.*')[1]::VARCHAR"
    return f"json_extract(j, ${parameter})::VARCHAR"


def _path(name: str) -> str:
    """A JSONPath to a top-level key; a JSON pointer (RFC 6901) where quoting could not say it.

    The empty name too: ``$.""`` is no JSONPath to DuckDB, ``/`` is the pointer to key ``""``.
    """
    if not name or '"' in name or "\\" in name:
        return "/" + name.replace("~", "~0").replace("/", "~1")
    return f'$."{name}"'


class ParquetReader:
    """The questions asked of a folder of Parquet segments, answered by DuckDB."""

    def __init__(self, folder: Path, deployment: str, window: Window) -> None:
        self._where = f"deployment {deployment!r} in {folder}"
        self._files = _segments(folder, deployment, window)
        self._params: dict[str, Any] = {
            "files": self._files,
            "deployment": deployment,
            "since": window[0],
            "until": window[1],
        }
        self._con: Any = None
        self._log = ""

    def close(self) -> None:
        """Close DuckDB's connection, if one was opened."""
        if self._con is not None:
            self._con.close()

    def counts(self) -> dict[str, int]:
        """Non-shadow records per variant."""
        if not self._files:
            return {}
        with self._reading():
            table = self._run(_DUCK_COUNTS)
        return dict(zip(table["variant"].to_pylist(), table["n"].to_pylist(), strict=True))

    def read(self, query: Query) -> Tables:
        """The tables of ``query`` (see :class:`~._log_tables.Tables`)."""
        if not self._files:
            return nothing()
        with self._reading():
            return self._read(query)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """DuckDB's errors (a segment unreadable, or deleted while it is read) as unavailable."""
        duckdb = load_duckdb()
        try:
            yield
        except duckdb.Error as exc:
            raise ServiceUnavailable(
                f"cannot read the prediction log of {self._where}: {exc}"
            ) from exc

    def _read(self, query: Query) -> Tables:
        requests = self._run(
            _DUCK_REQUESTS, arms=query.arms, caller_faults=list(CALLER_FAULTS)
        ).cast(_schema("requests"))
        params: dict[str, Any] = {"arms": query.arms, "shadows": query.shadows}
        params["labels"] = query.labels
        if query.value.output is not None:
            params["value"] = _path(query.value.output)
        if query.score is not None and query.score.output is not None:
            params["score"] = _path(query.score.output)
        con = self._connect()
        con.register("feedback_ids", query.feedback)
        labelled, paired = empty(**table_types("labelled")), empty(**table_types("paired"))
        failures: dict[str, int] = {}
        if query.shadows:
            self._execute(_expressions(_DUCK_SHADOW_ROWS, query), **params)
        else:
            self._execute("CREATE TEMPORARY TABLE shadow_rows (request_id VARCHAR, failed BOOLEAN)")
        if query.feedback.num_rows or query.shadows:
            # Two shadows copy the same requests; one copies each at most once.
            distinct = "DISTINCT" if len(query.shadows) > 1 else ""
            answers = _expressions(_DUCK_ANSWERS, query).replace("{distinct}", distinct)
            self._execute(answers, **params)
            labelled = self._run(_DUCK_LABELLED).cast(_schema("labelled"))
        if query.shadows:
            paired = self._run(_DUCK_PAIRED, labels=query.labels).cast(_schema("paired"))
            table = self._run(_DUCK_FAILURES)
            names = [query.shadows[i] for i in table["shadow"].to_pylist()]
            failures = dict(zip(names, table["n"].to_pylist(), strict=True))
        return Tables(requests, labelled, paired, failures)

    def _run(self, query: str, **params: Any) -> pa.Table:
        """The result of a ``SELECT``."""
        query, values = self._bound(query, params)
        return self._connect().sql(query, params=values).to_arrow_table()

    def _execute(self, statement: str, **params: Any) -> None:
        statement, values = self._bound(statement, params)
        self._connect().execute(statement, values)

    def _bound(self, query: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """``query`` with the log's definition, and the values of the parameters it names."""
        self._connect()
        query = query.replace("{log}", self._log)
        values = self._params | params
        return query, {name: values[name] for name in set(re.findall(r"\$(\w+)", query))}

    def _connect(self) -> Any:
        if self._con is None:
            duckdb = load_duckdb()
            self._con = duckdb.connect()
            self._con.execute("SET preserve_insertion_order = false")
            described = self._con.sql(
                "DESCRIBE SELECT * FROM read_parquet($files, union_by_name = true)",
                params={"files": self._files},
            ).fetchall()
            columns = {row[0] for row in described}
            # Segments of schema version 1 only: the columns version 2 added are nulls.
            added = {"error": "VARCHAR", "cpu_ms": "DOUBLE"}
            self._log = _LOG.format(
                missing="".join(
                    f", NULL::{kind} AS {name}"
                    for name, kind in added.items()
                    if name not in columns
                )
            )
        return self._con


def _expressions(template: str, query: Query) -> str:
    """``template`` with its output expressions filled in.

    ``{json}`` is the outputs (cut to the two outputs wanted, in one parse, where both are
    named), ``{value}`` and ``{score}`` an output's JSON text out of that.
    """
    score = query.score
    if query.value.output is not None and score is not None and score.output is not None:
        parts = ("json_extract(outputs, [$value, $score])", "j[1]::VARCHAR", "j[2]::VARCHAR")
    else:
        parts = ("outputs", _duck_output(query.value, "value"), _duck_output(score, "score"))
    for name, expression in zip(("{json}", "{value}", "{score}"), parts, strict=True):
        template = template.replace(name, expression)
    return template


def _schema(what: str) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(list(table_types(what).items()))


def load_duckdb() -> Any:
    """The ``duckdb`` module.

    Raises:
        DependencyMissing: DuckDB is not installed.
    """
    try:
        import duckdb
    except ImportError:
        raise DependencyMissing(
            "reading the Parquet prediction log needs DuckDB: pip install duckdb"
        ) from None
    return duckdb


def _segments(folder: Path, deployment: str, window: Window) -> list[str]:
    """The deployment's segments in the day folders that can hold records of ``window``."""
    if not deployment or "/" in deployment or deployment.startswith("."):
        return []  # no deployment's folder has such a name
    first, last = window[0].date(), (window[1] - timedelta(microseconds=1)).date()
    try:
        days = sorted((folder / deployment).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:  # a folder this process may not list, a failing disk
        raise ServiceUnavailable(
            f"cannot read the prediction log of deployment {deployment!r} in {folder}: {exc}"
        ) from exc
    files: list[str] = []
    for day in days:
        try:
            when = date.fromisoformat(day.name)
        except ValueError:
            continue  # not one of the log's folders
        if first <= when <= last:
            files += sorted(str(path) for path in day.glob("*.parquet"))
    return files
