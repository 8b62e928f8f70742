"""Monitoring: per-version request tallies and their Prometheus metrics (drift and alerts later)."""

from __future__ import annotations

from modelport.monitoring.metrics import (
    ServingMetrics,
    TallySource,
    enable_multiprocess,
    remove_multiprocess_dir,
    render_gateway_metrics,
)
from modelport.monitoring.tally import LATENCY_BUCKETS, TallyTotals, VersionTally

__all__ = [
    "LATENCY_BUCKETS",
    "ServingMetrics",
    "TallySource",
    "TallyTotals",
    "VersionTally",
    "enable_multiprocess",
    "remove_multiprocess_dir",
    "render_gateway_metrics",
]
