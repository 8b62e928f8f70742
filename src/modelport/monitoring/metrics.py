"""Prometheus metrics of the serving path, exposed as text at ``/metrics``.

The only module that imports ``prometheus_client``. With several worker processes the client's
multiprocess mode aggregates what every worker counted: :func:`enable_multiprocess` must run in
the parent *before* the workers start, and ``prometheus_client`` must not be imported before it
(this module imports it lazily for that reason).

Recording is on the hot path, where even ``prometheus_client``'s cheapest operations (and its
file-backed values in multiprocess mode) cost several microseconds a request. So a request only
adds to plain in-process tallies (about 0.5 µs); :meth:`ServingMetrics.flush` moves the tallies
into the Prometheus metrics, once a second from a background task and before every scrape.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "LATENCY_BUCKETS",
    "ServingMetrics",
    "enable_multiprocess",
    "remove_multiprocess_dir",
]

_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds; from 100 µs (a tiny ONNX model) to 10 s (a large model on a CPU)."""


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


@dataclass(slots=True)
class _Tally:
    """What one (model, version, outcome) did since the last flush."""

    requests: int = 0
    rows: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))


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
        self._tallies: dict[tuple[str, str, str], _Tally] = {}

    def observe(self, model: str, version: str, outcome: str, seconds: float, rows: int) -> None:
        """Count one request in the in-process tallies.

        Args:
            model: Model name.
            version: Served version.
            outcome: ``ok``, or the error kind of a failed request.
            seconds: Time from the decoded request to its outputs (or its error).
            rows: Rows inferred (0 for a failure).
        """
        key = (model, version, outcome)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally()
        tally.requests += 1
        tally.rows += rows
        tally.seconds += seconds
        # Prometheus buckets are "less than or equal"; the last slot is +Inf.
        tally.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def flush(self) -> None:
        """Move the tallies into the Prometheus metrics."""
        tallies, self._tallies = self._tallies, {}
        for (model, version, outcome), tally in tallies.items():
            self._requests.labels(model, version, outcome).inc(tally.requests)
            if tally.rows:
                self._rows.labels(model, version).inc(tally.rows)
            histogram = self._latency.labels(model, version)
            # prometheus_client's Histogram has no bulk observe; its value slots are the
            # documented storage of a histogram child (_sum and one per bucket, +Inf last).
            histogram._sum.inc(tally.seconds)
            for slot, count in zip(histogram._buckets, tally.buckets, strict=True):
                if count:
                    slot.inc(count)

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
