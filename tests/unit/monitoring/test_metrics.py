from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from modelport.monitoring import ServingMetrics, VersionTally


def samples(metrics: ServingMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def _following(tallies: dict[tuple[str, str], VersionTally]) -> ServingMetrics:
    metrics = ServingMetrics(multiprocess=False)
    metrics.follow(lambda: [(name, version, t) for (name, version), t in tallies.items()])
    return metrics


def test_counts_successes_failures_rows_and_latency() -> None:
    iris = VersionTally()
    metrics = _following({("iris", "1"): iris})
    iris.success(3, 0.002, 1.0, 1)
    iris.success(2, 0.004, 2.0, 1)
    iris.failure("invalid_input", 0.001, 3.0)
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
    tally = VersionTally()
    metrics = _following({("m", "1"): tally})
    tally.success(1, 20.0, 1.0, 1)  # beyond the last bucket: +Inf only
    from prometheus_client import generate_latest

    assert b'outcome="ok"' not in generate_latest(metrics._registry)
    found = samples(metrics)  # render flushes first
    inf = (("le", "+Inf"), ("model", "m"), ("version", "1"))
    ten = (("le", "10.0"), ("model", "m"), ("version", "1"))
    assert found[("modelport_inference_duration_seconds_bucket", inf)] == 1
    assert found[("modelport_inference_duration_seconds_bucket", ten)] == 0


def test_each_flush_adds_only_what_changed_since_the_last() -> None:
    tally = VersionTally()
    tallies = {("m", "1"): tally}
    metrics = _following(tallies)
    tally.success(2, 0.002, 1.0, 1)
    tally.failure("timeout", 0.3, 2.0)
    metrics.flush()
    metrics.flush()  # nothing new: nothing added
    tally.success(1, 0.002, 3.0, 1)
    tally.failure("timeout", 0.3, 4.0)
    tallies[("n", "7")] = VersionTally()  # a version loaded later is followed too
    tallies[("n", "7")].success(4, 0.0001, 5.0, 1)
    found = samples(metrics)
    ok = (("model", "m"), ("outcome", "ok"), ("version", "1"))
    timeout = (("model", "m"), ("outcome", "timeout"), ("version", "1"))
    assert found[("modelport_inference_requests_total", ok)] == 2
    assert found[("modelport_inference_requests_total", timeout)] == 2
    assert found[("modelport_inference_rows_total", (("model", "m"), ("version", "1")))] == 3
    labels = (("model", "m"), ("version", "1"))
    assert found[("modelport_inference_duration_seconds_count", labels)] == 4
    assert abs(found[("modelport_inference_duration_seconds_sum", labels)] - 0.604) < 1e-9
    n_rows = (("model", "n"), ("version", "7"))
    assert found[("modelport_inference_rows_total", n_rows)] == 4


def test_without_a_source_nothing_is_counted() -> None:
    metrics = ServingMetrics(multiprocess=False)
    metrics.flush()
    assert "modelport_inference_requests_total{" not in metrics.render()[0].decode()
