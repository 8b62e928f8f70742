"""Clocks: the system clock and the protocol that lets tests inject their own."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock", "WallMillis"]


class Clock(Protocol):
    """Source of time; inject one instead of calling :func:`time.time`."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Return seconds on a monotonic clock."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    monotonic = staticmethod(time.monotonic)
    """Return :func:`time.monotonic` (the C function itself: the serving path reads it several
    times per request, and a Python wrapper around it costs more than the call)."""


class WallMillis:
    """Milliseconds since the epoch for a reading of ``clock.monotonic()``, cheaply.

    Reading the wall clock as a timezone-aware ``datetime`` costs more than the rest of a
    request's bookkeeping; this reads it once per ``every`` seconds and adds the monotonic time
    since. A step of the wall clock (NTP, an operator) shows after at most ``every`` seconds.

    Args:
        clock: The clock to read.
        every: Seconds between wall-clock readings.
    """

    def __init__(self, clock: Clock, every: float = 1.0) -> None:
        self._clock = clock
        self._every = every
        self._anchored = float("-inf")
        self._offset = 0.0

    def __call__(self, monotonic: float) -> int:
        """Return the epoch milliseconds at monotonic time ``monotonic``."""
        if not 0 <= monotonic - self._anchored < self._every:
            self._anchored = self._clock.monotonic()
            self._offset = self._clock.now().timestamp() - self._anchored
        return int((monotonic + self._offset) * 1000)
