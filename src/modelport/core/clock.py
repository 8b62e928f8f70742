"""Clocks: the system clock and the protocol that lets tests inject their own."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


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

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()
