"""The per-version tally that the statistics and the Prometheus metrics share."""

from __future__ import annotations

import bisect
import math

from hypothesis import given
from hypothesis import strategies as st

from modelport.monitoring.tally import (
    FOLD_EVERY,
    LATENCY_BUCKETS,
    LatencyTally,
    TallyTotals,
    VersionTally,
)


def _expected_buckets(durations: list[float]) -> tuple[int, ...]:
    """The histogram a per-request ``bisect`` would build ("less or equal" buckets, +Inf last)."""
    slots = [0] * (len(LATENCY_BUCKETS) + 1)
    for seconds in durations:
        slots[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
    return tuple(slots)


def test_an_unused_tally_is_all_zeros() -> None:
    assert VersionTally().totals() == TallyTotals()
    assert TallyTotals().last_at == -math.inf


def test_counts_successes_failures_rows_executions_and_the_last_time() -> None:
    tally = VersionTally()
    tally.success(3, 0.002, 10.0, 1)
    tally.failure("invalid_input", 0.0001, 11.0)
    tally.success(2, 0.004, 12.0, 0)  # batched: its execution is counted by the batch
    tally.executed()
    tally.failure("invalid_input", 0.5, 13.0)
    tally.failure("timeout", 20.0, 14.0)
    totals = tally.totals()
    assert totals.success_count == 2 and math.isclose(totals.success_seconds, 0.006)
    assert totals.inference_count == 5 and totals.execution_count == 2
    assert totals.fail_count == 3 and math.isclose(totals.fail_seconds, 20.5001)
    assert totals.failures == {"invalid_input": 2, "timeout": 1}
    assert totals.last_at == 14.0
    assert totals.buckets == _expected_buckets([0.002, 0.0001, 0.004, 0.5, 20.0])


def test_a_duration_on_a_bound_falls_in_that_bounds_bucket() -> None:
    tally = VersionTally()
    for bound in LATENCY_BUCKETS:
        tally.success(1, bound, 1.0, 1)
    assert tally.totals().buckets == (1,) * len(LATENCY_BUCKETS) + (0,)


def test_folding_in_the_list_of_pending_durations_keeps_every_success() -> None:
    tally = VersionTally()
    durations = [(i % 40) * 0.0007 for i in range(FOLD_EVERY * 2 + 7)]  # folds twice, 7 left
    for seconds in durations:
        tally.success(1, seconds, 1.0, 1)
    totals = tally.totals()
    assert totals.success_count == len(durations) == totals.inference_count
    assert math.isclose(totals.success_seconds, math.fsum(durations))
    assert totals.buckets == _expected_buckets(durations)
    assert tally.totals() == totals  # reading again adds nothing


@given(st.lists(st.floats(min_value=0.0, max_value=30.0), max_size=300))
def test_buckets_match_a_per_request_bisect(durations: list[float]) -> None:
    tally = VersionTally()
    for seconds in durations:
        tally.success(1, seconds, 1.0, 1)
    totals = tally.totals()
    assert totals.buckets == _expected_buckets(durations)
    assert totals.success_count == len(durations)
    assert math.isclose(totals.success_seconds, math.fsum(durations), abs_tol=1e-9)


def test_totals_are_a_copy() -> None:
    tally = VersionTally()
    tally.failure("timeout", 1.0, 1.0)
    first = tally.totals()
    first.failures["timeout"] = 99
    tally.failure("timeout", 1.0, 2.0)
    assert tally.totals().failures == {"timeout": 2}


def test_a_tally_buckets_by_the_bounds_it_is_given() -> None:
    bounds = (0.003, 0.3)
    tally = VersionTally(bounds)
    for seconds in (0.001, 0.003, 0.2, 0.5):
        tally.success(1, seconds, 1.0, 1)
    tally.failure("timeout", 0.3, 2.0)
    assert tally.bounds == bounds
    assert tally.totals().buckets == (2, 2, 1)


def test_batched_calls_are_counted_by_their_rows() -> None:
    tally = VersionTally()
    tally.executed(1, 8)
    tally.executed(1, 8)
    tally.executed(1, 3)
    tally.executed()  # an execution without a batch size
    totals = tally.totals()
    assert totals.batch_rows == {8: 2, 3: 1} and totals.execution_count == 4


@given(st.lists(st.floats(min_value=0.0, max_value=20.0), max_size=3 * FOLD_EVERY))
def test_a_latency_tally_agrees_with_bisect(durations: list[float]) -> None:
    tally = LatencyTally()
    for seconds in durations:
        tally.observe(seconds)
    totals = tally.totals()
    assert totals.count == len(durations)
    assert totals.buckets == _expected_buckets(durations)
    assert math.isclose(totals.seconds, math.fsum(durations), abs_tol=1e-9)
    assert tally.totals() == totals  # reading twice adds nothing
