"""A clock for tests: it stands still until the test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["DEFAULT_START", "FakeClock"]

DEFAULT_START: Final = datetime(2026, 1, 1, tzinfo=UTC)
"""Where a :class:`FakeClock` starts unless told otherwise."""


class FakeClock:
    """A :class:`modelport.core.clock.Clock` that moves only when told to.

    Inject it wherever modelport takes a ``clock``; :meth:`advance` moves the wall clock and the
    monotonic clock together, :meth:`step_wall` moves only the wall clock (as NTP or an operator
    would).

    Args:
        start: The wall-clock time at the start; timezone-aware, and returned as given (in its
            own zone) by :meth:`now`.
        monotonic: The monotonic reading at the start.

    Raises:
        ValueError: ``start`` has no timezone.
    """

    __slots__ = ("_monotonic", "_now")

    def __init__(self, start: datetime = DEFAULT_START, monotonic: float = 0.0) -> None:
        if start.tzinfo is None:
            raise ValueError(f"start must be timezone-aware, got {start!r}")
        self._now = start
        self._monotonic = float(monotonic)

    def now(self) -> datetime:
        """Return the current wall-clock time."""
        return self._now

    def monotonic(self) -> float:
        """Return the current monotonic reading in seconds."""
        return self._monotonic

    def advance(self, seconds: float) -> datetime:
        """Let ``seconds`` pass on both clocks.

        A negative ``seconds`` moves both back, which a real monotonic clock never does: for
        tests that check code copes with it anyway.

        Returns:
            The wall-clock time afterwards.
        """
        self._monotonic += seconds
        self._now += timedelta(seconds=seconds)
        return self._now

    def step_wall(self, delta: timedelta) -> datetime:
        """Move the wall clock by ``delta`` (either way) without moving the monotonic clock.

        Returns:
            The wall-clock time afterwards.
        """
        self._now += delta
        return self._now

    def set_now(self, at: datetime) -> None:
        """Set the wall clock to ``at``, unchecked.

        Unlike ``start``, ``at`` may be naive, so that a test can check that code refuses a
        clock that returns naive times.
        """
        self._now = at
