"""A deterministic row-wise model and a fake clock for the batcher tests."""

from __future__ import annotations

import threading
from collections.abc import Collection
from datetime import UTC, datetime

import numpy as np

from modelport.core.errors import InvalidInput
from modelport.testing import FakeClock as _FakeClock

OUTPUTS = ("double", "total", "first")


def row_model(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
    """Output row i depends on input row i only; rejects NaN like a strict model would."""
    x = inputs["x"]
    if np.isnan(x).any():
        raise InvalidInput("x contains NaN")
    everything = {"double": x * 2, "total": x.sum(axis=1), "first": x[:, 0].copy()}
    return {name: everything[name] for name in outputs}


class RecordingModel:
    """``row_model`` that records every call's row count and requested outputs."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, tuple[str, ...]]] = []
        self.seen: list[np.ndarray] = []
        self._lock = threading.Lock()

    def __call__(
        self, inputs: dict[str, np.ndarray], outputs: Collection[str]
    ) -> dict[str, np.ndarray]:
        with self._lock:
            self.calls.append((inputs["x"].shape[0], tuple(outputs)))
            self.seen.append(inputs["x"].copy())
        return row_model(inputs, outputs)

    @property
    def sizes(self) -> list[int]:
        return [rows for rows, _ in self.calls]


class FakeClock(_FakeClock):
    """:class:`modelport.testing.FakeClock` read and set as seconds through :attr:`t`."""

    __slots__ = ()

    def __init__(self, start: float = 100.0) -> None:
        super().__init__(datetime.fromtimestamp(start, UTC), monotonic=start)

    @property
    def t(self) -> float:
        """The monotonic reading; setting it moves both clocks there."""
        return self.monotonic()

    @t.setter
    def t(self, value: float) -> None:
        self.advance(value - self.monotonic())


def rows_of(caller: int, rows: int, width: int = 3) -> np.ndarray:
    """Rows no other caller has: identity is visible in every output."""
    return caller * 1000 + np.arange(rows * width, dtype=np.float64).reshape(rows, width)
