"""One suite for reading an experiment's rows from both prediction log backends.

A hand-worked log (two days, two arms, a retired variant, a shadow, failures of the server and
of the caller, a multi-row request, records just outside the window, another deployment with
the same request ids) is written by the real writer (:class:`PredictionLog`) to Parquet
segments and to the PostgreSQL table, and :func:`experiment_rows` / :func:`arm_counts` must
read exactly the same rows from both. Arrays come in no particular order (aligned with each
other), so they are compared sorted.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from modelport.core.errors import InvalidInput, ServiceUnavailable
from modelport.monitoring.log_query import ExperimentRows, arm_counts, experiment_rows
from modelport.monitoring.prediction_log import ParquetSink, PredictionLog, PredictionRecord
from modelport.monitoring.prediction_postgres import PostgresSink

from .conftest import PG_ADMIN, PG_URL

SINCE = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=1)
BACKENDS = ["parquet", pytest.param("postgresql", marks=pytest.mark.postgres)]


def outputs(labels: list[Any], positives: list[float], first: str = "label") -> str:
    tensors = {"label": labels, "probabilities": [[round(1 - p, 2), p] for p in positives]}
    if first != "label":
        tensors = {"probabilities": tensors["probabilities"], "label": labels}
    return json.dumps(tensors)


def record(
    request_id: str,
    at: datetime,
    variant: str,
    latency_ms: float,
    out: str,
    *,
    shadow: bool = False,
    error: str | None = None,
    cpu_ms: float | None = None,
    deployment: str = "fraud",
) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        time=at,
        deployment=deployment,
        variant=variant,
        model=deployment,
        model_version="1",
        shadow=shadow,
        latency_ms=latency_ms,
        identity=None,
        inputs='{"x": [[1.0, 2.0]]}',
        outputs=out,
        error=error,
        cpu_ms=cpu_ms,
    )


H = timedelta(hours=1)
MS = timedelta(milliseconds=1)

RECORDS = [
    # Answers in the window: arm a
    record("r1", SINCE, "a", 10.0, outputs([1], [0.8]), cpu_ms=2.0),  # at `since`: in
    record("r3", SINCE + 2 * H, "a", 30.0, "{}", error="internal"),  # the server failed
    record("r10", SINCE + 4 * H, "a", 25.0, outputs([2], [0.8]), cpu_ms=1.5),
    record("r5", SINCE + 13 * H, "a", 50.0, outputs([1, 0], [0.9, 0.4]), cpu_ms=4.0),  # 2 rows
    # arm b
    record("r2", SINCE + H, "b", 20.0, outputs([0], [0.3])),
    record("r4", SINCE + 3 * H, "b", 40.0, "{}", error="invalid_input"),  # the caller's fault
    record("r6", SINCE + 14 * H, "b", 60.0, outputs([1], [0.6]), cpu_ms=5.0),
    record("r11", SINCE + 15 * H, "b", 35.0, outputs([1.0], [0.7])),  # a float label
    # a variant that is no arm of the experiment (retired)
    record("r7", SINCE + 5 * H, "c", 15.0, outputs([0], [0.1])),
    # shadow copies of r1, r2 (failed), r5 and r6
    record("r1", SINCE + MS, "s", 12.0, outputs([0], [0.4]), shadow=True),
    record("r2", SINCE + H + MS, "s", 99.0, "{}", shadow=True, error="unavailable"),
    record("r5", SINCE + 13 * H + MS, "s", 45.0, outputs([1, 1], [0.8, 0.7]), shadow=True),
    record("r6", SINCE + 14 * H + MS, "s", 70.0, outputs([1], [0.5]), shadow=True),
    # outside the window: just before, at its end, other days
    record("r0", SINCE - timedelta(microseconds=1), "a", 5.0, outputs([1], [0.9])),
    record("r0", SINCE - timedelta(microseconds=1), "s", 5.0, outputs([1], [0.9]), shadow=True),
    record("r8", UNTIL, "b", 5.0, outputs([1], [0.9])),
    record("r9", SINCE - timedelta(days=1), "a", 5.0, outputs([1], [0.9])),
    record("r12", UNTIL + timedelta(days=1), "a", 5.0, outputs([1], [0.9])),
    # another deployment, with the same request ids
    record("r1", SINCE + H, "a", 1.0, outputs([0], [0.1]), deployment="churn"),
    record("r5", SINCE + H, "s", 1.0, outputs([0, 0], [0.1, 0.1]), deployment="churn", shadow=True),
]

FEEDBACK = [  # (request id, truth JSON)
    ("r1", "1"),
    ("r2", "[1]"),
    ("r3", "0"),  # a failed request: matched, no row
    ("r4", "1"),  # failed (the caller's fault): matched, no row
    ("r5", "[1, 1]"),
    ("r6", "[1, 0]"),  # two truths for one row: mismatched
    ("r7", "0"),  # not an arm: matched, no row
    ("r10", "[[2]]"),
    ("r11", "1.0"),
    ("r0", "1"),  # outside the window: unmatched
    ("nope", "1"),  # unknown: unmatched
]


def feedback(
    rows: list[tuple[str, Any]] = FEEDBACK, values: list[float | None] | None = None
) -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array([r for r, _ in rows], pa.string()),
            "kind": pa.array(["label"] * len(rows)),
            "truth": pa.array([t for _, t in rows], pa.string()),
            "value": pa.array(values or [None] * len(rows), pa.float64()),
        }
    )


@pytest.fixture(params=BACKENDS)
def log_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Where the real writer logs: ``write(records)``, then the source to read."""
    if request.param == "parquet":
        folder = tmp_path / "predictions"
        yield lambda records: _written(ParquetSink(folder), records) or folder
        return
    database: str = request.getfixturevalue("pg_database")
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(
        f"host=127.0.0.1 port=5432 user=postgres dbname={database}", autocommit=True
    ) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    url = PG_URL.format(db=database, schema=schema)
    yield lambda records: _written(PostgresSink(url), records) or url


