"""Monitoring: request tallies, every process's Prometheus metrics, the prediction log."""

from __future__ import annotations

from modelport.monitoring.control_metrics import ControlPlaneMetrics, DriftScore, JobTotals
from modelport.monitoring.exposition import (
    Exposition,
    enable_multiprocess,
    remove_multiprocess_dir,
    worker_exited,
)
from modelport.monitoring.gateway_metrics import GatewayCounts, GatewayMetrics
from modelport.monitoring.metrics import HostedVersion, ServingMetrics, TallySource
from modelport.monitoring.tally import (
    LATENCY_BUCKETS,
    LatencyTally,
    LatencyTotals,
    TallyTotals,
    VersionTally,
    latency_buckets,
)

__all__ = [
    "LATENCY_BUCKETS",
    "ControlPlaneMetrics",
    "DriftScore",
    "Exposition",
    "GatewayCounts",
    "GatewayMetrics",
    "HostedVersion",
    "JobTotals",
    "LatencyTally",
    "LatencyTotals",
    "ServingMetrics",
    "TallySource",
    "TallyTotals",
    "VersionTally",
    "enable_multiprocess",
    "latency_buckets",
    "remove_multiprocess_dir",
    "worker_exited",
]
