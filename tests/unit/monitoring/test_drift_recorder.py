"""The drift recorder: the log's observer counts, stores ended buckets, retries, keeps the last."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from modelport.monitoring import drift_recorder
from modelport.monitoring.drift_counter import DriftCounter, WindowSlice
from modelport.monitoring.drift_recorder import DriftRecorder
from modelport.monitoring.drift_store import DriftStore
from modelport.monitoring.prediction_log import PredictionLog
from tests.unit.monitoring.test_drift_counter import PROFILE, T0, record

RNG = np.random.default_rng(3)


class Flaky(DriftStore):
    """A real store whose next writes fail (the database is down)."""

    failing = 0

    def add_windows(self, slices: Sequence[WindowSlice], writer: str) -> None:
        if self.failing:
            self.failing -= 1
            raise OSError("database is down")
        super().add_windows(slices, writer)


def recorder(tmp_path: Path, now: list[float]) -> tuple[DriftRecorder, Flaky]:
    store = Flaky(f"sqlite:///{tmp_path / 'metadata.db'}")
    counter = DriftCounter(lambda model, version: PROFILE, lambda deployment: ())
    return DriftRecorder(counter, store, now=lambda: now[0]), store


def stored(tmp_path: Path) -> int:
    with DriftStore(f"sqlite:///{tmp_path / 'metadata.db'}") as store:
        return sum(t.counts.rows for t in store.window_counts("fraud", T0, T0 + timedelta(hours=1)))


def test_ended_buckets_are_stored_and_the_running_one_at_close(tmp_path: Path) -> None:
    now = [(T0 + timedelta(seconds=50)).timestamp()]
    drift, _ = recorder(tmp_path, now)
    drift([record(RNG.normal(size=(3, 2)), T0 + timedelta(seconds=10))])
    assert stored(tmp_path) == 0  # its minute has not ended
    now[0] += 20
    drift([record(RNG.normal(size=(2, 2)), T0 + timedelta(seconds=65))])
    assert stored(tmp_path) == 3 and drift.written == 1
    drift.close()
    assert stored(tmp_path) == 5


def test_a_failed_write_is_retried_with_what_came_since(tmp_path: Path) -> None:
    now = [(T0 + timedelta(minutes=5)).timestamp()]
    drift, store = recorder(tmp_path, now)
    store.failing = 1
    drift([record(RNG.normal(size=(4, 2)), T0)])
    assert stored(tmp_path) == 0
    drift([record(RNG.normal(size=(1, 2)), T0 + timedelta(minutes=1))])
    assert stored(tmp_path) == 5 and drift.written == 2 and drift.dropped == 0
    drift.close()


def test_waiting_buckets_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [(T0 + timedelta(hours=1)).timestamp()]
    drift, store = recorder(tmp_path, now)
    store.failing = 10
    monkeypatch.setattr(drift_recorder, "MAX_WAITING", 2)  # the bound, made small
    for minute in range(4):
        drift([record(RNG.normal(size=(1, 2)), T0 + timedelta(minutes=minute))])
    assert drift.dropped == 2
    store.failing = 0
    drift.close()
    assert stored(tmp_path) == 2  # the two newest buckets


def test_the_prediction_log_tells_its_observer_each_record_once(tmp_path: Path) -> None:
    seen: list[int] = []
    log = PredictionLog(tmp_path / "log", 60, observer=lambda r: seen.append(len(r)))
    log.log(record(RNG.normal(size=(2, 2)), T0))
    log.close()
    assert sum(seen) == 1
