"""A gateway worker's counts as its metrics read them: failures under the HTTP status REST sends."""

from __future__ import annotations

from modelport.monitoring import LatencyTally
from modelport.server.gateway.metrics import gateway_counts
from modelport.service.gateway import GatewayStats


def test_failures_are_counted_under_the_status_rest_answers_for_their_kind() -> None:
    stats = GatewayStats(
        answers={
            ("fraud", "a", True, "rest", 200): 5,
            ("fraud", "a", False, "grpc", 200): 1,
            ("fraud", "b", True, "rest", 400): 2,  # a replica's own 400, passed through
        },
        failures={
            ("fraud", "b", True, "rest", "invalid_input"): 1,
            ("fraud", "a", False, "grpc", "unavailable"): 3,
            ("fraud", "a", False, "grpc", "deadline_exceeded"): 1,
            ("fraud", "a", False, "grpc", "internal"): 1,
        },
        latency=[("fraud", "a", LatencyTally().totals())],
        in_flight=2,
        shadows={},
        shadow_failures={},
        shadows_skipped={},
        cache_hits={"fraud": 1},
        cache_misses={},
    )
    counts = gateway_counts(stats)
    assert counts.requests == {
        ("fraud", "a", "rest", "200", True): 5,
        ("fraud", "a", "grpc", "200", False): 1,
        ("fraud", "b", "rest", "400", True): 3,  # the replica's and ours, one series
        ("fraud", "a", "grpc", "503", False): 3,
        ("fraud", "a", "grpc", "504", False): 1,
        ("fraud", "a", "grpc", "500", False): 1,
    }
    assert (counts.in_flight, counts.cache_hits) == (2, {"fraud": 1})
