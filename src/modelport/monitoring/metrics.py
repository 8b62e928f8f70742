"""Prometheus metrics of the serving path, exposed as text at ``/metrics``.

The only module that imports ``prometheus_client``. With several worker processes the client's
multiprocess mode aggregates what every worker counted: :func:`enable_multiprocess` must run in
the parent *before* the workers start, and ``prometheus_client`` must not be imported before it
(this module imports it lazily for that reason).

Recording is on the hot path, where even ``prometheus_client``'s cheapest operations (and its
file-backed values in multiprocess mode) cost several microseconds a request. So requests are
counted only in the served versions' :class:`~modelport.monitoring.tally.VersionTally` records,
which the statistics extension reads too, and :meth:`ServingMetrics.flush` moves what changed
since its last flush into the Prometheus metrics: once a second from a background task, and
before every scrape.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from modelport.monitoring.tally import LATENCY_BUCKETS, TallyTotals, VersionTally

__all__ = [
    "LATENCY_BUCKETS",
    "ServingMetrics",
    "TallySource",
    "enable_multiprocess",
    "remove_multiprocess_dir",
]

_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess() -> Path:
    """Switch ``prometheus_client`` to multiprocess mode with a fresh directory; return it.

    Call in the parent process before forking workers and before anything imports
    ``prometheus_client``. The directory is removed when the parent exits normally.
    """
    directory = Path(tempfile.mkdtemp(prefix="modelport-metrics-"))
    os.environ[_ENV] = str(directory)
    return directory


def remove_multiprocess_dir(directory: Path) -> None:
    """Delete the directory made by :func:`enable_multiprocess`."""
    shutil.rmtree(directory, ignore_errors=True)


TallySource = Callable[[], Iterable[tuple[str, str, VersionTally]]]
"""Returns ``(model, version, tally)`` for every served version that has one."""

_NOTHING = TallyTotals()


class ServingMetrics:
    """Request counts, latency and rows per model version, plus loaded-model readiness.

    Args:
        multiprocess: Aggregate the workers' metrics when rendering (see
            :func:`enable_multiprocess`); defaults to whether that mode is on.
    """

    def __init__(self, multiprocess: bool | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = bool(os.environ.get(_ENV)) if multiprocess is None else multiprocess
        self._registry = CollectorRegistry()
        self._requests = Counter(
            "modelport_inference_requests",
            "Inference requests by model version and outcome (ok, or the error kind).",
            ["model", "version", "outcome"],
            registry=self._registry,
        )
        self._rows = Counter(
            "modelport_inference_rows",
            "Rows (batch dimension) inferred successfully.",
            ["model", "version"],
            registry=self._registry,
        )
        self._latency = Histogram(
            "modelport_inference_duration_seconds",
            "Time from a decoded request to its outputs, queueing included.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        self._source: TallySource | None = None
        self._flushed: dict[tuple[str, str], TallyTotals] = {}

    def follow(self, source: TallySource) -> None:
        """Read the request counts from ``source``'s tallies at every flush."""
        self._source = source

    def flush(self) -> None:
        """Move what the tallies counted since the last flush into the Prometheus metrics."""
        if self._source is None:
            return
        for model, version, tally in self._source():
            now = tally.totals()
            before = self._flushed.get((model, version), _NOTHING)
            if now == before:
                continue
            self._flushed[(model, version)] = now
            self._add(model, version, "ok", now.success_count - before.success_count)
            for kind, count in now.failures.items():
                self._add(model, version, kind, count - before.failures.get(kind, 0))
            rows = now.inference_count - before.inference_count
            if rows:
                self._rows.labels(model, version).inc(rows)
            histogram = self._latency.labels(model, version)
            # prometheus_client's Histogram has no bulk observe; its value slots are the
            # documented storage of a histogram child (_sum and one per bucket, +Inf last), and
            # like the tally's slots each counts only the observations of its own bucket.
            seconds = now.success_seconds + now.fail_seconds
            histogram._sum.inc(seconds - before.success_seconds - before.fail_seconds)
            for slot, count, earlier in zip(
                histogram._buckets, now.buckets, before.buckets, strict=True
            ):
                if count != earlier:
                    slot.inc(count - earlier)

    def _add(self, model: str, version: str, outcome: str, requests: int) -> None:
        if requests:
            self._requests.labels(model, version, outcome).inc(requests)

    async def flush_every(self, seconds: float = 1.0) -> None:
        """Flush every ``seconds`` until cancelled (run as a task in each worker)."""
        try:
            while True:
                await asyncio.sleep(seconds)
                self.flush()
        finally:
            self.flush()

    def render(self) -> tuple[bytes, str]:
        """Return the Prometheus text exposition and its content type (after a flush)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        self.flush()
        if not self.multiprocess:
            return generate_latest(self._registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in the client
        return generate_latest(registry), CONTENT_TYPE_LATEST


def render_gateway_metrics(
    requests: Mapping[tuple[str, str, bool], int],
    counters: Mapping[str, tuple[str, float]],
) -> bytes:
    """The gateway's counters in Prometheus text (this process's, since it started).

    Args:
        requests: ``(deployment, variant, keyed)`` -> requests answered.
        counters: Further counters by metric name (``modelport_gateway_shadow_failures_total``
            ...): each one's help text and value.
    """
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily

    class _Collector:
        def collect(self) -> Iterator[CounterMetricFamily]:
            family = CounterMetricFamily(
                "modelport_gateway_requests",
                "Requests answered by the gateway, by deployment, variant and whether a unit key "
                "placed them",
                labels=["deployment", "variant", "keyed"],
            )
            for (deployment, variant, keyed), count in sorted(requests.items()):
                family.add_metric([deployment, variant, "true" if keyed else "false"], count)
            yield family
            for name, (text, value) in sorted(counters.items()):
                yield CounterMetricFamily(name.removesuffix("_total"), text, value=value)

    registry = CollectorRegistry()
    registry.register(_Collector())
    return bytes(generate_latest(registry))
