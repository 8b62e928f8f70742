"""The security tests' clock: :class:`modelport.testing.FakeClock` read as epoch seconds.

Wall time and monotonic time start at the same number (:data:`START`) and move together, so
expiry times (epoch seconds) and cache deadlines (monotonic seconds) compare directly.
"""

from __future__ import annotations

from datetime import UTC, datetime

from modelport.testing import FakeClock as _FakeClock

START = 1_750_000_000.0


class FakeClock(_FakeClock):
    """Stands still until :meth:`advance` is called; :attr:`t` is the time in epoch seconds."""

    __slots__ = ()

    def __init__(self, start: float = START) -> None:
        super().__init__(datetime.fromtimestamp(start, UTC), monotonic=start)

    @property
    def t(self) -> float:
        """The current time in seconds since the epoch (and on the monotonic clock)."""
        return self.monotonic()
