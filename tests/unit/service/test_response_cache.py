"""The response cache: keys per served version, LRU within entry and byte limits, TTL, counts."""

from __future__ import annotations

import pytest

from modelport.core.errors import InvalidInput
from modelport.service.response_cache import (
    CacheStats,
    ResponseCache,
    cache_key,
    canonical_request,
)
from modelport.testing import FakeClock

REQUEST = {
    "id": "r-1",
    "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}],
}


def cache(
    entries: int = 10, size: int = 1000, ttl: float = 60.0
) -> tuple[ResponseCache, FakeClock]:
    clock = FakeClock()
    return ResponseCache(entries, size, ttl, clock), clock


def test_the_request_id_and_key_order_do_not_change_the_key() -> None:
    reordered = {"inputs": REQUEST["inputs"], "id": "r-2"}
    assert canonical_request(REQUEST) == canonical_request(reordered)
    assert canonical_request(REQUEST) != canonical_request({**REQUEST, "parameters": {"a": 1}})


def test_one_versions_answer_is_never_another_versions_key() -> None:
    body = canonical_request(REQUEST)
    keys = {
        cache_key("fraud", "3", body),
        cache_key("fraud", "4", body),
        cache_key("fraud3", "", body),  # lengths are part of the key: no concatenation clash
        cache_key("fraud", "3", body + b" "),
    }
    assert len(keys) == 4
    store, _ = cache()
    store.put(cache_key("fraud", "3", body), b"answer of 3")
    assert store.get(cache_key("fraud", "4", body)) is None
    assert store.get(cache_key("fraud", "3", body)) == b"answer of 3"


def test_least_recently_used_goes_first_within_the_entry_limit() -> None:
    store, _ = cache(entries=2)
    store.put(b"a", b"1")
    store.put(b"b", b"2")
    assert store.get(b"a") == b"1"  # a is now the most recent
    store.put(b"c", b"3")
    assert (store.get(b"a"), store.get(b"b"), store.get(b"c")) == (b"1", None, b"3")
    assert store.stats().evictions == 1


def test_the_byte_limit_holds_and_an_oversized_answer_is_not_kept() -> None:
    store, _ = cache(size=10)
    store.put(b"a", b"12345")
    store.put(b"b", b"12345")
    store.put(b"c", b"123")
    assert store.get(b"a") is None and store.stats().bytes == 8
    store.put(b"huge", b"x" * 11)
    assert store.get(b"huge") is None and store.stats().entries == 2
    store.put(b"b", b"1")  # replacing an entry counts its new size only
    assert store.stats().bytes == 4


def test_answers_expire_after_the_ttl() -> None:
    store, clock = cache(ttl=30)
    store.put(b"a", b"1")
    clock.advance(29.9)
    assert store.get(b"a") == b"1"
    clock.advance(0.1)
    assert store.get(b"a") is None
    assert store.stats() == CacheStats(
        hits=1, misses=1, evictions=0, expirations=1, entries=0, bytes=0
    )


def test_clear_forgets_answers_and_keeps_counts() -> None:
    store, _ = cache()
    store.put(b"a", b"1")
    assert store.get(b"a") == b"1"
    store.clear()
    assert store.get(b"a") is None
    assert (store.stats().hits, store.stats().misses, store.stats().entries) == (1, 1, 0)


@pytest.mark.parametrize(("entries", "size", "ttl"), [(0, 10, 1.0), (1, 0, 1.0), (1, 10, 0.0)])
def test_limits_must_be_positive(entries: int, size: int, ttl: float) -> None:
    with pytest.raises(InvalidInput, match="must be positive"):
        ResponseCache(entries, size, ttl, FakeClock())
