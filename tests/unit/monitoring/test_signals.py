"""SignalRecorder: deltas of a gateway's cumulative counts per bucket; the histogram maths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelport.monitoring.gateway_metrics import GatewayCounts
from modelport.monitoring.signals import (
    SignalRecorder,
    SignalRow,
    add_up,
    boundary,
    count_above,
)
from modelport.monitoring.tally import LatencyTotals

EDGES = (0.1, 0.25, 0.5, 1.0)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def counts(
    ok: int = 0, failed: int = 0, bad_input: int = 0, buckets: tuple[int, ...] | None = None
) -> GatewayCounts:
    latency = buckets if buckets is not None else (ok + failed + bad_input, 0, 0, 0, 0)
    return GatewayCounts(
        requests={
            ("fraud", "a", "rest", "200", False): ok // 2,
            ("fraud", "a", "grpc", "200", True): ok - ok // 2,
            ("fraud", "a", "rest", "503", False): failed,
            ("fraud", "a", "rest", "400", False): bad_input,
        },
        latency=[("fraud", "a", LatencyTotals(sum(latency), 0.05 * sum(latency), latency))],
    )


def test_a_bucket_holds_what_changed_since_the_last_recording() -> None:
    recorder = SignalRecorder(EDGES, T0)
    first = recorder.record(T0 + timedelta(seconds=15), counts(ok=10, failed=2, bad_input=1))
    assert first == [
        SignalRow(
            "fraud", "a", T0, 15.0, requests=13, errors=2, edges=EDGES,
            buckets=(13, 0, 0, 0, 0), latency_seconds=pytest.approx(0.65),
        )
    ]  # fmt: skip
    second = recorder.record(
        T0 + timedelta(seconds=30), counts(ok=15, failed=2, bad_input=1, buckets=(14, 2, 1, 0, 1))
    )
    [row] = second
    assert (row.start, row.seconds) == (T0 + timedelta(seconds=15), 15.0)
    assert (row.requests, row.errors) == (5, 0)  # 4xx is the caller's, not a server error
    assert row.buckets == (1, 2, 1, 0, 1)
    assert row.end == T0 + timedelta(seconds=30)


def test_nothing_new_makes_no_row_and_a_smaller_total_counts_from_zero() -> None:
    recorder = SignalRecorder(EDGES, T0)
    recorder.record(T0 + timedelta(seconds=15), counts(ok=10))
    assert recorder.record(T0 + timedelta(seconds=30), counts(ok=10)) == []
    [row] = recorder.record(T0 + timedelta(seconds=45), counts(ok=4))  # a replaced tally
    assert row.requests == 4 and row.buckets == (4, 0, 0, 0, 0)


def test_samples_are_counted_and_the_peak_queue_share_kept_per_bucket() -> None:
    recorder = SignalRecorder(EDGES, T0)
    key = ("fraud", "a")
    recorder.sample({key: True, ("fraud", "b"): False}, {key: 0.25})
    recorder.sample({key: False, ("fraud", "b"): False}, {key: 0.75})
    recorder.sample({key: True}, {key: 0.5})
    rows = {r.variant: r for r in recorder.record(T0 + timedelta(seconds=15), GatewayCounts())}
    assert (rows["a"].samples, rows["a"].not_ready, rows["a"].queue_fill) == (3, 1, 0.75)
    assert (rows["b"].samples, rows["b"].not_ready, rows["b"].queue_fill) == (2, 2, None)
    assert rows["a"].requests == 0
    recorder.sample({key: True}, {})
    [row] = recorder.record(T0 + timedelta(seconds=30), GatewayCounts())
    assert (row.samples, row.not_ready, row.queue_fill) == (1, 0, None)  # a new bucket


def test_a_clock_that_steps_back_extends_the_bucket() -> None:
    recorder = SignalRecorder(EDGES, T0)
    assert recorder.record(T0 - timedelta(seconds=1), counts(ok=3)) == []
    [row] = recorder.record(T0 + timedelta(seconds=5), counts(ok=3))
    assert (row.start, row.requests) == (T0, 3)


def test_requests_above_a_threshold_are_exact_on_an_edge_and_interpolated_inside() -> None:
    buckets = (10, 20, 30, 40, 5)  # (0,0.1] (0.1,0.25] (0.25,0.5] (0.5,1] (1,inf)
    assert count_above(EDGES, buckets, 0.25) == 75
    assert count_above(EDGES, buckets, 1.0) == 5
    assert count_above(EDGES, buckets, 0.05) == pytest.approx(5 + 20 + 30 + 40 + 5)
    # 0.4 is 3/5 of the way through (0.25, 0.5]: 2/5 of its 30 are above
    assert count_above(EDGES, buckets, 0.4) == pytest.approx(12 + 40 + 5)
    assert count_above(EDGES, buckets, 3.0) == 5  # above the largest edge: all of the last


def test_totals_add_writers_up_even_with_other_edges() -> None:
    a = SignalRow("d", "a", T0, 15, requests=10, errors=1, edges=EDGES, buckets=(5, 5, 0, 0, 0))
    b = SignalRow("d", "b", T0, 15, requests=4, edges=(0.5,), buckets=(2, 2), queue_fill=0.3)
    c = SignalRow("d", "b", T0, 15, samples=3, not_ready=1, queue_fill=0.9)
    totals = add_up([a, b, c])
    assert (totals.requests, totals.errors, totals.latency_count) == (14, 1, 14)
    assert (totals.samples, totals.not_ready, totals.peak_fill) == (3, 1, 0.9)
    assert totals.slower_than(0.5) == 2
    assert totals.slower_than(0.1) == pytest.approx(5 + 2 * 0.8 + 2)  # interpolated in (0, 0.5]
    assert add_up([]).quantile(0.99) is None


def test_a_quantile_is_interpolated_in_its_bucket() -> None:
    row = SignalRow("d", "a", T0, 15, requests=100, edges=EDGES, buckets=(50, 50, 0, 0, 0))
    totals = add_up([row])
    assert totals.quantile(0.5) == pytest.approx(0.1)
    assert totals.quantile(0.75) == pytest.approx(0.175)
    slow = add_up([SignalRow("d", "a", T0, 15, edges=EDGES, buckets=(0, 0, 0, 0, 9))])
    assert slow.quantile(0.99) == 1.0  # beyond the largest edge: that edge
    with pytest.raises(ValueError, match="between 0 and 1"):
        totals.quantile(1.5)


def test_boundaries_are_multiples_of_the_interval_since_the_epoch() -> None:
    at = datetime(2026, 1, 1, 0, 0, 37, 500_000, tzinfo=UTC)
    assert boundary(at, 15) == datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    assert boundary(datetime(2026, 1, 1, 0, 0, 45, tzinfo=UTC), 15).second == 45
