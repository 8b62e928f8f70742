"""The public fake clock: a Clock that moves only when a test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

import modelport.testing
from modelport.core.clock import Clock
from modelport.testing import FakeClock
from modelport.testing.clock import DEFAULT_START


def test_exported_names() -> None:
    assert sorted(modelport.testing.__all__) == ["FakeClock", "ServerProcess"]


def test_it_is_a_clock_that_stands_still() -> None:
    clock: Clock = FakeClock()
    assert clock.now() == DEFAULT_START == clock.now()
    assert clock.monotonic() == 0.0 == clock.monotonic()


def test_advance_moves_both_clocks() -> None:
    zone = timezone(timedelta(hours=2))
    start = datetime(2025, 3, 1, 14, 0, tzinfo=zone)
    clock = FakeClock(start, monotonic=100.0)
    assert clock.advance(1.5) == start + timedelta(seconds=1.5) == clock.now()
    assert clock.monotonic() == 101.5
    assert clock.now().tzinfo is zone, "the start's zone is kept"


def test_step_wall_moves_only_the_wall_clock() -> None:
    clock = FakeClock(monotonic=5.0)
    assert clock.step_wall(timedelta(hours=-1)) == DEFAULT_START - timedelta(hours=1)
    assert clock.monotonic() == 5.0


def test_advance_may_go_back_for_tests_of_robustness() -> None:
    clock = FakeClock(monotonic=10.0)
    assert clock.advance(-5) == DEFAULT_START - timedelta(seconds=5)
    assert clock.monotonic() == 5.0


def test_start_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


def test_set_now_may_set_a_naive_time() -> None:
    clock = FakeClock()
    clock.set_now(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
    assert clock.now().tzinfo is None
    assert UTC is DEFAULT_START.tzinfo
