from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from modelport.monitoring import ServingMetrics


def samples(metrics: ServingMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_counts_successes_failures_rows_and_latency() -> None:
    metrics = ServingMetrics(multiprocess=False)
    metrics.observe("iris", "1", "ok", 0.002, rows=3)
    metrics.observe("iris", "1", "ok", 0.004, rows=2)
    metrics.observe("iris", "1", "invalid_input", 0.001, rows=0)
    found = samples(metrics)
    ok = (("model", "iris"), ("outcome", "ok"), ("version", "1"))
    bad = (("model", "iris"), ("outcome", "invalid_input"), ("version", "1"))
    assert found[("modelport_inference_requests_total", ok)] == 2
    assert found[("modelport_inference_requests_total", bad)] == 1
    assert found[("modelport_inference_rows_total", (("model", "iris"), ("version", "1")))] == 5
    labels = (("model", "iris"), ("version", "1"))
    assert found[("modelport_inference_duration_seconds_count", labels)] == 3
    assert abs(found[("modelport_inference_duration_seconds_sum", labels)] - 0.007) < 1e-9
    le = (("le", "0.0025"), ("model", "iris"), ("version", "1"))
    assert found[("modelport_inference_duration_seconds_bucket", le)] == 2


def test_tallies_reach_prometheus_only_when_flushed() -> None:
    metrics = ServingMetrics(multiprocess=False)
    metrics.observe("m", "1", "ok", 20.0, rows=1)  # beyond the last bucket: +Inf only
    from prometheus_client import generate_latest

    assert b'outcome="ok"' not in generate_latest(metrics._registry)
    found = samples(metrics)  # render flushes first
    inf = (("le", "+Inf"), ("model", "m"), ("version", "1"))
    ten = (("le", "10.0"), ("model", "m"), ("version", "1"))
    assert found[("modelport_inference_duration_seconds_bucket", inf)] == 1
    assert found[("modelport_inference_duration_seconds_bucket", ten)] == 0
