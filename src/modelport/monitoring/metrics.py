"""Prometheus metrics of the serving path, exposed as text at ``/metrics``.

The only module that imports ``prometheus_client``. With several worker processes the client's
multiprocess mode aggregates what every worker counted: :func:`enable_multiprocess` must run in
the parent *before* the workers start, and ``prometheus_client`` must not be imported before it
(this module imports it lazily for that reason).

Recording is on the hot path, so the labelled children are cached per model version: one
request costs a counter increment and a histogram observation (about 2 µs).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

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
        self._ok: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    def observe_success(self, model: str, version: str, seconds: float, rows: int) -> None:
        """Count one successful request."""
        children = self._ok.get((model, version))
        if children is None:
            children = (
                self._requests.labels(model, version, "ok"),
                self._latency.labels(model, version),
                self._rows.labels(model, version),
            )
            self._ok[(model, version)] = children
        requests, latency, row_count = children
        requests.inc()
        latency.observe(seconds)
        row_count.inc(rows)

    def observe_failure(self, model: str, version: str, seconds: float, outcome: str) -> None:
        """Count one failed request; ``outcome`` is the error kind."""
        self._requests.labels(model, version, outcome).inc()
        self._latency.labels(model, version).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """Return the Prometheus text exposition and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if not self.multiprocess:
            return generate_latest(self._registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in the client
        return generate_latest(registry), CONTENT_TYPE_LATEST
