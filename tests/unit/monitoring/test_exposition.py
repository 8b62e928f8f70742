"""One process's exposition: bucket edges, flushes, process metrics, several workers' sums."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelport.monitoring import LATENCY_BUCKETS, Exposition, latency_buckets, worker_exited
from modelport.monitoring.exposition import CounterFlush, GaugeFlush, HistogramFlush

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(exposition: Exposition) -> Samples:
    text, content_type = exposition.render()
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_slo_thresholds_join_the_default_edges_sorted_once() -> None:
    assert latency_buckets() == LATENCY_BUCKETS
    edges = latency_buckets([0.3, 0.003, 0.25])  # 0.25 is a default edge already
    assert edges == tuple(sorted({*LATENCY_BUCKETS, 0.3, 0.003}))
    assert Exposition(slo_latency_seconds=[0.3], multiprocess=False).latency_buckets == (
        latency_buckets([0.3])
    )


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_an_edge_that_is_no_positive_number_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="positive number"):
        latency_buckets([bad])


def test_the_process_measures_itself_under_its_worker_index() -> None:
    cpu = iter([1.5, 2.0, 1.0])  # a clock going back is a new baseline, never a decrease
    exposition = Exposition(worker=3, multiprocess=False, cpu_seconds=lambda: next(cpu))
    assert samples(exposition)[("modelport_process_cpu_seconds_total", (("worker", "3"),))] == 1.5
    assert samples(exposition)[("modelport_process_cpu_seconds_total", (("worker", "3"),))] == 2.0
    found = samples(exposition)
    assert found[("modelport_process_cpu_seconds_total", (("worker", "3"),))] == 2.0
    if Path("/proc/self/statm").exists():
        memory = found[("modelport_process_resident_memory_bytes", (("worker", "3"),))]
        assert memory > 1_000_000


def test_counters_end_total_and_no_created_series_is_rendered() -> None:
    exposition = Exposition(multiprocess=False)
    CounterFlush(exposition.counter("modelport_things", "Things", ["kind"])).update(("a",), 2)
    histogram = exposition.histogram("modelport_wait_seconds", "Waits", ["kind"])
    HistogramFlush(histogram, exposition.latency_buckets).update(
        ("a",), 0.5, [0] * len(exposition.latency_buckets) + [1]
    )
    text = exposition.render()[0].decode()
    assert "_created" not in text
    assert '# TYPE modelport_things_total counter\nmodelport_things_total{kind="a"} 2.0' in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["modelport_things"].type == "counter"
    assert families["modelport_wait_seconds"].type == "histogram"


def test_each_flush_adds_only_what_grew_and_calls_every_part() -> None:
    exposition = Exposition(multiprocess=False)
    flushes = CounterFlush(exposition.counter("modelport_n", "N", ["k"]))
    totals = {"x": 0.0}
    exposition.on_flush(lambda: flushes.update(("x",), totals["x"]))
    exposition.flush()
    assert ("modelport_n_total", (("k", "x"),)) not in samples(exposition)  # nothing yet
    totals["x"] = 5
    exposition.flush()
    exposition.flush()
    assert samples(exposition)[("modelport_n_total", (("k", "x"),))] == 5
    totals["x"] = 3  # the source restarted: a new baseline
    exposition.flush()
    totals["x"] = 4
    assert samples(exposition)[("modelport_n_total", (("k", "x"),))] == 6


def test_a_gauge_is_written_only_when_its_value_changes() -> None:
    exposition = Exposition(multiprocess=False)
    gauge = exposition.gauge("modelport_depth_rows", "Depth", ["q"])
    flush = GaugeFlush(gauge)
    flush.update(("a",), 2)
    gauge.labels("a").set(7)  # someone else's write: an unchanged value is not written again
    flush.update(("a",), 2)
    assert samples(exposition)[("modelport_depth_rows", (("q", "a"),))] == 7
    flush.update(("a",), 1)
    assert samples(exposition)[("modelport_depth_rows", (("q", "a"),))] == 1
    assert flush.known() == {("a",)}


def test_a_histogram_takes_bucket_counts_in_bulk() -> None:
    exposition = Exposition(slo_latency_seconds=[0.3], multiprocess=False)
    edges = exposition.latency_buckets
    flush = HistogramFlush(exposition.histogram("modelport_t_seconds", "T", ["v"]), edges)
    counts = [0] * (len(edges) + 1)
    counts[edges.index(0.3)] = 2  # two durations in (0.25, 0.3]
    counts[-1] = 1  # one above every edge
    flush.update(("1",), 20.6, counts)
    flush.update(("1",), 20.6, counts)  # the same totals again: nothing added
    found = samples(exposition)
    assert found[("modelport_t_seconds_bucket", (("le", "0.25"), ("v", "1")))] == 0
    assert found[("modelport_t_seconds_bucket", (("le", "0.3"), ("v", "1")))] == 2
    assert found[("modelport_t_seconds_bucket", (("le", "+Inf"), ("v", "1")))] == 3
    assert found[("modelport_t_seconds_count", (("v", "1"),))] == 3
    assert found[("modelport_t_seconds_sum", (("v", "1"),))] == pytest.approx(20.6)
    with pytest.raises(ValueError, match="bucket counts"):
        flush.update(("1",), 1.0, [1, 2])


def test_totals_without_labels_follow_their_source() -> None:
    exposition = Exposition(multiprocess=False)
    totals = {"modelport_log_records_total": 4.0, "modelport_log_dropped_total": 0.0}
    exposition.follow_totals(
        {"modelport_log_records_total": "Records", "modelport_log_dropped_total": "Dropped"},
        lambda: totals,
    )
    found = samples(exposition)
    assert found[("modelport_log_records_total", ())] == 4
    assert found[("modelport_log_dropped_total", ())] == 0


def test_a_flush_that_fails_is_logged_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio

    exposition = Exposition(multiprocess=False)
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("a bug")

    exposition.on_flush(broken)

    async def main() -> None:
        task = asyncio.create_task(exposition.flush_every(0.001))
        while len(calls) < 3:
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    failures = [r for r in caplog.records if r.getMessage() == "the metrics could not be flushed"]
    assert len(failures) == 1  # once a minute at most


# -- several workers ------------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys
    from modelport.monitoring import Exposition, GatewayCounts, GatewayMetrics, LatencyTally

    worker, requests, in_flight = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    exposition = Exposition(slo_latency_seconds=[0.3], worker=worker)
    assert exposition.multiprocess
    tally = LatencyTally(exposition.latency_buckets)
    for _ in range(requests):
        tally.observe(0.28)
    counts = GatewayCounts(
        requests={("fraud", "a", "rest", "200", True): requests},
        latency=[("fraud", "a", tally.totals())],
        in_flight=in_flight,
    )
    GatewayMetrics(exposition, lambda: counts)
    exposition.flush()
    if len(sys.argv) > 4:
        sys.stdout.write(exposition.render()[0].decode())
    """
)


