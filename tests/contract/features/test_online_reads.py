"""Online reads: statuses, the TTL bound, key order and shapes, and bad input."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelport.core.errors import InvalidInput
from modelport.features.online import FeatureStatus, OnlineStore

T = datetime(2024, 5, 1, 12, tzinfo=UTC)
TTL = timedelta(hours=2)
US = timedelta(microseconds=1)
PRESENT = FeatureStatus.PRESENT
NOT_FOUND = FeatureStatus.NOT_FOUND
NULL = FeatureStatus.NULL_VALUE
OLD = FeatureStatus.OUTSIDE_MAX_AGE


def one(store: OnlineStore, key: tuple[Any, ...], event: datetime, **values: Any) -> None:
    store.write("v", [key], [event], [None], {name: [v] for name, v in values.items()})


def test_the_ttl_bound_is_inclusive(store: OnlineStore) -> None:
    one(store, ("a",), T, x=1.5, y=None)
    at_bound = store.read("v", [("a",)], ["x", "y"], T + TTL, TTL)
    assert at_bound.values == {"x": [1.5], "y": [None]}
    assert at_bound.statuses == {"x": [PRESENT], "y": [NULL]}
    past = store.read("v", [("a",)], ["x", "y"], T + TTL + US, TTL)
    assert past.values == {"x": [None], "y": [None]}
    assert past.statuses == {"x": [OLD], "y": [OLD]}
    assert past.event_ts == [T]  # the stored row's time is still reported


def test_no_ttl_never_expires_and_a_zero_ttl_keeps_only_the_present_instant(
    store: OnlineStore,
) -> None:
    one(store, ("a",), T, x=1)
    assert store.read("v", [("a",)], ["x"], T + timedelta(days=3650), None).values == {"x": [1]}
    assert store.read("v", [("a",)], ["x"], T, timedelta(0)).statuses == {"x": [PRESENT]}
    assert store.read("v", [("a",)], ["x"], T + US, timedelta(0)).statuses == {"x": [OLD]}


def test_a_row_from_after_now_is_present(store: OnlineStore) -> None:
    one(store, ("a",), T, x=1)
    assert store.read("v", [("a",)], ["x"], T - timedelta(hours=1), TTL).statuses == {
        "x": [PRESENT]
    }


def test_unknown_entities_views_and_features_are_not_found(store: OnlineStore) -> None:
    one(store, ("a",), T, x=1)
    read = store.read("v", [("a",), ("b",)], ["x", "nope"], T, TTL)
    assert read.values == {"x": [1, None], "nope": [None, None]}
    assert read.statuses == {"x": [PRESENT, NOT_FOUND], "nope": [NOT_FOUND, NOT_FOUND]}
    assert read.event_ts == [T, None]
    other = store.read("never written", [("a",)], ["x"], T, TTL)
    assert other.statuses == {"x": [NOT_FOUND]} and other.event_ts == [None]


def test_an_expired_row_keeps_not_found_for_features_it_lacks(store: OnlineStore) -> None:
    one(store, ("a",), T, x=1)
    read = store.read("v", [("a",)], ["x", "nope"], T + TTL + US, TTL)
    assert read.statuses == {"x": [OLD], "nope": [NOT_FOUND]}


def test_stored_nulls_and_nan_read_as_null_values(store: OnlineStore) -> None:
    store.write("v", [("a",), ("b",)], [T, T], [None, None], {"x": [None, math.nan]})
    read = store.read("v", [("a",), ("b",)], ["x"], T, TTL)
    assert read.values == {"x": [None, None]}
    assert read.statuses == {"x": [NULL, NULL]}


def test_composite_keys_are_distinct_by_every_part_and_its_type(store: OnlineStore) -> None:
    keys = [("a", 1), ("a", 2), (1, "a"), ("a", "1"), ("a",), ("a", 1, "x"), ("", 0)]
    store.write("v", keys, [T] * len(keys), [None] * len(keys), {"k": [repr(k) for k in keys]})
    read = store.read("v", keys[::-1] + [("a", 3)], ["k"], T, TTL)
    assert read.values == {"k": [repr(k) for k in keys[::-1]] + [None]}
    # A list is the same key as the tuple it spells.
    assert store.read("v", [["a", 1]], ["k"], T, TTL).values == {"k": ["('a', 1)"]}


def test_many_entities_keep_their_order_and_duplicates(store: OnlineStore) -> None:
    keys = [("e", i) for i in range(100)]
    events = [T - timedelta(hours=i % 4) for i in range(100)]
    values = {f"f{j}": [i * 10 + j for i in range(100)] for j in range(10)}
    assert store.write("v", keys, events, [None] * 100, values) == 100
    asked = keys + keys[:7] + [("missing", 0)]
    random.Random(3).shuffle(asked)
    features = [f"f{j}" for j in range(10)]
    read = store.read("v", asked, features, T, TTL)
    for pos, key in enumerate(asked):
        i = key[1]
        fresh = key[0] == "e" and i % 4 <= 2
        for j, f in enumerate(features):
            assert read.values[f][pos] == (i * 10 + j if fresh else None)
        expected = PRESENT if fresh else (OLD if key[0] == "e" else NOT_FOUND)
        assert read.statuses["f0"][pos] is expected
        assert read.event_ts[pos] == (events[i] if key[0] == "e" else None)


def test_an_empty_read_has_empty_columns(store: OnlineStore) -> None:
    read = store.read("v", [], ["x"], T, TTL)
    assert read.values == {"x": []} and read.statuses == {"x": []} and read.event_ts == []
    assert store.read("v", [("a",)], [], T, TTL).values == {}


def test_a_read_of_more_keys_than_one_query_takes(store: OnlineStore) -> None:
    keys = [("e", i) for i in range(30_010)]
    store.write("v", keys[-5:], [T] * 5, [None] * 5, {"x": [1, 2, 3, 4, 5]})
    read = store.read("v", keys, ["x"], T, TTL)
    assert read.values["x"][-6:] == [None, 1, 2, 3, 4, 5]
    assert read.statuses["x"].count(PRESENT) == 5


@pytest.mark.parametrize(
    ("keys", "event_ts", "created_ts", "values", "message"),
    [
        ([("a",)] * 2, [T], [None, None], {"x": [1, 2]}, "keys=2, event_ts=1, created_ts=2"),
        ([("a",)], [T], [], {"x": [1]}, "created_ts=0"),
        ([("a",)], [T], [None], {"x": [1], "y": [1, 2]}, "values['y']=2"),
    ],
)
def test_mismatched_lengths_name_every_length(
    store: OnlineStore,
    keys: list[tuple[Any, ...]],
    event_ts: list[datetime],
    created_ts: list[datetime | None],
    values: dict[str, list[Any]],
    message: str,
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        store.write("v", keys, event_ts, created_ts, values)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (("a", 1.5), "must be str or int, got float"),
        (("a", True), "must be str or int, got bool"),
        (("a", None), "must be str or int, got NoneType"),
        ("a", "must be a tuple"),
        ((), "at least one"),
        ((2**64,), "cannot be encoded"),
    ],
)
def test_malformed_keys_are_refused_on_write_and_read(
    store: OnlineStore, key: Any, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.write("v", [key], [T], [None], {"x": [1]})
    with pytest.raises(InvalidInput, match=message):
        store.read("v", [key], ["x"], T, TTL)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"values": {"x": [[1, 2]]}}, "feature 'x': values must be .* got list"),
        ({"values": {"x": [{"a": 1}]}}, "got dict"),
        ({"values": {"x": [T]}}, "got datetime"),
        ({"values": {"": [1]}}, "non-empty strings"),
        ({"event_ts": ["2024-01-01"]}, r"event_ts\[0\] must be a datetime"),
        ({"created_ts": [1]}, r"created_ts\[0\] must be a datetime"),
        ({"view": ""}, "feature view name"),
        ({"values": {"x": "a"}}, "must be a sequence of values, not a string"),
    ],
)
def test_malformed_writes_are_refused_and_write_nothing(
    store: OnlineStore, change: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {
        "view": "v",
        "keys": [("a",)],
        "event_ts": [T],
        "created_ts": [None],
        "values": {"x": [1]},
    }
    with pytest.raises(InvalidInput, match=message):
        store.write(**(args | change))
    assert store.read("v", [("a",)], ["x"], T, TTL).statuses == {"x": [NOT_FOUND]}


@pytest.mark.parametrize(
    ("features", "ttl", "message"),
    [
        (["x", "x"], TTL, "feature names repeat"),
        ([""], TTL, "non-empty strings"),
        (["x"], -US, "ttl must not be negative"),
        ("x", TTL, "not the string 'x'"),
    ],
)
def test_malformed_reads_are_refused(
    store: OnlineStore, features: list[str], ttl: timedelta, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.read("v", [("a",)], features, T, ttl)


def test_delete_view_refuses_a_malformed_view_name(store: OnlineStore) -> None:
    with pytest.raises(InvalidInput, match="feature view name"):
        store.delete_view("")
