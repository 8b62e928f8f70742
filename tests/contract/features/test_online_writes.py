"""Online stores keep the newest row per entity and view, whatever order writes arrive in."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from modelport.features.online import (
    FeatureStatus,
    OnlineStore,
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
)
from tests.contract.features._race_worker import T0, write_all

T = datetime(2024, 5, 1, 12, tzinfo=UTC)
NOW = T + timedelta(minutes=1)
KEY = ("user", 7)


def put(store: OnlineStore, event: datetime, created: datetime | None, **values: Any) -> int:
    return store.write(
        "v", [KEY], [event], [created], {name: [value] for name, value in values.items()}
    )


def get(store: OnlineStore, *features: str) -> dict[str, Any]:
    read = store.read("v", [KEY], list(features), NOW, None)
    return {f: read.values[f][0] for f in features}


def test_a_newer_event_replaces_and_an_older_one_is_skipped(store: OnlineStore) -> None:
    assert put(store, T, None, x=1.0) == 1
    assert put(store, T - timedelta(microseconds=1), None, x=2.0) == 0
    assert get(store, "x") == {"x": 1.0}
    assert put(store, T + timedelta(microseconds=1), None, x=3.0) == 1
    assert get(store, "x") == {"x": 3.0}
    assert store.read("v", [KEY], ["x"], NOW, None).event_ts == [T + timedelta(microseconds=1)]


def test_equal_event_times_are_decided_by_the_later_created_time(store: OnlineStore) -> None:
    assert put(store, T, T, x="first") == 1
    assert put(store, T, T + timedelta(seconds=1), x="recomputed") == 1
    assert put(store, T, T + timedelta(microseconds=999_999), x="stale") == 0
    assert put(store, T, None, x="no created time") == 0
    assert get(store, "x") == {"x": "recomputed"}


def test_a_missing_created_time_loses_to_any_created_time(store: OnlineStore) -> None:
    assert put(store, T, None, x="a") == 1
    assert put(store, T, None, x="same stamps") == 0  # not newer: the first stays
    assert put(store, T, datetime(1970, 1, 1, tzinfo=UTC), x="b") == 1
    assert get(store, "x") == {"x": "b"}


def test_an_older_write_after_a_newer_one_in_the_same_batch_is_skipped(store: OnlineStore) -> None:
    applied = store.write(
        "v",
        [KEY, KEY, KEY],
        [T, T - timedelta(hours=1), T + timedelta(hours=1)],
        [None, None, None],
        {"x": [1, 2, 3]},
    )
    assert applied == 2
    assert get(store, "x") == {"x": 3}


def test_a_newer_row_replaces_the_whole_row(store: OnlineStore) -> None:
    put(store, T, None, x=1, y=2)
    put(store, T + timedelta(seconds=1), None, x=10)
    read = store.read("v", [KEY], ["x", "y"], NOW, None)
    assert read.values == {"x": [10], "y": [None]}
    assert read.statuses["y"] == [FeatureStatus.NOT_FOUND]


def test_values_round_trip_with_their_types(store: OnlineStore) -> None:
    values = {"f": 0.1, "i": 2**62, "s": "zürich ✓", "b": True, "z": 0, "e": ""}
    put(store, T, None, **values)
    got = get(store, *values)
    assert got == values
    assert [type(v) for v in got.values()] == [float, int, str, bool, int, str]


def test_numpy_scalars_are_stored_as_python_numbers(store: OnlineStore) -> None:
    np = pytest.importorskip("numpy")
    store.write("v", [KEY], [T], [None], {"f": np.array([0.25]), "i": np.array([3])})
    got = get(store, "f", "i")
    assert got == {"f": 0.25, "i": 3}
    assert (type(got["f"]), type(got["i"])) == (float, int)


def test_naive_times_are_utc_and_other_zones_are_converted(store: OnlineStore) -> None:
    put(store, T.replace(tzinfo=None), None, x=1)
    paris = T.astimezone(timezone(timedelta(hours=2)))
    assert put(store, paris, None, x=2) == 0  # the same instant, not newer
    assert put(store, paris + timedelta(microseconds=1), None, x=3) == 1
    assert store.read("v", [KEY], ["x"], NOW, None).event_ts[0] == T + timedelta(microseconds=1)


def test_many_rows_in_one_write(store: OnlineStore) -> None:
    keys = [("e", i) for i in range(300)]
    assert store.write("v", keys, [T] * 300, [None] * 300, {"i": list(range(300))}) == 300
    assert store.write("v", keys, [T] * 300, [None] * 300, {"i": [0] * 300}) == 0
    newer = [T + timedelta(seconds=i % 2) for i in range(300)]
    assert store.write("v", keys, newer, [None] * 300, {"i": [-1] * 300}) == 150
    read = store.read("v", keys, ["i"], NOW, None)
    assert read.values["i"] == [i if i % 2 == 0 else -1 for i in range(300)]


def test_an_empty_write_applies_nothing(store: OnlineStore) -> None:
    assert store.write("v", [], [], [], {"x": []}) == 0


def test_views_are_separate_and_delete_view_removes_only_its_rows(store: OnlineStore) -> None:
    for view in ("v", "v*", "v[1]", "v:x", "w"):
        store.write(view, [KEY, ("other", 1)], [T, T], [None, None], {"x": [view, view]})
    assert store.delete_view("v*") == 2
    assert store.delete_view("v*") == 0
    assert store.delete_view("never written") == 0
    for view, status in (
        ("v", FeatureStatus.PRESENT),
        ("v*", FeatureStatus.NOT_FOUND),
        ("v[1]", FeatureStatus.PRESENT),
        ("v:x", FeatureStatus.PRESENT),
        ("w", FeatureStatus.PRESENT),
    ):
        read = store.read(view, [KEY], ["x"], NOW, None)
        assert read.statuses["x"] == [status], view
        assert read.values["x"] == [view if status is FeatureStatus.PRESENT else None]
    # A deleted view can be written again from scratch, older rows included.
    assert store.write("v*", [KEY], [T - timedelta(days=1)], [None], {"x": [0]}) == 1


def test_two_processes_racing_on_one_entity_end_with_the_newest_row(
    online_config: SqliteOnlineStoreConfig | RedisOnlineStoreConfig, store: OnlineStore
) -> None:
    count = 150
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=write_all, args=(online_config, writer, count, barrier, results))
        for writer in (0, 1)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    applied = [results.get(timeout=5) for _ in procs]
    assert 2 <= sum(applied) <= 2 * count
    read = store.read("race", [("hot", 1)], ["i", "writer"], NOW, None)
    assert read.values == {"i": [count - 1], "writer": [1]}
    assert read.event_ts == [T0 + timedelta(seconds=count - 1)]
