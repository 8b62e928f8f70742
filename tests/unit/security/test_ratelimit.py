"""Token-bucket rate limits per caller, on an injected clock."""

from __future__ import annotations

import pytest

from modelport.core.errors import ConfigError, RateLimited
from modelport.core.settings import LimitSettings
from modelport.security.ratelimit import RateLimiter
from tests.unit.security._clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_burst_then_refused(clock: FakeClock) -> None:
    limiter = RateLimiter(2.0, 5, clock)
    assert [limiter.take("a") for _ in range(5)] == [0.0] * 5
    assert limiter.take("a") == pytest.approx(0.5)
    # A refused request takes nothing: the wait does not grow.
    assert limiter.take("a") == pytest.approx(0.5)


def test_refill_and_retry_after(clock: FakeClock) -> None:
    limiter = RateLimiter(4.0, 2, clock)
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.25)
    clock.advance(0.1)
    assert limiter.take("a") == pytest.approx(0.15)
    clock.advance(0.15)
    assert limiter.take("a") == 0.0  # exactly the promised wait later, it is allowed
    assert limiter.take("a") == pytest.approx(0.25)


def test_refill_is_capped_at_burst(clock: FakeClock) -> None:
    limiter = RateLimiter(10.0, 3, clock)
    limiter.take("a")
    clock.advance(3600)
    assert [limiter.take("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert limiter.take("a") > 0


def test_keys_are_independent(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, 1, clock)
    assert limiter.take("key:a") == 0.0
    assert limiter.take("key:a") == pytest.approx(1.0)
    assert limiter.take("key:b") == 0.0


def test_steady_rate(clock: FakeClock) -> None:
    limiter = RateLimiter(100.0, 1, clock)
    allowed = 0
    for _ in range(1000):  # 10 s of requests every 10 ms
        allowed += limiter.take("a") == 0.0
        clock.advance(0.01)
    assert allowed == 1000
    assert limiter.take("a") == 0.0  # the token refilled by the last 10 ms
    assert all(limiter.take("a") > 0 for _ in range(10))  # and no more


def test_rate_zero_is_unlimited(clock: FakeClock) -> None:
    limiter = RateLimiter(0, 1, clock)
    assert not limiter.enabled
    assert all(limiter.take("a") == 0.0 for _ in range(10_000))
    assert len(limiter) == 0  # and it keeps no state


def test_memory_is_bounded_least_recently_used_first(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, 2, clock, max_keys=3)
    for key in ("a", "b", "c"):
        limiter.take(key)
        limiter.take(key)  # empty
    limiter.take("a")  # "a" is now the most recently used; "b" the least
    limiter.take("d")  # a new key at the limit evicts "b"
    assert len(limiter) == 3
    assert limiter.take("a") > 0  # kept: still empty
    assert limiter.take("c") > 0  # kept: still empty
    assert limiter.take("b") == 0.0  # evicted: starts again with a full bucket (evicting "c")
    for n in range(1000):
        limiter.take(f"k{n}")
    assert len(limiter) == 3


def test_check_raises_rate_limited(clock: FakeClock) -> None:
    limiter = RateLimiter(0.5, 1, clock)
    limiter.check("key:abc")
    with pytest.raises(RateLimited) as info:
        limiter.check("key:abc")
    assert info.value.retry_after == pytest.approx(2.0)
    assert (
        "rate limit exceeded for key:abc: 0.5 requests/s, burst 1; retry in 2.000 s"
        == info.value.message
    )


def test_from_settings(clock: FakeClock) -> None:
    limiter = RateLimiter.from_settings(LimitSettings(rate_per_s=3, burst=7), clock)
    assert (limiter.rate_per_s, limiter.burst, limiter.enabled) == (3.0, 7, True)


@pytest.mark.parametrize(("rate", "burst", "max_keys"), [(-1, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_invalid_configuration(clock: FakeClock, rate: float, burst: int, max_keys: int) -> None:
    with pytest.raises(ConfigError):
        RateLimiter(rate, burst, clock, max_keys=max_keys)


def test_clock_going_backwards_does_not_add_tokens(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, 1, clock)
    limiter.take("a")
    clock.advance(-5)
    assert limiter.take("a") == pytest.approx(1.0)
