"""What an experiment's decision reads out of the prediction log, joined with feedback.

:func:`experiment_rows` gives, for a deployment and a time window ``[since, until)``, each
answering variant's requests (latency, server-side failure, CPU time), its *labelled rows*
(prediction and truth, one per row of every answered request that has feedback) and each
shadow's answers paired with the caller's; :func:`arm_counts` the records per variant, for the
sample-ratio test. Plain numpy arrays: the statistics (``experiments/analysis.py``) are pure
functions over them.

The log is read where it lies, only the columns a question needs, by one reader per backend
that gives back the same intermediate tables (``_log_tables.py``):

- **Parquet** (a folder, :class:`~.prediction_log.ParquetSink`): DuckDB over the deployment's
  day folders that can hold the window, the outputs JSON cut for the records with feedback or
  a shadow copy only (``_log_duckdb.py``).
- **PostgreSQL** (a URL, :class:`~.prediction_postgres.PostgresSink`): the same in SQL, in one
  snapshot (``_log_postgres.py``).

The rest is numpy: the JSON values become rows in ``_log_rows.py``, the rows are assembled per
arm and per shadow here. A storage that fails while it is read (a segment that is no Parquet or
was deleted by pruning while it was read; a query PostgreSQL refuses or cancels, a lost
connection) raises :class:`~modelport.core.errors.ServiceUnavailable`.

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

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from modelport.core.errors import InvalidInput
from modelport.monitoring._log_duckdb import ParquetReader
from modelport.monitoring._log_postgres import PostgresReader
from modelport.monitoring._log_rows import Kind, floats, ints, json_rows
from modelport.monitoring._log_tables import CALLER_FAULTS, Pick, Query, Reader, Window

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
        ServiceUnavailable: The log's storage failed while it was read (an unreadable
            segment, a query PostgreSQL refused); the message names the deployment and why.
        DependencyMissing: DuckDB (Parquet) or psycopg (PostgreSQL) is not installed.
    """
    import pyarrow as pa

    window = _window(since, until)
    fb = _feedback(feedback)
    score = Pick(score_output) if score_output is not None else None
    if score is None and task == "regression":
        score = Pick(output)  # a regression's shadow compares the predictions themselves
    query = Query(
        arms=_names(arms, "arms"),
        shadows=_names(shadows, "shadows"),
        value=Pick(output),
        labels=task == "classification",
        score=score,
        feedback=pa.table(
            {"request_id": fb.column("request_id"), "fb": pa.array(np.arange(fb.num_rows))}
        ),
    )
    with _reader(source, deployment, window) as reader:
        tables = reader.read(query)
    kind: Kind = "label" if task == "classification" else "number"
    arms_read = _arm_rows(query.arms, tables.requests, tables.labelled, fb, kind)
    shadows_read = {
        name: _shadow_rows(name, i, tables.paired, tables.failures.get(name, 0), query)
        for i, name in enumerate(query.shadows)
    }
    matched = ints(tables.labelled.column("fb"))
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
        ServiceUnavailable: The log's storage failed while it was read (an unreadable
            segment, a query PostgreSQL refused); the message names the deployment and why.
        DependencyMissing: DuckDB (Parquet) or psycopg (PostgreSQL) is not installed.
    """
    with _reader(source, deployment, _window(since, until)) as reader:
        return reader.counts()


# --- The arguments, and the reader of the source --------------------------------------------------


@contextmanager
def _reader(source: Path | str, deployment: str, window: Window) -> Iterator[Reader]:
    reader: Reader
    if isinstance(source, Path):
        reader = ParquetReader(source, deployment, window)
    else:
        reader = PostgresReader(source, deployment, window)
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


# --- From the tables to the rows ----------------------------------------------------------------


def _arm_rows(
    arms: list[str], requests: pa.Table, labelled: pa.Table, fb: pa.Table, kind: Kind
) -> dict[str, ArmRows]:
    import pyarrow as pa
    import pyarrow.compute as pc

    arm = np.asarray(requests.column("arm").to_numpy(), dtype=np.int32)
    latency = floats(requests.column("latency_ms"))
    failed = np.asarray(requests.column("failed").to_numpy(), dtype=bool)
    cpu = floats(requests.column("cpu_ms"))
    answered = labelled.filter(labelled.column("answered"))
    rows = ints(answered.column("fb"))
    predicted, predicted_n = json_rows(answered.column("value"), kind, strict=True)
    truths = fb.column("truth").take(pa.array(rows))
    if kind == "number":  # a regression's truth given as a number where there is no JSON truth
        values = fb.column("value").take(pa.array(rows))
        finite = pc.fill_null(pc.is_finite(values), False)
        truths = pc.coalesce(truths, pc.if_else(finite, values.cast(pa.string()), None))
    truth, truth_n = json_rows(truths, kind, strict=False)
    good = (predicted_n == truth_n) & (predicted_n > 0)
    request_arm = ints(answered.column("arm"))
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
    name: str, index: int, paired: pa.Table, failures: int, query: Query
) -> ShadowRows:
    import pyarrow as pa

    mine = paired.filter(pa.array(ints(paired.column("shadow")) == index))
    latency = floats(mine.column("shadow_latency")) - floats(mine.column("answer_latency"))
    agree = np.empty(0, dtype=bool)
    if query.labels:
        answer, answer_n = json_rows(mine.column("answer_label"), "label", strict=True)
        shadow, shadow_n = json_rows(mine.column("shadow_label"), "label", strict=True)
        agree = _paired_rows(answer, answer_n, shadow, shadow_n, np.equal).astype(bool)
    score_diff = np.empty(0, dtype=np.float64)
    if query.score is not None:
        answer, answer_n = json_rows(mine.column("answer_score"), "score", strict=False)
        shadow, shadow_n = json_rows(mine.column("shadow_score"), "score", strict=False)
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
