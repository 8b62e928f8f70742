"""Helpers shared by the security store contract tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from modelport.testing import FakeClock as _FakeClock

# Reported in UTC+2 on purpose: the store must convert to UTC.
START = datetime(2025, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))


class FakeClock(_FakeClock):
    """:class:`modelport.testing.FakeClock` starting at :data:`START` (UTC+2)."""

    __slots__ = ()

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start or START)
