from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelport.core.clock import SystemClock, WallMillis
from modelport.testing import FakeClock


def stepped_clock() -> FakeClock:
    """Monotonic 100.0 is 2026-01-01T00:00:00Z."""
    return FakeClock(datetime(2026, 1, 1, tzinfo=UTC), monotonic=100.0)


EPOCH_2026_MS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)


def test_wall_millis_adds_the_monotonic_time_since_the_reading() -> None:
    clock = stepped_clock()
    wall = WallMillis(clock, every=1.0)
    assert wall(100.0) == EPOCH_2026_MS
    clock.advance(0.25)
    assert wall(100.25) == EPOCH_2026_MS + 250


def test_a_wall_clock_step_shows_after_at_most_one_interval() -> None:
    clock = stepped_clock()
    wall = WallMillis(clock, every=1.0)
    wall(100.0)
    clock.step_wall(timedelta(hours=1))  # NTP or an operator moves the wall clock
    clock.advance(0.5)
    assert wall(100.5) == EPOCH_2026_MS + 500  # still the old reading
    clock.advance(0.5)
    assert wall(101.0) == EPOCH_2026_MS + 3_600_000 + 1_000


def test_a_reading_from_before_the_anchor_is_still_right() -> None:
    clock = stepped_clock()
    clock.advance(5.0)
    wall = WallMillis(clock)
    assert wall(105.0) == EPOCH_2026_MS + 5_000
    assert wall(104.0) == EPOCH_2026_MS + 4_000


def test_wall_millis_matches_the_system_clock() -> None:
    clock = SystemClock()
    wall = WallMillis(clock)
    before = int(clock.now().timestamp() * 1000)
    value = wall(clock.monotonic())
    after = int(clock.now().timestamp() * 1000)
    assert before - 5 <= value <= after + 5
