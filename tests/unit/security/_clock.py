"""A clock for security tests: wall time and monotonic time move together, only when told."""

from __future__ import annotations

from datetime import UTC, datetime

START = 1_750_000_000.0


class FakeClock:
    """Stands still until :meth:`advance` is called."""

    def __init__(self, start: float = START) -> None:
        self.t = start

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