def _written(sink: Any, records: list[PredictionRecord]) -> None:
    log = PredictionLog(sink, flush_interval_s=60)
    for r in records:
        assert log.log(r)
    log.close()
    assert log.stats().written == len(records)


def read(source: Any, **options: Any) -> ExperimentRows:
    options = {
        "arms": ["a", "b"],
        "shadows": ["s", "t"],
        "task": "classification",
        "output": "label",
        "score_output": "probabilities",
        "feedback": feedback(),
    } | options
    return experiment_rows(source, "fraud", SINCE, UNTIL, **options)


def by_latency(arm: Any) -> list[tuple[float, bool, float | None]]:
    return sorted(
        (float(lat), bool(failed), None if np.isnan(cpu) else float(cpu))
        for lat, failed, cpu in zip(arm.latency_ms, arm.failed, arm.cpu_ms, strict=True)
    )


def pairs(arm: Any) -> list[tuple[Any, Any]]:
    return sorted(zip(arm.predicted.tolist(), arm.truth.tolist(), strict=True))


def test_the_hand_worked_log(log_source: Any) -> None:
    rows = read(log_source(RECORDS))
    assert list(rows.arms) == ["a", "b"]
    a, b = rows.arms["a"], rows.arms["b"]
    assert by_latency(a) == [
        (10.0, False, 2.0),
        (25.0, False, 1.5),
        (30.0, True, None),
        (50.0, False, 4.0),
    ]
    assert by_latency(b) == [
        (20.0, False, None),
        (35.0, False, None),
        (40.0, False, None),
        (60.0, False, 5.0),
    ]
    assert (a.latency_ms.dtype, a.failed.dtype, a.cpu_ms.dtype) == (
        np.float64,
        np.bool_,
        np.float64,
    )
    assert a.predicted.dtype == object and a.truth.dtype == object
    assert pairs(a) == [("0", "1"), ("1", "1"), ("1", "1"), ("2", "2")]
    assert pairs(b) == [("0", "1"), ("1", "1")]
    assert (a.mismatched, b.mismatched) == (0, 1)
    assert (rows.feedback, rows.feedback_unmatched) == (11, 2)
    s = rows.shadows["s"]
    assert (s.pairs, s.failures) == (3, 1)
    assert sorted(s.agree.tolist()) == [False, False, True, True]
    assert sorted(s.score_diff.tolist()) == pytest.approx([-0.4, -0.1, -0.1, 0.3])
    assert sorted(s.latency_diff_ms.tolist()) == [-5.0, 2.0, 10.0]
    t = rows.shadows["t"]
    assert (t.pairs, t.failures, len(t.agree), len(t.score_diff), len(t.latency_diff_ms)) == (
        0,
        0,
        0,
        0,
        0,
    )


