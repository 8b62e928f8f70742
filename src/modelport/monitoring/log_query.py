"""What an experiment's decision reads out of the prediction log, joined with feedback.

:func:`experiment_rows` gives, for a deployment and a time window ``[since, until)``, each
answering variant's requests (latency, server-side failure, CPU time), its *labelled rows*
(prediction and truth, one per row of every answered request that has feedback) and each
shadow's answers paired with the caller's; :func:`arm_counts` the records per variant, for the
sample-ratio test. Plain numpy arrays: the statistics (``experiments/analysis.py``) are pure
functions over them.

The log is read where it lies, only the columns a question needs:

- **Parquet** (a folder, :class:`~.prediction_log.ParquetSink`): DuckDB over the deployment's
  day folders that can hold the window (the others are not opened). The request ids wanted (the
  feedback's, a ``pyarrow.Table`` registered with DuckDB, and the shadow copies') are joined
  with the answered records in *one* pass over ``request_id`` and ``outputs``, and the outputs
  JSON is cut (``json_extract``) for the matched records only; labelled rows and shadow pairs
  are then joined from that small table. Segments of schema version 1 read their missing
  ``error`` and ``cpu_ms`` as nulls.
- **PostgreSQL** (a URL, :class:`~.prediction_postgres.PostgresSink`): the same in SQL, in one
  snapshot. Feedback goes to a temporary table by ``COPY``; results come back by
  ``COPY ... TO STDOUT`` as CSV parsed by pyarrow (no Python object per row).

Every value is a query parameter. Both backends return the same intermediate tables; the rest
is numpy. Numbers (scores, regression values) are cast from JSON by DuckDB's
``json_transform_strict`` where every value has the shape of the first (else, and without
DuckDB, orjson); labels are parsed once per distinct text.

Rows and labels:

- An output's value is a list with the request's rows as its first dimension (the OIP JSON
  ``data``, nested); a value that is not a list is one row. A row's prediction is its value with
  one-element lists unwrapped (``[[1]]`` is ``1``); a row holding several values (a probability
  vector) has no single prediction: naming such an output raises
  :class:`~modelport.core.errors.InvalidInput`.
- Feedback's ``truth`` (JSON text) is a scalar for a one-row request or a list with one value
  per row; where it is null, ``value`` (regression) is the truth of a one-row request. Feedback
  of an answered request whose rows do not match the prediction's (another count, a row holding
  several values, no truth, invalid JSON, a record without the output) gives no labelled row and
  is counted in ``mismatched``.
- Classification compares canonical label text: integral numbers as integers (``1`` and ``1.0``
  are ``"1"``), booleans ``"true"``/``"false"``, strings as they are, other numbers as Python's
  ``repr``, null as ``"null"``. Regression compares float64 (NaN where a value is no number).
- A shadow's score is the last element of a row's value of ``score_output`` (the positive class
  of a probability vector; a scalar output's value itself). For regression, without a
  ``score_output``, the predictions themselves are compared, and ``agree`` is empty.

A request id logged more than once (a caller that reuses ids) joins every record with it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import numpy as np
import orjson

from modelport.core.errors import ConfigError, DependencyMissing, ErrorKind, InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CALLER_FAULTS",
    "ArmRows",
    "ExperimentRows",
    "ShadowRows",
    "arm_counts",
    "experiment_rows",
]

Task = Literal["classification", "regression"]

CALLER_FAULTS: Final = tuple(
    kind.value
    for kind in (
        ErrorKind.INVALID_INPUT,
        ErrorKind.PAYLOAD_TOO_LARGE,
        ErrorKind.NOT_FOUND,
        ErrorKind.UNAUTHENTICATED,
        ErrorKind.PERMISSION_DENIED,
        ErrorKind.RATE_LIMITED,
        ErrorKind.CONFLICT,
    )
)
"""Error kinds that are the caller's fault: a request that failed with one is no failure of
the variant."""


@dataclass(frozen=True, slots=True)
class ArmRows:
    """One answering variant's records in the window.

    Attributes:
        variant: The variant.
        latency_ms: One per logged non-shadow request (float64), failed ones included.
        failed: Same length: the request failed on the server's side (an error that is not in
            :data:`CALLER_FAULTS`).
        cpu_ms: Same length (float64): the model's CPU time, NaN where not measured.
        predicted: One per labelled row: canonical label text (object array) for
            classification, float64 for regression.
        truth: The feedback of each labelled row, the same kind.
        mismatched: Feedback of this variant's answered requests that gave no labelled row.
    """

    variant: str
    latency_ms: np.ndarray
    failed: np.ndarray
    cpu_ms: np.ndarray
    predicted: np.ndarray
    truth: np.ndarray
    mismatched: int


@dataclass(frozen=True, slots=True)
class ShadowRows:
    """A shadow's answers paired, by request id, with the answers callers got.

    Attributes:
        shadow: The shadow variant.
        pairs: Requests answered (without error) by both a caller's variant and the shadow.
        failures: Shadow copies logged with an error.
        agree: Per paired row (bool): the shadow's label equals the answer's (classification;
            empty for regression).
        score_diff: Per paired row (float64): shadow score minus answer score; empty without a
            score output.
        latency_diff_ms: Per paired request (float64): shadow latency minus the answer's.
    """

    shadow: str
    pairs: int
    failures: int
    agree: np.ndarray
    score_diff: np.ndarray
    latency_diff_ms: np.ndarray


@dataclass(frozen=True, slots=True)
class ExperimentRows:
    """Everything an experiment's evaluation reads from the log.

    Attributes:
        arms: By answering variant, in the order asked.
        shadows: By shadow variant, in the order asked.
        feedback: Feedback rows given.
        feedback_unmatched: Feedback whose request id has no non-shadow record of the
            deployment in the window.
    """

    arms: dict[str, ArmRows]
    shadows: dict[str, ShadowRows]
    feedback: int
    feedback_unmatched: int


def experiment_rows(
    source: Path | str,
    deployment: str,
    since: datetime,
    until: datetime,
    *,
    arms: Sequence[str],
    shadows: Sequence[str] = (),
    task: Task,
    output: str | None,
    score_output: str | None = None,
    feedback: pa.Table | None = None,
) -> ExperimentRows:
    """Read an experiment's rows from the prediction log.

    Args:
        source: The log's Parquet folder, or the PostgreSQL URL of its table
            (``postgresql+psycopg://USER@HOST:PORT/DB``).
        deployment: The deployment.
        since: Start of the window (inclusive); a naive datetime is UTC.
        until: End of the window (exclusive).
        arms: The answering variants to report.
        shadows: The shadow variants to compare with the answers.
        task: How predictions and truth are compared (see the module).
        output: The output holding the prediction; ``None`` for the first of each record.
        score_output: The output whose last element per row is the shadow comparison's score.
        feedback: Columns ``request_id`` (string), ``truth`` (JSON text or null) and ``value``
            (float64 or null), one row per request (``kind`` and others are not read).

    Returns:
        The rows, per arm and per shadow.

    Raises:
        InvalidInput: The window is empty, a variant is named twice, ``feedback`` lacks a
            column, or the output holds several values per row.
        ConfigError: The PostgreSQL URL is malformed or the database cannot be reached.
        DependencyMissing: DuckDB (Parquet) or psycopg (PostgreSQL) is not installed.
    """
    import pyarrow as pa

    window = _window(since, until)
    fb = _feedback(feedback)
    score = _Pick(score_output) if score_output is not None else None
    if score is None and task == "regression":
        score = _Pick(output)  # a regression's shadow compares the predictions themselves
    query = _Query(
        arms=_names(arms, "arms"),
        shadows=_names(shadows, "shadows"),
        value=_Pick(output),
        labels=task == "classification",
        score=score,
        feedback=pa.table(
            {"request_id": fb.column("request_id"), "fb": pa.array(np.arange(fb.num_rows))}
        ),
    )
    with _reader(source, deployment, window) as reader:
        tables = reader.read(query)
    kind: _Kind = "label" if task == "classification" else "number"
    arms_read = _arm_rows(query.arms, tables.requests, tables.labelled, fb, kind)
    shadows_read = {
        name: _shadow_rows(name, i, tables.paired, tables.failures.get(name, 0), query)
        for i, name in enumerate(query.shadows)
    }
    matched = _ints(tables.labelled.column("fb"))
    unmatched = fb.num_rows - int(np.count_nonzero(np.bincount(matched, minlength=fb.num_rows)))
    return ExperimentRows(arms_read, shadows_read, fb.num_rows, unmatched)


def arm_counts(
    source: Path | str, deployment: str, since: datetime, until: datetime
) -> dict[str, int]:
    """Non-shadow records per variant in ``[since, until)``: the sample-ratio test's counts.

    Args:
        source: The log's Parquet folder or PostgreSQL URL.
        deployment: The deployment.
        since: Start of the window (inclusive); a naive datetime is UTC.
        until: End of the window (exclusive).

    Returns:
        By variant, those with records; failed requests count.

    Raises:
        InvalidInput: The window is empty.
        ConfigError: The PostgreSQL URL is malformed or the database cannot be reached.
        DependencyMissing: DuckDB (Parquet) or psycopg (PostgreSQL) is not installed.
    """
    with _reader(source, deployment, _window(since, until)) as reader:
        return reader.counts()


# --- What both backends read --------------------------------------------------------------------

Window = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class _Pick:
    """An output to cut out of each record's outputs: the named one, or the first (``None``)."""

    output: str | None


@dataclass(frozen=True, slots=True)
class _Query:
    arms: list[str]
    shadows: list[str]
    value: _Pick
    """The prediction: labelled rows, and the shadow's label when ``labels``."""
    labels: bool
    score: _Pick | None
    feedback: pa.Table
    """``request_id`` and ``fb``, the row's position in the feedback given."""


@dataclass(frozen=True, slots=True)
class _Tables:
    """What a backend read, as ``pyarrow.Table`` s (the rest is the same for both).

    - ``requests``: ``arm`` (index in ``arms``), ``latency_ms``, ``failed``, ``cpu_ms`` (null);
      one per non-shadow record of an arm.
    - ``labelled``: ``fb`` (feedback row), ``arm`` (-1: not an arm), ``answered`` (no error, an
      arm's), ``value`` (the prediction's JSON text where answered; null if it has no such
      output); one per (feedback, non-shadow record) with the same request id.
    - ``paired``: ``shadow`` (index in ``shadows``), ``answer_latency``, ``shadow_latency``,
      ``answer_label``, ``shadow_label``, ``answer_score``, ``shadow_score`` (JSON text or null);
      one per (answered record, answered shadow copy) with the same request id.
    """

    requests: pa.Table
    labelled: pa.Table
    paired: pa.Table
    failures: dict[str, int]


class _Reader(Protocol):
    def read(self, query: _Query) -> _Tables: ...

    def counts(self) -> dict[str, int]: ...


@contextmanager
def _reader(source: Path | str, deployment: str, window: Window) -> Iterator[_Reader]:
    reader: _ParquetReader | _PostgresReader
    if isinstance(source, Path):
        reader = _ParquetReader(source, deployment, window)
    else:
        reader = _PostgresReader(source, deployment, window)
    try:
        yield reader
    finally:
        reader.close()


def _window(since: datetime, until: datetime) -> Window:
    since, until = _utc(since), _utc(until)
    if until <= since:
        raise InvalidInput(f"the window's end {until.isoformat()} is not after its start")
    return since, until


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _names(names: Sequence[str], what: str) -> list[str]:
    if isinstance(names, str):
        raise InvalidInput(f"{what} must be a sequence of variant names, not one string")
    listed = list(names)
    if len(set(listed)) != len(listed):
        raise InvalidInput(f"{what} name a variant twice: {listed}")
    return listed


def _feedback(feedback: pa.Table | None) -> pa.Table:
    """The feedback columns this module reads."""
    import pyarrow as pa

    if feedback is None:
        return pa.table(
            {
                "request_id": pa.array([], pa.string()),
                "truth": pa.array([], pa.string()),
                "value": pa.array([], pa.float64()),
            }
        )
    missing = {"request_id", "truth", "value"} - set(feedback.column_names)
    if missing:
        raise InvalidInput(f"feedback has no column {', '.join(sorted(missing))}")
    return pa.table(
        {
            "request_id": feedback.column("request_id").cast(pa.string()),
            "truth": feedback.column("truth").cast(pa.string()),
            "value": feedback.column("value").cast(pa.float64()),
        }
    )


def _empty(**types: Any) -> pa.Table:
    import pyarrow as pa

    return pa.table({name: pa.array([], kind) for name, kind in types.items()})


def _types(what: str) -> dict[str, Any]:
    """The columns of one intermediate table (see :class:`_Tables`)."""
    import pyarrow as pa

    text = pa.string()
    return {
        "requests": {
            "arm": pa.int32(),
            "latency_ms": pa.float64(),
            "failed": pa.bool_(),
            "cpu_ms": pa.float64(),
        },
        "labelled": {"fb": pa.int64(), "arm": pa.int32(), "answered": pa.bool_(), "value": text},
        "paired": {
            "shadow": pa.int32(),
            "answer_latency": pa.float64(),
            "shadow_latency": pa.float64(),
            "answer_label": text,
            "shadow_label": text,
            "answer_score": text,
            "shadow_score": text,
        },
    }[what]


def _nothing() -> _Tables:
    return _Tables(
        _empty(**_types("requests")), _empty(**_types("labelled")), _empty(**_types("paired")), {}
    )


# --- Parquet (DuckDB) ---------------------------------------------------------------------------

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


def _duck_output(pick: _Pick | None, parameter: str) -> str:
    """DuckDB SQL for an output's JSON text out of outputs ``j`` (a string label stays quoted)."""
    if pick is None:
        return "NULL::VARCHAR"
    if pick.output is None:
        return "json_extract(j, '$.*')[1]::VARCHAR"
    return f"json_extract(j, ${parameter})::VARCHAR"


def _path(name: str) -> str:
    """A JSONPath to a top-level key; a JSON pointer (RFC 6901) where quoting could not say it."""
    if '"' in name or "\\" in name:
        return "/" + name.replace("~", "~0").replace("/", "~1")
    return f'$."{name}"'


class _ParquetReader:
    """The questions asked of a folder of Parquet segments, answered by DuckDB."""

    def __init__(self, folder: Path, deployment: str, window: Window) -> None:
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
        if self._con is not None:
            self._con.close()

    def counts(self) -> dict[str, int]:
        if not self._files:
            return {}
        table = self._run(_DUCK_COUNTS)
        return dict(zip(table["variant"].to_pylist(), table["n"].to_pylist(), strict=True))

    def read(self, query: _Query) -> _Tables:
        if not self._files:
            return _nothing()
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
        labelled, paired = _empty(**_types("labelled")), _empty(**_types("paired"))
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
        return _Tables(requests, labelled, paired, failures)

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
            duckdb = _duckdb()
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


def _expressions(template: str, query: _Query) -> str:
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

    return pa.schema(list(_types(what).items()))


def _duckdb() -> Any:
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
    files: list[str] = []
    for day in days:
        try:
            when = date.fromisoformat(day.name)
        except ValueError:
            continue  # not one of the log's folders
        if first <= when <= last:
            files += sorted(str(path) for path in day.glob("*.parquet"))
    return files


# --- PostgreSQL ---------------------------------------------------------------------------------

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


def _pg_output(table: str, pick: _Pick | None, parameter: str) -> str:
    """PostgreSQL SQL for an output's JSON text (``json``, unlike ``jsonb``, keeps key order)."""
    if pick is None:
        return "NULL::text"
    if pick.output is None:
        return f"(SELECT value::text FROM json_each({table}.outputs::json) LIMIT 1)"
    return f"({table}.outputs::json -> %({parameter})s)::text"


class _PostgresReader:
    """The questions asked of the ``prediction_log`` table, in one transaction's snapshot."""

    def __init__(self, url: str, deployment: str, window: Window) -> None:
        self._conninfo, self._display = _conninfo(url)
        self._params: dict[str, Any] = {
            "deployment": deployment,
            "since": window[0],
            "until": window[1],
        }
        self._conn: Any = None
        self._columns: set[str] = set()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def counts(self) -> dict[str, int]:
        if not self._present():
            return {}
        return self._grouped(_PG_COUNTS.format(window=_PG_WINDOW.format(t="")))

    def read(self, query: _Query) -> _Tables:
        if not self._present():
            return _nothing()
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
        labelled, paired = _empty(**_types("labelled")), _empty(**_types("paired"))
        failures: dict[str, int] = {}
        if query.feedback.num_rows:
            self._send_feedback(query.feedback)
            statement = _PG_LABELLED.format(
                error=self._column("l.", "error", "text"),
                value=_pg_output("l", query.value, "value"),
                window=_PG_WINDOW.format(t="l."),
            )
            labelled = self._copy(statement, _types("labelled"), params)
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
            paired = self._copy(statement, _types("paired"), params)
            if "error" in self._columns:
                window = _PG_WINDOW.format(t="")
                statement = _PG_FAILURES.format(error="error", window=window)
                failures = self._grouped(statement, shadows=query.shadows)
        return _Tables(requests, labelled, paired, failures)

    def _present(self) -> bool:
        """Connect; whether the table exists (nothing was ever logged to it otherwise)."""
        if self._conn is None:
            self._connect()
        return bool(self._columns)

    def _connect(self) -> None:
        try:
            import psycopg
        except ImportError:
            raise DependencyMissing(
                "reading the prediction log in PostgreSQL needs psycopg: "
                "pip install 'modelport[postgres]'"
            ) from None
        try:
            self._conn = psycopg.connect(self._conninfo, connect_timeout=5)
        except psycopg.OperationalError as exc:
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
            return _empty(**_types("requests"))
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
            return _empty(**types)
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
    plain = parsed.set(drivername="postgresql")
    return plain.render_as_string(hide_password=False), parsed.render_as_string()


# --- From the tables to the rows ----------------------------------------------------------------

_Kind = Literal["label", "number", "score"]


def _arm_rows(
    arms: list[str], requests: pa.Table, labelled: pa.Table, fb: pa.Table, kind: _Kind
) -> dict[str, ArmRows]:
    import pyarrow as pa
    import pyarrow.compute as pc

    arm = np.asarray(requests.column("arm").to_numpy(), dtype=np.int32)
    latency = _floats(requests.column("latency_ms"))
    failed = np.asarray(requests.column("failed").to_numpy(), dtype=bool)
    cpu = _floats(requests.column("cpu_ms"))
    answered = labelled.filter(labelled.column("answered"))
    rows = _ints(answered.column("fb"))
    predicted, predicted_n = _rows(answered.column("value"), kind, strict=True)
    truths = fb.column("truth").take(pa.array(rows))
    if kind == "number":  # a regression's truth given as a number where there is no JSON truth
        values = fb.column("value").take(pa.array(rows))
        finite = pc.fill_null(pc.is_finite(values), False)
        truths = pc.coalesce(truths, pc.if_else(finite, values.cast(pa.string()), None))
    truth, truth_n = _rows(truths, kind, strict=False)
    good = (predicted_n == truth_n) & (predicted_n > 0)
    request_arm = _ints(answered.column("arm"))
    row_arm = np.repeat(request_arm, np.maximum(predicted_n, 0))
    predicted = predicted[np.repeat(good, np.maximum(predicted_n, 0))]
    truth = truth[np.repeat(good, np.maximum(truth_n, 0))]
    row_arm = row_arm[np.repeat(good, np.maximum(predicted_n, 0))]
    out: dict[str, ArmRows] = {}
    for i, name in enumerate(arms):
        mine = np.flatnonzero(arm == i)  # then take: a fifth of the time of boolean masks
        labelled_rows = row_arm == i
        out[name] = ArmRows(
            variant=name,
            latency_ms=latency.take(mine),
            failed=failed.take(mine),
            cpu_ms=cpu.take(mine),
            predicted=predicted[labelled_rows],
            truth=truth[labelled_rows],
            mismatched=int(np.count_nonzero(request_arm[~good] == i)),
        )
    return out


def _shadow_rows(
    name: str, index: int, paired: pa.Table, failures: int, query: _Query
) -> ShadowRows:
    import pyarrow as pa

    mine = paired.filter(pa.array(_ints(paired.column("shadow")) == index))
    latency = _floats(mine.column("shadow_latency")) - _floats(mine.column("answer_latency"))
    agree = np.empty(0, dtype=bool)
    if query.labels:
        answer, answer_n = _rows(mine.column("answer_label"), "label", strict=True)
        shadow, shadow_n = _rows(mine.column("shadow_label"), "label", strict=True)
        agree = _paired_rows(answer, answer_n, shadow, shadow_n, np.equal).astype(bool)
    score_diff = np.empty(0, dtype=np.float64)
    if query.score is not None:
        answer, answer_n = _rows(mine.column("answer_score"), "score", strict=False)
        shadow, shadow_n = _rows(mine.column("shadow_score"), "score", strict=False)
        score_diff = _paired_rows(answer, answer_n, shadow, shadow_n, np.subtract)
    return ShadowRows(name, mine.num_rows, failures, agree, score_diff.astype(np.float64), latency)


def _paired_rows(
    answer: np.ndarray,
    answer_n: np.ndarray,
    shadow: np.ndarray,
    shadow_n: np.ndarray,
    op: Callable[[np.ndarray, np.ndarray], Any],
) -> np.ndarray:
    """``op(shadow, answer)`` per row of the requests where both have the same rows."""
    good = (answer_n == shadow_n) & (answer_n > 0)
    a = answer[np.repeat(good, np.maximum(answer_n, 0))]
    s = shadow[np.repeat(good, np.maximum(shadow_n, 0))]
    return np.asarray(op(s, a))


def _ints(column: Any) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def _floats(column: Any) -> np.ndarray:
    """float64, nulls as NaN (pyarrow makes them NaN)."""
    return np.asarray(column.cast("float64").to_numpy(zero_copy_only=False), dtype=np.float64)


# --- From JSON text to rows ---------------------------------------------------------------------


def _rows(texts: Any, kind: _Kind, *, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """The rows of each JSON value: all rows' values, flat, and each value's row count.

    A value that gives no usable row (null, invalid JSON, a row of several values where one is
    needed) counts ``-1``.

    Raises:
        InvalidInput: ``strict``, and a row holds several values where one is needed.
    """
    import pyarrow as pa

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    if kind != "label":
        typed = _typed_numbers(texts, kind, strict)
        if typed is not None:
            return typed
    return _parsed_rows(texts, kind, strict)


def _parsed_rows(texts: Any, kind: _Kind, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_rows` in Python: each distinct text parsed once, in one orjson call."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(texts)
    indices = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    indices = np.asarray(indices, dtype=np.int64)
    convert = _canonical if kind == "label" else _number
    one = _last if kind == "score" else (lambda row: _scalar(row, strict))
    flat: list[Any] = []
    counts = np.empty(len(encoded.dictionary), dtype=np.int64)
    for i, value in enumerate(_parse_all(encoded.dictionary)):
        rows = [one(row) for row in _split(value)]
        if any(row is _BAD for row in rows):
            counts[i] = -1
        else:
            flat += map(convert, rows)
            counts[i] = len(rows)
    pool = np.array(flat, dtype=object if kind == "label" else np.float64)
    # Each value's rows are those of its distinct text; a null (index -1) has none.
    counts = np.append(counts, -1)
    offsets = np.concatenate(([0], np.cumsum(np.maximum(counts[:-1], 0))))
    n = counts[indices]
    return pool[_spans(offsets[np.maximum(indices, 0)], np.maximum(n, 0))], n


def _spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices ``start, start + 1, ... start + length - 1`` of every span, in order."""
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    return np.repeat(starts - ends + lengths, lengths) + np.arange(total)


def _parse_all(texts: Any) -> list[Any]:
    """Every JSON text of a string array, by one orjson call; one by one if some are bad."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(texts) == 0:
        return []
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(texts)]), texts), ",")
    try:
        document: list[Any] = orjson.loads(b"[" + joined[0].as_buffer().to_pybytes() + b"]")
    except orjson.JSONDecodeError:
        document = []
    if len(document) != len(texts):  # invalid JSON, or a text that is several values ("1,2")
        return [_parsed(text) for text in texts.to_pylist()]
    return document


def _parsed(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _BAD


_BAD: Final = object()
"""A value or row that gives no usable row."""


def _split(value: Any) -> list[Any]:
    """A value's rows: a list's elements; anything else is one row."""
    if value is _BAD:
        return [_BAD]
    return value if isinstance(value, list) else [value]


def _scalar(row: Any, strict: bool) -> Any:
    """A row's one value, one-element lists unwrapped; :data:`_BAD` where it has several."""
    while isinstance(row, list) and len(row) == 1:
        row = row[0]
    if isinstance(row, list | dict):
        if strict:
            raise _not_scalar(row)
        return _BAD
    return row


def _not_scalar(row: Any) -> InvalidInput:
    shown = orjson.dumps(row).decode()
    return InvalidInput(
        f"the output holds several values per row ({shown[:80]}), not one prediction: name "
        "the output that holds the label or value"
    )


def _last(row: Any) -> Any:
    """A row's last element, however nested (a probability vector's positive class)."""
    while isinstance(row, list):
        if not row:
            return None
        row = row[-1]
    return _BAD if isinstance(row, dict) or row is _BAD else row


def _number(value: Any) -> float:
    """A float, as DuckDB casts JSON (a number's text, a boolean); NaN for anything else."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _canonical(value: Any) -> str:
    """A label's text: ``1`` and ``1.0`` alike, ``true``/``false``, strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return "null"


# The shapes DuckDB casts to, by nesting depth: a scalar, rows of scalars, rows of vectors.
_STRUCTURES: Final = ('"DOUBLE"', '["DOUBLE"]', '[["DOUBLE"]]')


def _typed_numbers(texts: Any, kind: _Kind, strict: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_rows` of numbers by DuckDB's JSON cast; ``None`` where it cannot say.

    The shape is the first value's; where any value has another shape, or a null list, or
    DuckDB is not installed, the caller parses in Python instead (the same result, slower).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    valid = np.asarray(pc.is_valid(texts).to_numpy(zero_copy_only=False), dtype=bool)
    if not valid.any():
        return None
    depth = _depth(_parsed(texts[int(np.argmax(valid))].as_py()))
    if depth >= len(_STRUCTURES):
        return None
    try:
        duckdb = _duckdb()
    except DependencyMissing:
        return None
    with duckdb.connect() as con:  # insertion order kept: one result per text, in order
        con.register("texts", pa.table({"v": texts}))
        try:
            cast = con.sql(
                "SELECT json_transform_strict(v, $shape) AS x FROM texts",
                params={"shape": _STRUCTURES[depth]},
            ).to_arrow_table()
        except duckdb.Error:
            return None  # a value of another shape, or not JSON
    values = cast.column("x").combine_chunks()
    counts = np.where(valid, 1, -1).astype(np.int64)
    if depth == 0:
        return _floats(values.filter(pa.array(valid))), counts
    if values.filter(pa.array(valid)).null_count:
        return None  # a null in place of a list
    counts[valid] = _lengths(values)[valid]
    rows = values.flatten()  # nulls (never valid) have no elements
    if depth == 1:
        return _floats(rows), counts
    if rows.null_count:
        return None
    widths = _lengths(rows)
    cells = _floats(rows.flatten())
    ends = np.cumsum(widths)
    if kind == "score":
        last = np.full(len(widths), np.nan)
        last[widths > 0] = cells[ends[widths > 0] - 1]
        return last, counts
    single = widths == 1
    if single.all():
        return cells, counts
    if strict:
        first = int(np.argmin(single))
        raise _not_scalar(rows[first].as_py())
    # A value with a row of several numbers gives no row at all.
    owner = np.repeat(np.arange(len(counts)), np.maximum(counts, 0))
    bad = np.zeros(len(counts), dtype=bool)
    bad[owner[~single]] = True
    keep = ~bad[owner]
    counts[bad] = -1
    return cells[np.maximum(ends - 1, 0)][keep], counts


def _depth(value: Any) -> int:
    """How deep lists nest along the first elements (``[[1, 2]]`` is 2, ``1`` is 0)."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def _lengths(lists: Any) -> np.ndarray:
    """Each list's length (0 for a null)."""
    import pyarrow.compute as pc

    return np.asarray(
        pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
