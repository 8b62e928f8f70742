"""Reading an experiment's rows: JSON values to rows, labels, the window, the Parquet folders.

Both backends are checked against one hand-worked log in
``tests/contract/test_log_query_backends.py``; here are the pieces, and what only the Parquet
reader does (day folders, segments of schema version 1).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelport.core.errors import ConfigError, DependencyMissing, InvalidInput, ServiceUnavailable
from modelport.monitoring._log_duckdb import ParquetReader, _segments
from modelport.monitoring._log_rows import _canonical, _parsed_rows, _typed_numbers, json_rows
from modelport.monitoring.log_query import CALLER_FAULTS, arm_counts, experiment_rows
from modelport.monitoring.prediction_log import arrow_schema

SINCE = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=1)


def texts(*values: str | None) -> pa.Array:
    return pa.array(list(values), pa.string())


def rows(values: pa.Array, kind: Any, strict: bool = False) -> tuple[list[Any], list[int]]:
    flat, counts = json_rows(values, kind, strict=strict)
    return flat.tolist(), counts.tolist()


# --- labels -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1"),
        (1.0, "1"),
        (-3.0, "-3"),
        (0.5, "0.5"),
        (1e-7, "1e-07"),
        (True, "true"),
        (False, "false"),
        ("cat", "cat"),
        ("1", "1"),
        (None, "null"),
        (float("inf"), "inf"),
    ],
)
def test_canonical_label_text(value: Any, text: str) -> None:
    assert _canonical(value) == text


def test_label_rows() -> None:
    values = texts("[1]", "[1.0, 0]", "[[2]]", '["cat"]', "1", "[true]", None, "[]", "not json")
    assert rows(values, "label") == (
        ["1", "1", "0", "2", "cat", "1", "true"],
        [1, 2, 1, 1, 1, 1, -1, 0, -1],
    )


def test_a_label_row_with_several_values() -> None:
    values = texts("[[0.2, 0.8]]", "[1]")
    assert rows(values, "label") == (["1"], [-1, 1])  # feedback: no rows, counted
    with pytest.raises(InvalidInput, match=r"several values per row \(\[0.2,0.8\]\)"):
        json_rows(values, "label", strict=True)  # a prediction: the output named is wrong


def test_labels_from_chunked_and_empty_arrays() -> None:
    chunked = pa.chunked_array([texts("[1]"), texts('["a"]', None)])
    assert rows(chunked, "label") == (["1", "a"], [1, 1, -1])
    assert rows(pa.chunked_array([], pa.string()), "label") == ([], [])
    assert rows(texts(), "number") == ([], [])


# --- numbers ------------------------------------------------------------------------------------


def test_number_rows_by_shape() -> None:
    assert rows(texts("1.5", "2", None), "number") == ([1.5, 2.0], [1, 1, -1])
    assert rows(texts("[1.5]", "[2, 3]", "[]"), "number") == ([1.5, 2.0, 3.0], [1, 2, 0])
    assert rows(texts("[[1.5]]", "[[2], [3]]"), "number") == ([1.5, 2.0, 3.0], [1, 2])


def test_scores_are_the_last_element_of_each_row() -> None:
    assert rows(texts("[[0.2, 0.8]]", "[[0.1, 0.9], [0.7, 0.3]]"), "score") == (
        [0.8, 0.9, 0.3],
        [1, 2],
    )
    assert rows(texts("[0.7]", "0.4", "[[]]"), "score")[1] == [1, 1, 1]
    flat, _ = json_rows(texts("[[]]"), "score", strict=False)
    assert np.isnan(flat).all()


def test_a_number_row_with_several_values() -> None:
    values = texts("[[1, 2]]", "[[3]]")
    assert rows(values, "number") == ([3.0], [-1, 1])
    with pytest.raises(InvalidInput, match="several values per row"):
        json_rows(values, "number", strict=True)


def test_values_that_are_no_numbers_are_nan() -> None:
    flat, counts = json_rows(texts('["x"]', "[null]", '["2.5"]', "[true]"), "number", strict=False)
    assert counts.tolist() == [1, 1, 1, 1]
    assert np.isnan(flat[:2]).all() and flat[2:].tolist() == [2.5, 1.0]


def test_mixed_shapes_are_parsed_in_python() -> None:
    values = texts("[2.5]", "[[3.0], [4.0]]", "7", "null")
    assert _typed_numbers(values, "number", strict=False) is None
    flat, counts = json_rows(values, "number", strict=False)
    assert counts.tolist() == [1, 2, 1, 1]
    assert flat[:4].tolist() == [2.5, 3.0, 4.0, 7.0] and np.isnan(flat[4])


number = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.none(),
)
shaped = st.one_of(
    st.lists(number, max_size=4).map(lambda rows: json.dumps(rows)),
    st.lists(st.lists(number, min_size=1, max_size=3), max_size=3).map(json.dumps),
    number.map(json.dumps),
)


@given(st.lists(st.one_of(shaped, st.none()), max_size=12), st.sampled_from(["number", "score"]))
def test_duckdb_casts_numbers_as_python_parses_them(values: list[str | None], kind: str) -> None:
    array = texts(*values)
    typed = _typed_numbers(array, kind, strict=False)
    parsed = _parsed_rows(array, kind, strict=False)
    if typed is not None:
        np.testing.assert_array_equal(typed[1], parsed[1])
        np.testing.assert_allclose(typed[0], parsed[0], rtol=1e-12)


# --- arguments ----------------------------------------------------------------------------------


def test_the_window_must_not_be_empty(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not after its start"):
        arm_counts(tmp_path, "fraud", SINCE, SINCE)
    naive = SINCE.replace(tzinfo=None)
    assert arm_counts(tmp_path, "fraud", naive, naive + timedelta(hours=1)) == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"arms": "ab"}, "not one string"),
        ({"arms": ["a", "a"]}, "name a variant twice"),
        ({"shadows": ["s", "s"]}, "name a variant twice"),
        ({"feedback": pa.table({"request_id": ["r"]})}, "no column truth, value"),
    ],
)
def test_bad_arguments(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"arms": ["a"], "task": "classification", "output": None}
    with pytest.raises(InvalidInput, match=message):
        experiment_rows(tmp_path, "fraud", SINCE, UNTIL, **(arguments | options))


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/x.db",
        "not a url",
        "mysql://h/db",
        "postgresql+psycopg://nobody@127.0.0.1:1/none?no_such_option=1",  # refused by libpq
    ],
)
def test_a_source_that_is_neither_a_folder_nor_postgresql(url: str) -> None:
    with pytest.raises(ConfigError):
        arm_counts(url, "fraud", SINCE, UNTIL)


def test_an_unreachable_database() -> None:
    with pytest.raises(ConfigError, match="cannot open the prediction log's database"):
        arm_counts("postgresql+psycopg://nobody:secret@127.0.0.1:1/none", "fraud", SINCE, UNTIL)


def test_caller_faults_are_kinds_of_the_error_tree() -> None:
    assert set(CALLER_FAULTS) == {
        "invalid_input",
        "payload_too_large",
        "not_found",
        "unauthenticated",
        "permission_denied",
        "rate_limited",
        "conflict",
    }


# --- Parquet folders ----------------------------------------------------------------------------


def segment(
    folder: Path, day: str, name: str, records: list[dict[str, Any]], v1: bool = False
) -> None:
    schema = arrow_schema()
    if v1:
        schema = pa.schema([f for f in schema if f.name not in ("error", "cpu_ms")])
    base = {
        "schema_version": 1 if v1 else 2,
        "deployment": "fraud",
        "model": "fraud",
        "model_version": "1",
        "shadow": False,
        "identity": None,
        "inputs": "{}",
        "error": None,
        "cpu_ms": None,
    }
    table = pa.Table.from_pylist([base | r for r in records], schema=schema)
    (folder / "fraud" / day).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "fraud" / day / name)


def answer(request_id: str, at: datetime, variant: str, **fields: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "time": at,
        "variant": variant,
        "latency_ms": 1.0,
        "outputs": '{"label": [1]}',
    } | fields


def test_only_the_days_of_the_window_are_read(tmp_path: Path) -> None:
    segment(tmp_path, "2026-12-07", "a.parquet", [answer("r1", SINCE, "a")])
    segment(tmp_path, "2026-12-08", "a.parquet", [answer("r2", UNTIL - timedelta(seconds=1), "a")])
    for day in ("2026-12-06", "2026-12-09"):  # unreadable: opening one would fail the query
        (tmp_path / "fraud" / day).mkdir()
        (tmp_path / "fraud" / day / "broken.parquet").write_bytes(b"not parquet")
    (tmp_path / "fraud" / "notes").mkdir()
    (tmp_path / "fraud" / "2026-12-07" / ".x.parquet.tmp").write_bytes(b"half written")
    assert arm_counts(tmp_path, "fraud", SINCE, UNTIL) == {"a": 2}
    assert [Path(p).parent.name for p in _segments(tmp_path, "fraud", (SINCE, UNTIL))] == [
        "2026-12-07",
        "2026-12-08",
    ]
    midnight = datetime(2026, 12, 8, tzinfo=UTC)  # an end at midnight needs no later day
    assert len(_segments(tmp_path, "fraud", (SINCE, midnight))) == 1
    assert _segments(tmp_path, "../fraud", (SINCE, UNTIL)) == []
    assert _segments(tmp_path, "", (SINCE, UNTIL)) == []
    assert _segments(tmp_path / "missing", "fraud", (SINCE, UNTIL)) == []


def test_segments_of_schema_version_1(tmp_path: Path) -> None:
    segment(
        tmp_path,
        "2026-12-07",
        "old.parquet",
        [answer("r1", SINCE, "a", latency_ms=5.0), answer("r2", SINCE, "b")],
        v1=True,
    )
    feedback = pa.table({"request_id": ["r1"], "truth": ["1"], "value": pa.nulls(1, pa.float64())})
    options: dict[str, Any] = {"arms": ["a"], "task": "classification", "output": "label"}
    only_v1 = experiment_rows(tmp_path, "fraud", SINCE, UNTIL, feedback=feedback, **options)
    a = only_v1.arms["a"]
    assert (a.latency_ms.tolist(), a.failed.tolist()) == ([5.0], [False])
    assert np.isnan(a.cpu_ms).all() and a.predicted.tolist() == a.truth.tolist() == ["1"]
    segment(
        tmp_path,
        "2026-12-07",
        "new.parquet",
        [answer("r3", SINCE, "a", latency_ms=7.0, error="internal", cpu_ms=1.0)],
    )
    mixed = experiment_rows(tmp_path, "fraud", SINCE, UNTIL, feedback=feedback, **options)
    a = mixed.arms["a"]
    order = np.argsort(a.latency_ms)
    assert a.failed[order].tolist() == [False, True]
    assert a.cpu_ms[order][1] == 1.0 and np.isnan(a.cpu_ms[order][0])
    assert arm_counts(tmp_path, "fraud", SINCE, UNTIL) == {"a": 2, "b": 1}


def test_an_unreadable_segment_in_the_window(tmp_path: Path) -> None:
    segment(tmp_path, "2026-12-07", "a.parquet", [answer("r1", SINCE, "a")])
    (tmp_path / "fraud" / "2026-12-08").mkdir()
    (tmp_path / "fraud" / "2026-12-08" / "b.parquet").write_bytes(b"PAR1 not parquet PAR1")
    message = r"^cannot read the prediction log of deployment 'fraud' in .*b\.parquet"
    with pytest.raises(ServiceUnavailable, match=message):
        arm_counts(tmp_path, "fraud", SINCE, UNTIL)
    options: dict[str, Any] = {"arms": ["a"], "task": "classification", "output": "label"}
    with pytest.raises(ServiceUnavailable, match=message):
        experiment_rows(tmp_path, "fraud", SINCE, UNTIL, **options)


def test_a_segment_deleted_while_it_is_read(tmp_path: Path) -> None:
    segment(tmp_path, "2026-12-07", "a.parquet", [answer("r1", SINCE, "a")])
    segment(tmp_path, "2026-12-08", "b.parquet", [answer("r2", SINCE, "a")])
    reader = ParquetReader(tmp_path, "fraud", (SINCE, UNTIL))  # the segments are listed
    (tmp_path / "fraud" / "2026-12-08" / "b.parquet").unlink()  # pruning, meanwhile
    try:
        with pytest.raises(ServiceUnavailable, match="deployment 'fraud'.*b\\.parquet"):
            reader.counts()
    finally:
        reader.close()


def test_without_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    segment(tmp_path, "2026-12-07", "a.parquet", [answer("r1", SINCE, "a")])
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb: ImportError
    with pytest.raises(DependencyMissing, match="pip install duckdb"):
        arm_counts(tmp_path, "fraud", SINCE, UNTIL)
    # Numbers (from PostgreSQL) are then parsed in Python.
    assert rows(texts("[[0.2, 0.8]]", "[[0.4, 0.6]]"), "score") == ([0.8, 0.6], [1, 1])


def test_a_postgresql_url_becomes_libpq_parameters_spaces_and_all() -> None:
    from modelport.monitoring._log_postgres import _conninfo

    url = "postgresql+psycopg://u:p%40ss@h:5433/db?options=-csearch_path%3Dx%20-clock_timeout%3D100"
    conninfo, shown = _conninfo(url)
    assert conninfo == (
        "host=h port=5433 user=u password=p@ss dbname=db "
        "options='-csearch_path=x -clock_timeout=100'"
    )
    assert "p@ss" not in shown and "***" in shown