def test_arm_counts_are_the_non_shadow_records_of_the_window(log_source: Any) -> None:
    source = log_source(RECORDS)
    assert arm_counts(source, "fraud", SINCE, UNTIL) == {"a": 4, "b": 4, "c": 1}
    assert arm_counts(source, "churn", SINCE, UNTIL) == {"a": 1}
    assert arm_counts(source, "fraud", UNTIL, UNTIL + timedelta(days=1)) == {"b": 1}
    assert arm_counts(source, "nothing", SINCE, UNTIL) == {}


def test_window_bounds(log_source: Any) -> None:
    source = log_source(RECORDS)
    # [since, until) with since on r0 (one microsecond before SINCE): r0 counts, r1 does not
    before = experiment_rows(
        source,
        "fraud",
        SINCE - timedelta(microseconds=1),
        SINCE,
        arms=["a"],
        shadows=["s"],
        task="classification",
        output="label",
        score_output="probabilities",
        feedback=feedback(),
    )
    assert by_latency(before.arms["a"]) == [(5.0, False, None)]
    assert pairs(before.arms["a"]) == [("1", "1")]
    assert before.feedback_unmatched == 10
    assert before.shadows["s"].pairs == 1
    assert before.shadows["s"].latency_diff_ms.tolist() == [0.0]


def test_first_output_when_none_is_named(log_source: Any) -> None:
    source = log_source(RECORDS)
    named, first = read(source), read(source, output=None)
    for arm in ("a", "b"):
        assert pairs(first.arms[arm]) == pairs(named.arms[arm])
    assert sorted(first.shadows["s"].agree.tolist()) == sorted(named.shadows["s"].agree.tolist())


def test_an_output_with_several_values_per_row_is_refused(log_source: Any) -> None:
    source = log_source([record("p1", SINCE, "a", 1.0, outputs([1], [0.8], first="probabilities"))])
    with pytest.raises(InvalidInput, match="several values per row"):
        read(source, output=None, feedback=feedback([("p1", "1")]))
    with pytest.raises(InvalidInput, match="several values per row"):
        read(source, output="probabilities", feedback=feedback([("p1", "1")]))
    rows = read(source, output="label", feedback=feedback([("p1", "1")]))
    assert pairs(rows.arms["a"]) == [("1", "1")]


def test_without_feedback_or_shadows(log_source: Any) -> None:
    rows = read(log_source(RECORDS), shadows=[], feedback=None)
    assert len(rows.arms["a"].latency_ms) == 4
    assert (len(rows.arms["a"].predicted), rows.shadows, rows.feedback) == (0, {}, 0)
    assert rows.feedback_unmatched == 0


def test_an_empty_log(log_source: Any) -> None:
    source = log_source([record("x", SINCE - timedelta(days=3), "a", 1.0, "{}")])
    rows = read(source)
    assert rows.arms["a"].latency_ms.tolist() == [] and rows.arms["a"].predicted.tolist() == []
    assert (rows.feedback, rows.feedback_unmatched) == (11, 11)
    assert rows.shadows["s"].pairs == 0


