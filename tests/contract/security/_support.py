"""Helpers shared by the security store contract tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

# Reported in UTC+2 on purpose: the store must convert to UTC.
START = datetime(2025, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))


class FakeClock:
    """A clock that stands still until told to move."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or START
        self._mono = 0.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        self._mono += seconds
        return self.current