def _worker(directory: Path, *args: int, render: bool = False) -> tuple[int, str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    argv = [sys.executable, "-c", _WORKER, *map(str, args), *(["render"] if render else [])]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    return process.pid, out


def test_several_workers_are_added_up_and_a_dead_ones_gauges_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = _worker(tmp_path, 0, 7, 2)
    second, _ = _worker(tmp_path, 1, 5, 3)
    # A third process renders: every worker's files, added up.
    _, text = _worker(tmp_path, 2, 0, 0, render=True)
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    labels = (("code", "200"), ("deployment", "fraud"), ("protocol", "rest"), ("variant", "a"))
    assert found[("modelport_gateway_requests_total", labels)] == 12
    pair = (("deployment", "fraud"), ("variant", "a"))
    assert found[("modelport_gateway_keyed_requests_total", pair)] == 12
    le = (("deployment", "fraud"), ("le", "0.3"), ("variant", "a"))
    assert found[("modelport_gateway_request_duration_seconds_bucket", le)] == 12
    assert found[("modelport_gateway_in_flight_requests", ())] == 5
    for worker in ("0", "1", "2"):
        assert ("modelport_process_cpu_seconds_total", (("worker", worker),)) in found
    # The supervisor reaps the first worker: its gauges go, its counts stay.
    worker_exited(first)  # not in multiprocess mode here: nothing to do
    assert len(list(tmp_path.glob(f"gauge_livesum_{first}.db"))) == 1
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    worker_exited(first)
    assert not list(tmp_path.glob(f"gauge_livesum_{first}.db"))
    _, text = _worker(tmp_path, 2, 0, 0, render=True)
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert found[("modelport_gateway_in_flight_requests", ())] == 3
    assert found[("modelport_gateway_requests_total", labels)] == 12
    assert second != first
