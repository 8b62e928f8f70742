"""Drift windows and verdicts on SQLite and PostgreSQL, and the drift job that scores them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from modelport.core.settings import MonitoringSettings
from modelport.drift import Profile, WindowCounts, profile
from modelport.monitoring.drift_counter import WindowSlice
from modelport.monitoring.drift_store import DriftStore
from modelport.registry import MetadataStore
from modelport.service.drift_monitor import DriftMonitor, drift_scores, window_end
from modelport.testing import FakeClock
from tests.contract.registry._support import new_version

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RNG = np.random.default_rng(5)
PROFILE = profile(
    {"x": RNG.normal(size=5_000), "colour": RNG.choice(["red", "blue"], 5_000)},
    categorical=["colour"],
)


def rows(n: int, shift: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=n) + shift, "colour": rng.choice(["red", "blue"], n)}


def bucket(minute: int, counts: WindowCounts, variant: str = "current",
           version: str = "1") -> WindowSlice:  # fmt: skip
    start = T0 + timedelta(minutes=minute)
    return WindowSlice("fraud", variant, "fraud", version, start, 60.0, counts)


@pytest.fixture
def store(backend_url: str) -> Iterator[DriftStore]:
    with DriftStore(backend_url) as opened:
        yield opened


def test_a_window_is_the_sum_of_its_buckets_from_every_writer(store: DriftStore) -> None:
    a, b, c = (PROFILE.count(rows(200, seed=s)) for s in (1, 2, 3))
    store.add_windows([bucket(0, a), bucket(1, b)], "host:1")
    store.add_windows([bucket(1, c), bucket(2, a, variant="candidate", version="2")], "host:2")
    store.add_windows([bucket(60, a)], "host:1")  # the next hour
    [candidate, current] = store.window_counts("fraud", T0, T0 + timedelta(hours=1))
    assert (current.variant, current.version, current.counts) == ("current", "1", a + b + c)
    assert (candidate.variant, candidate.version, candidate.counts.rows) == ("candidate", "2", 200)
    assert (
        store.window_counts("fraud", T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))[0].counts
        == b + c
    )  # a bucket belongs to the window its start is in
    assert store.window_counts("churn", T0, T0 + timedelta(hours=2)) == []
    assert store.deployments_with_windows(T0) == ["fraud"]
    assert store.deployments_with_windows(T0 + timedelta(hours=2)) == []


def test_counts_of_a_replaced_profile_are_kept_apart(store: DriftStore) -> None:
    other = profile(rows(1_000, seed=9), categorical=["colour"])
    store.add_windows([bucket(0, PROFILE.count(rows(10))), bucket(1, other.count(rows(20)))], "w")
    totals = store.window_counts("fraud", T0, T0 + timedelta(hours=1))
    assert sorted((t.counts.profile_key, t.counts.rows) for t in totals) == sorted(
        [(PROFILE.key, 10), (other.key, 20)]
    )


@pytest.fixture
def registry(backend_url: str) -> Iterator[MetadataStore]:
    with MetadataStore(backend_url, FakeClock(T0)) as opened:
        opened.create_version(new_version("fraud"))
        opened.create_version(new_version("fraud"))
        opened.set_profile("fraud", 1, PROFILE.to_dict(), PROFILE.rows, "sample", "alice")
        yield opened


def test_the_drift_job_scores_against_the_reference_and_the_previous_window(
    store: DriftStore, registry: MetadataStore
) -> None:
    # An hour like the reference, then an hour with x moved by half a standard deviation.
    for minute in range(120):
        shift = 0.5 if minute >= 60 else 0.0
        store.add_windows([bucket(minute, PROFILE.count(rows(50, shift, seed=minute)))], "w")
    # A version without a profile is not scored; neither is a window with too few rows.
    store.add_windows([bucket(90, PROFILE.count(rows(50)), "candidate", "2")], "w")
    clock = FakeClock(T0 + timedelta(hours=2, seconds=30))
    settings = MonitoringSettings()
    summary = DriftMonitor(store, registry, settings, clock).run()
    assert summary.startswith("scored 2 windows of 1 deployments; 1 features drifted")
    results = store.latest_results("fraud")
    assert [(r.against, r.variant, r.rows, r.drifted) for r in results] == [
        ("reference", "current", 3_000, ["x"]),
        ("previous", "current", 3_000, ["x"]),
    ]
    [reference, _] = results
    assert reference.window_start == T0 + timedelta(hours=1)
    assert reference.window_end == window_end(clock.now(), 60.0) == T0 + timedelta(hours=2)
    assert reference.baseline_rows == PROFILE.rows and reference.seconds == 3600.0
    scores = {s.feature: s for s in drift_scores(results)}
    assert scores["x"].drifted and scores["x"].method == "psi" and scores["x"].window == 3600.0
    assert not scores["colour"].drifted
    # The next run replaces the latest verdicts; old ones stay until the retention.
    clock.advance(300)
    DriftMonitor(store, registry, settings, clock).run()
    assert [r.evaluated_at for r in store.latest_results("fraud")] == [clock.now()] * 2
    assert store.latest_results("churn") == [] and store.latest_results(against="previous")


def test_the_drift_job_prunes_old_buckets_and_verdicts(
    store: DriftStore, registry: MetadataStore
) -> None:
    store.add_windows([bucket(0, PROFILE.count(rows(500)))], "w")
    clock = FakeClock(T0 + timedelta(minutes=30))
    settings = MonitoringSettings(drift_retention_days=1.0)
    DriftMonitor(store, registry, settings, clock).run()
    assert len(store.latest_results("fraud")) == 1
    clock.advance(2 * 86_400)
    summary = DriftMonitor(store, registry, settings, clock).run()
    assert summary.endswith("pruned 1 buckets, 1 verdicts")
    assert store.window_counts("fraud", T0, clock.now()) == []


def test_a_profile_round_trips_through_the_store_of_the_registry(registry: MetadataStore) -> None:
    stored = registry.get_profile("fraud", 1)
    assert stored is not None and Profile.from_dict(stored.profile) == PROFILE