REGRESSION = [
    record("q1", SINCE, "a", 1.0, json.dumps({"price": [2.5]})),
    record("q2", SINCE + H, "a", 2.0, json.dumps({"price": [[3.0], [4.0]]})),  # 2 rows
    record("q3", SINCE + H, "b", 3.0, json.dumps({"price": [10]})),
    record("q4", SINCE + H, "b", 4.0, "{}", error="internal"),
    record("q1", SINCE + MS, "s", 1.5, json.dumps({"price": [2.0]}), shadow=True),
    record("q2", SINCE + H + MS, "s", 2.5, json.dumps({"price": [[3.5], [3.0]]}), shadow=True),
]


def test_regression(log_source: Any) -> None:
    source = log_source(REGRESSION)
    fb = feedback(
        [("q1", None), ("q2", "[3.5, 4]"), ("q3", "12.5"), ("q4", "1")],
        values=[2.0, None, None, None],
    )
    rows = read(source, task="regression", output="price", score_output=None, feedback=fb)
    a, b = rows.arms["a"], rows.arms["b"]
    assert a.predicted.dtype == np.float64 and a.truth.dtype == np.float64
    assert pairs(a) == [(2.5, 2.0), (3.0, 3.5), (4.0, 4.0)]
    assert pairs(b) == [(10.0, 12.5)]
    assert by_latency(b) == [(3.0, False, None), (4.0, True, None)]
    s = rows.shadows["s"]
    assert (s.pairs, s.agree.tolist()) == (2, [])
    assert sorted(s.score_diff.tolist()) == [-1.0, -0.5, 0.5]
    assert sorted(s.latency_diff_ms.tolist()) == [0.5, 0.5]


def test_a_label_needs_a_json_truth(log_source: Any) -> None:
    source = log_source(RECORDS)
    fb = feedback([("r1", None), ("r2", "null"), ("r11", "[[1, 0]]")], values=[1.0, None, None])
    rows = read(source, feedback=fb)
    assert pairs(rows.arms["a"]) == [] and rows.arms["a"].mismatched == 1  # r1: a value only
    assert pairs(rows.arms["b"]) == [("0", "null")]  # r2: a JSON null is a label too
    assert rows.arms["b"].mismatched == 1  # r11: a truth of two values for one row


def test_an_output_named_with_the_empty_string(log_source: Any) -> None:
    source = log_source([record("e1", SINCE, "a", 1.0, json.dumps({"": [1], "label": [0]}))])
    rows = read(source, output="", shadows=[], feedback=feedback([("e1", "1")]))
    assert pairs(rows.arms["a"]) == [("1", "1")]


@pytest.mark.postgres
def test_a_query_postgresql_refuses_is_unavailable() -> None:
    """Connected, the table there, then a query fails: here a lock not granted in time.

    Another session holds the table (a migration, a ``DROP TABLE`` under way); the reader's URL
    sets ``lock_timeout``. In a database of its own: the URL's ``options`` hold that one setting,
    not ``search_path`` too (two need a space, which the reader passes on to libpq as ``+``).
    """
    name = f"modelport_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}?options=-clock_timeout%3D100"
        _written(PostgresSink(url), RECORDS)
        with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={name}") as holder:
            holder.execute("LOCK TABLE prediction_log IN ACCESS EXCLUSIVE MODE")
            message = r"^cannot read the prediction log of deployment 'fraud' in .*lock timeout"
            with pytest.raises(ServiceUnavailable, match=message) as raised:
                arm_counts(url, "fraud", SINCE, UNTIL)
            assert isinstance(raised.value.__cause__, psycopg.OperationalError)
            with pytest.raises(ServiceUnavailable, match=message):
                read(url)
        assert arm_counts(url, "fraud", SINCE, UNTIL) == {"a": 4, "b": 4, "c": 1}
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
