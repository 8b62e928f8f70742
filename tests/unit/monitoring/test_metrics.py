from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from modelport.monitoring import Exposition, HostedVersion, ServingMetrics, VersionTally


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

    assert b'outcome="ok"' not in generate_latest(metrics.exposition.registry)
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


def test_the_latency_histogram_has_the_slo_thresholds_as_edges() -> None:
    exposition = Exposition(slo_latency_seconds=[0.003, 0.3], multiprocess=False)
    metrics = ServingMetrics(exposition)
    tally = VersionTally(metrics.latency_buckets)
    metrics.follow(lambda: [("m", "1", tally)])
    for seconds in (0.0029, 0.003, 0.0031, 0.29, 0.31):
        tally.success(1, seconds, 1.0, 1)
    found = samples(metrics)
    bucket = "modelport_inference_duration_seconds_bucket"
    le = {dict(labels)["le"] for name, labels in found if name == bucket}
    assert {"0.003", "0.3", "0.0025", "10.0", "+Inf"} <= le
    assert found[(bucket, (("le", "0.003"), ("model", "m"), ("version", "1")))] == 2  # le
    assert found[(bucket, (("le", "0.3"), ("model", "m"), ("version", "1")))] == 4


def test_batch_sizes_queues_in_flight_and_load_times() -> None:
    metrics = ServingMetrics(multiprocess=False)
    tally = VersionTally()
    hosted = [HostedVersion("m", "1", load_seconds=0.75, queued_rows=12, in_flight=3)]
    metrics.follow(lambda: [("m", "1", tally)], lambda: hosted)
    for rows in (1, 3, 3, 64, 5000):  # a request with more rows than a batch runs alone
        tally.executed(1, rows)
    found = samples(metrics)
    labels = (("model", "m"), ("version", "1"))
    assert found[("modelport_batch_rows_count", labels)] == 5
    assert found[("modelport_batch_rows_sum", labels)] == 5071
    assert found[("modelport_batch_rows_bucket", (("le", "4.0"), *labels))] == 3
    assert found[("modelport_batch_rows_bucket", (("le", "64.0"), *labels))] == 4
    assert found[("modelport_batch_rows_bucket", (("le", "4096.0"), *labels))] == 4
    assert found[("modelport_batch_rows_bucket", (("le", "+Inf"), *labels))] == 5
    assert found[("modelport_batch_queue_rows", labels)] == 12
    assert found[("modelport_inference_in_flight_requests", labels)] == 3
    assert found[("modelport_model_load_duration_seconds", labels)] == 0.75
    hosted.clear()  # unloaded: nothing waits for it any more, its load time stays
    found = samples(metrics)
    assert found[("modelport_batch_queue_rows", labels)] == 0
    assert found[("modelport_inference_in_flight_requests", labels)] == 0
    assert found[("modelport_model_load_duration_seconds", labels)] == 0.75
