"""The gateway's families, from its counts: requests, assignments, latency, shadows, cache."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from modelport.monitoring import Exposition, GatewayCounts, GatewayMetrics, LatencyTally

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def render(exposition: Exposition) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition.render()[0].decode())
        for s in family.samples
    }


def test_requests_by_protocol_and_code_and_keyed_requests_by_variant() -> None:
    exposition = Exposition(multiprocess=False)
    counts = GatewayCounts(
        requests={
            ("fraud", "a", "rest", "200", True): 5,
            ("fraud", "a", "rest", "200", False): 2,
            ("fraud", "a", "grpc", "200", True): 1,
            ("fraud", "b", "rest", "503", False): 4,
        }
    )
    GatewayMetrics(exposition, lambda: counts)
    found = render(exposition)

    def requests(variant: str, protocol: str, code: str) -> float:
        labels = (
            ("code", code),
            ("deployment", "fraud"),
            ("protocol", protocol),
            ("variant", variant),
        )
        return found[("modelport_gateway_requests_total", labels)]

    assert requests("a", "rest", "200") == 7  # keyed or not, one series
    assert requests("a", "grpc", "200") == 1
    assert requests("b", "rest", "503") == 4
    keyed = "modelport_gateway_keyed_requests_total"
    assert found[(keyed, (("deployment", "fraud"), ("variant", "a")))] == 6
    assert (keyed, (("deployment", "fraud"), ("variant", "b"))) not in found


def test_latency_in_flight_shadows_and_cache() -> None:
    exposition = Exposition(slo_latency_seconds=[0.3], multiprocess=False)
    tally = LatencyTally(exposition.latency_buckets)
    counts = {"now": GatewayCounts()}
    GatewayMetrics(exposition, lambda: counts["now"])
    for seconds in (0.001, 0.29, 0.31):
        tally.observe(seconds)
    counts["now"] = GatewayCounts(
        latency=[("fraud", "a", tally.totals())],
        in_flight=4,
        shadows={("fraud", "s"): 9},
        shadow_failures={("fraud", "s"): 2},
        shadows_skipped={"fraud": 1},
        cache_hits={"fraud": 6},
        cache_misses={"fraud": 3},
    )
    found = render(exposition)
    pair = (("deployment", "fraud"), ("variant", "a"))
    bucket = "modelport_gateway_request_duration_seconds_bucket"
    assert found[(bucket, (("deployment", "fraud"), ("le", "0.3"), ("variant", "a")))] == 2
    assert found[(bucket, (("deployment", "fraud"), ("le", "+Inf"), ("variant", "a")))] == 3
    assert found[("modelport_gateway_request_duration_seconds_count", pair)] == 3
    assert found[("modelport_gateway_in_flight_requests", ())] == 4
    shadow = (("deployment", "fraud"), ("variant", "s"))
    assert found[("modelport_gateway_shadow_requests_total", shadow)] == 9
    assert found[("modelport_gateway_shadow_failures_total", shadow)] == 2
    deployment = (("deployment", "fraud"),)
    assert found[("modelport_gateway_shadows_skipped_total", deployment)] == 1
    assert found[("modelport_gateway_cache_hits_total", deployment)] == 6
    assert found[("modelport_gateway_cache_misses_total", deployment)] == 3
    tally.observe(0.001)  # more since: only what grew is added
    counts["now"] = GatewayCounts(latency=[("fraud", "a", tally.totals())], in_flight=0)
    found = render(exposition)
    assert found[("modelport_gateway_request_duration_seconds_count", pair)] == 4
    assert found[("modelport_gateway_in_flight_requests", ())] == 0
    assert found[("modelport_gateway_cache_hits_total", deployment)] == 6
