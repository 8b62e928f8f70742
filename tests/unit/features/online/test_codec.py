"""Encodings the online stores rely on: microseconds, canonical keys, Redis value headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from modelport.features.online import FeatureStatus
from modelport.features.online._codec import (
    CREATED_NONE,
    build_read,
    encode_key,
    from_micros,
    to_micros,
)
from modelport.features.online.redis import _glob_escape, _header

aware = st.datetimes(timezones=st.just(UTC))


@given(aware)
def test_microseconds_round_trip(ts: datetime) -> None:
    assert from_micros(to_micros(ts)) == ts


@given(aware, aware, st.one_of(st.none(), aware), st.one_of(st.none(), aware))
def test_redis_headers_order_as_event_then_created(
    e1: datetime, e2: datetime, c1: datetime | None, c2: datetime | None
) -> None:
    def pair(e: datetime, c: datetime | None) -> tuple[int, int]:
        return to_micros(e), CREATED_NONE if c is None else to_micros(c)

    p1, p2 = pair(e1, c1), pair(e2, c2)
    h1, h2 = _header(*p1), _header(*p2)
    assert len(h1) == len(h2) == 40
    assert (h1 > h2) == (p1 > p2)
    assert int(h1[:20]) - 10**17 == p1[0]


def test_the_earliest_and_latest_datetimes_fit_the_header() -> None:
    lo = to_micros(datetime.min.replace(tzinfo=UTC))
    hi = to_micros(datetime.max.replace(tzinfo=UTC))
    assert CREATED_NONE < lo
    assert _header(lo, CREATED_NONE) < _header(hi, hi)
    assert _header(CREATED_NONE, CREATED_NONE) == b"0" * 40


def test_keys_are_canonical_json() -> None:
    assert encode_key(("a", 1)) == encode_key(["a", 1]) == b'["a",1]'
    assert encode_key(("1",)) != encode_key((1,))


def test_glob_characters_are_escaped() -> None:
    assert _glob_escape(b'p:"v*[x]?\\":') == b'p:"v\\*\\[x\\]\\?\\\\":'


def test_build_read_distinguishes_every_status() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    t = to_micros(now)
    records = [
        (t, {"x": 1, "y": None}),
        None,
        (t - 11, {"x": 2, "y": None}),
        (t - 10, {"x": 3}),
    ]
    read = build_read(["x", "y"], records, t, 10)
    s = FeatureStatus
    assert read.values == {"x": [1, None, None, 3], "y": [None, None, None, None]}
    assert read.statuses == {
        "x": [s.PRESENT, s.NOT_FOUND, s.OUTSIDE_MAX_AGE, s.PRESENT],
        "y": [s.NULL_VALUE, s.NOT_FOUND, s.OUTSIDE_MAX_AGE, s.NOT_FOUND],
    }
    assert read.event_ts == [
        now,
        None,
        now - timedelta(microseconds=11),
        now - timedelta(microseconds=10),
    ]
