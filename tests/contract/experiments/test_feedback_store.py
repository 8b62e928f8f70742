"""The feedback store, against SQLite and PostgreSQL: upserts counted exactly, reads as Arrow."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import select

from modelport import db
from modelport.core.errors import InvalidInput
from modelport.experiments._schema import feedback
from modelport.experiments.feedback import Feedback, FeedbackStore, FeedbackWritten
from modelport.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(backend_url: str, clock: FakeClock) -> Iterator[FeedbackStore]:
    with FeedbackStore(backend_url, clock) as opened:
        yield opened


def label(rid: str, truth: str = "1") -> Feedback:
    return Feedback(rid, "label", truth, None)


def rows(store: FeedbackStore, deployment: str) -> list[dict[str, object]]:
    return sorted(store.read(deployment).to_pylist(), key=lambda row: str(row["request_id"]))


def test_put_inserts_then_replaces_and_counts_each(store: FeedbackStore, clock: FakeClock) -> None:
    assert store.put("fraud", [label("a"), label("b")], "alice") == FeedbackWritten(2, 0)
    clock.advance(60)
    written = store.put("fraud", [label("b", "0"), Feedback("c", "value", "2.5", 2.5)], "bob")
    assert written == FeedbackWritten(inserted=1, replaced=1)
    assert rows(store, "fraud") == [
        {"request_id": "a", "kind": "label", "truth": "1", "value": None},
        {"request_id": "b", "kind": "label", "truth": "0", "value": None},
        {"request_id": "c", "kind": "value", "truth": "2.5", "value": 2.5},
    ]
    assert store.count("fraud") == 3 and store.count("churn") == 0
    assert store.put("fraud", [], "alice") == FeedbackWritten(0, 0)


def test_the_same_request_id_of_another_deployment_is_another_row(store: FeedbackStore) -> None:
    store.put("fraud", [label("a")], "alice")
    assert store.put("churn", [label("a", "0")], "alice") == FeedbackWritten(1, 0)
    assert rows(store, "churn")[0]["truth"] == "0" and rows(store, "fraud")[0]["truth"] == "1"


def test_who_and_when_are_recorded(store: FeedbackStore, clock: FakeClock) -> None:
    store.put("fraud", [label("a")], "alice")
    clock.advance(90)
    store.put("fraud", [label("a", "0")], "bob")
    with db.read(store._engine) as conn:
        row = conn.execute(select(feedback.c.received_at, feedback.c.received_by)).one()
    assert (row.received_at, row.received_by) == (clock.now(), "bob")
    assert row.received_at.tzinfo is not None


def test_read_since_a_time(store: FeedbackStore, clock: FakeClock) -> None:
    store.put("fraud", [label("old")], "alice")
    clock.advance(3600)
    store.put("fraud", [label("new")], "alice")
    assert [r["request_id"] for r in rows(store, "fraud")] == ["new", "old"]
    since = store.read("fraud", since=clock.now() - timedelta(minutes=1))
    assert since.column("request_id").to_pylist() == ["new"]
    later = clock.now().astimezone(UTC) + timedelta(microseconds=1)
    assert store.read("fraud", since=later).num_rows == 0
    with pytest.raises(ValueError, match="naive datetime"):
        store.read("fraud", since=clock.now().replace(tzinfo=None))


def test_an_empty_read_has_the_columns_and_types(store: FeedbackStore) -> None:
    table = store.read("fraud")
    assert table.num_rows == 0
    assert table.schema == pa.schema(
        [
            ("request_id", pa.string()),
            ("kind", pa.string()),
            ("truth", pa.string()),
            ("value", pa.float64()),
        ]
    )


def test_a_request_id_twice_in_one_put_is_refused(store: FeedbackStore) -> None:
    with pytest.raises(InvalidInput, match="names a request id more than once"):
        store.put("fraud", [label("a"), label("a", "0")], "alice")
    assert store.count("fraud") == 0


def test_many_rows_in_one_put_and_back(store: FeedbackStore) -> None:
    items = [
        Feedback(f"r{i:06d}", "value", repr(i / 7), i / 7) if i % 2 else label(f"r{i:06d}", '"x"')
        for i in range(120_000)
    ]
    assert store.put("fraud", items, "alice") == FeedbackWritten(120_000, 0)
    assert store.put("fraud", items[:70_000], "alice") == FeedbackWritten(0, 70_000)
    table = store.read("fraud")
    assert table.num_rows == 120_000
    by_id = dict(
        zip(table.column("request_id").to_pylist(), table.column("value").to_pylist(), strict=True)
    )
    assert by_id["r000007"] == 1.0 and by_id["r000008"] is None
    assert by_id["r100001"] == 100_001 / 7  # a float comes back exactly


@pytest.mark.slow
def test_a_million_rows_read_back_within_two_seconds(tmp_path: Path, clock: FakeClock) -> None:
    with FeedbackStore(f"sqlite:///{tmp_path / 'metadata.db'}", clock) as store:
        for start in range(0, 1_000_000, 50_000):
            store.put(
                "fraud", [label(f"request-{i:010d}") for i in range(start, start + 50_000)], "a"
            )
        best = float("inf")
        for _ in range(2):
            began = time.perf_counter()
            table = store.read("fraud")
            best = min(best, time.perf_counter() - began)
    assert table.num_rows == 1_000_000
    assert best < 2.0, f"read a million rows in {best:.2f} s"
