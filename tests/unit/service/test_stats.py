"""The inference statistics recorder."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from modelport.service.stats import Duration, InferenceStats, ModelStats
from modelport.testing import FakeClock


def _clock() -> FakeClock:
    """Monotonic 100.0 is 2026-01-01T00:00:00Z."""
    return FakeClock(datetime(2026, 1, 1, tzinfo=UTC), monotonic=100.0)


EPOCH_2026_MS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)


def test_counts_successes_failures_rows_and_last_time() -> None:
    clock = _clock()
    stats = InferenceStats(clock)
    tally = stats.tally("m", "1")
    tally.success(4, 100e-9, 101.0, 1)
    tally.failure("invalid_input", 7e-9, 102.0)
    tally.success(2, 50e-9, 103.0, 2)
    clock.advance(4.0)  # the snapshot is taken later; last_inference is still the request's
    (entry,) = stats.snapshot()
    assert entry == ModelStats(
        name="m",
        version="1",
        last_inference=EPOCH_2026_MS + 3_000,
        inference_count=6,
        execution_count=3,
        success=Duration(2, 150),
        fail=Duration(1, 7),
    )
    assert entry.to_dict() == {
        "name": "m",
        "version": "1",
        "last_inference": EPOCH_2026_MS + 3_000,
        "inference_count": 6,
        "execution_count": 3,
        "inference_stats": {"success": {"count": 2, "ns": 150}, "fail": {"count": 1, "ns": 7}},
    }


def test_a_version_without_requests_has_no_last_inference() -> None:
    stats = InferenceStats(_clock())
    stats.record_executions("m", "1")
    (entry,) = stats.snapshot()
    assert entry.last_inference == 0 and entry.execution_count == 1


def test_snapshot_reports_the_versions_asked_for_in_order_with_zeros() -> None:
    stats = InferenceStats()
    stats.tally("b", "2").success(1, 1e-9, 1.0, 1)
    stats.tally("a", "1").success(1, 1e-9, 1.0, 1)
    assert [(s.name, s.version) for s in stats.snapshot()] == [("a", "1"), ("b", "2")]
    asked = stats.snapshot([("b", "2"), ("c", "1")])
    assert [(s.name, s.version, s.inference_count) for s in asked] == [("b", "2", 1), ("c", "1", 0)]
    assert asked[1] == ModelStats("c", "1")


def test_the_same_version_always_gets_the_same_tally() -> None:
    stats = InferenceStats()
    tally = stats.tally("m", "1")
    assert stats.tally("m", "1") is tally
    assert stats.tally("m", "2") is not tally
    assert [(name, version) for name, version, _ in stats.tallies()] == [("m", "1"), ("m", "2")]


def test_batch_executions_from_several_threads_are_all_counted() -> None:
    stats = InferenceStats()
    stats.tally("m", "1").success(1, 1e-9, 1.0, 0)  # a batched request: no execution of its own

    def work() -> None:
        for _ in range(2_000):
            stats.record_executions("m", "1")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (entry,) = stats.snapshot()
    assert entry.execution_count == 8_000 and entry.success == Duration(1, 1)


def test_merge_statistics_adds_up_workers() -> None:
    from modelport.service.stats import merge_statistics

    def entry(version: str, ok: int, ns: int, last: int) -> dict[str, object]:
        return {
            "name": "m",
            "version": version,
            "last_inference": last,
            "inference_count": ok * 2,
            "execution_count": ok,
            "inference_stats": {"success": {"count": ok, "ns": ns}, "fail": {"count": 1, "ns": 5}},
        }

    first = [entry("1", 3, 300, 10), entry("2", 1, 100, 50)]
    second = [entry("1", 2, 200, 40)]
    merged = merge_statistics([first, second])
    assert [(e["name"], e["version"]) for e in merged] == [("m", "1"), ("m", "2")]
    one = merged[0]
    assert one["last_inference"] == 40
    assert one["inference_count"] == 10 and one["execution_count"] == 5
    assert one["inference_stats"] == {
        "success": {"count": 5, "ns": 500},
        "fail": {"count": 2, "ns": 10},
    }
    assert first[0]["inference_stats"]["success"] == {"count": 3, "ns": 300}  # inputs untouched
    assert merge_statistics([]) == []
