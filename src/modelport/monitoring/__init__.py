"""Monitoring: Prometheus metrics of the serving path (drift and alerts come later)."""

from __future__ import annotations

from modelport.monitoring.metrics import (
    ServingMetrics,
    enable_multiprocess,
    remove_multiprocess_dir,
)

__all__ = ["ServingMetrics", "enable_multiprocess", "remove_multiprocess_dir"]
