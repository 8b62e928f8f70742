"""PromQL text over modelport's metric names: selectors, numbers and durations (pure).

The metric names are the samples ``/metrics`` shows (counters with their ``_total``, histograms
with ``_bucket`` and ``_count``), as the families in ``gateway_metrics.py``, ``metrics.py``,
``control_metrics.py`` and ``exposition.py`` create them; ``tests/e2e/test_monitor_cli.py``
checks every name an export uses against a scrape of a running ``modelport up``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

__all__ = [
    "BATCH_QUEUE_ROWS",
    "CACHE_HITS",
    "CACHE_MISSES",
    "DRIFT_DETECTED",
    "DRIFT_SCORE",
    "DRIFT_THRESHOLD",
    "GATEWAY_IN_FLIGHT",
    "INFERENCE_IN_FLIGHT",
    "LATENCY",
    "PROCESS_CPU",
    "PROCESS_MEMORY",
    "REQUESTS",
    "duration",
    "matcher_regex",
    "number",
    "selector",
]

REQUESTS: Final = "modelport_gateway_requests_total"
"""Requests per ``deployment``, ``variant``, ``protocol`` and ``code`` (the HTTP status)."""
LATENCY: Final = "modelport_gateway_request_duration_seconds"
"""The gateway's latency histogram per ``deployment`` and ``variant`` (add ``_bucket``...)."""
GATEWAY_IN_FLIGHT: Final = "modelport_gateway_in_flight_requests"
INFERENCE_IN_FLIGHT: Final = "modelport_inference_in_flight_requests"
BATCH_QUEUE_ROWS: Final = "modelport_batch_queue_rows"
"""Rows waiting in a version's batch queue, per ``model`` and ``version``."""
CACHE_HITS: Final = "modelport_gateway_cache_hits_total"
CACHE_MISSES: Final = "modelport_gateway_cache_misses_total"
DRIFT_SCORE: Final = "modelport_drift_score"
"""Per ``deployment``, ``variant``, ``window`` (seconds), ``feature`` and ``method``."""
DRIFT_THRESHOLD: Final = "modelport_drift_threshold"
DRIFT_DETECTED: Final = "modelport_drift_detected"
PROCESS_CPU: Final = "modelport_process_cpu_seconds_total"
PROCESS_MEMORY: Final = "modelport_process_resident_memory_bytes"

_UNITS: Final = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def _quoted(value: str) -> str:
    """A PromQL string literal (double quotes; Go's escapes for backslash and quote)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def selector(metric: str, *matchers: tuple[str, str, str]) -> str:
    """``metric{name op "value", ...}``; each matcher is ``(label, op, value)``."""
    if not matchers:
        return metric
    inner = ",".join(f"{label}{op}{_quoted(value)}" for label, op, value in matchers)
    return f"{metric}{{{inner}}}"


def matcher_regex(values: Iterable[str]) -> str:
    """A regular expression matching exactly ``values`` (RE2 metacharacters escaped)."""
    special = set("\\.+*?()|[]{}^$")
    return "|".join(
        "".join(f"\\{c}" if c in special else c for c in value) for value in sorted(set(values))
    )


def number(value: float) -> str:
    """A number as PromQL reads it, without float noise (``1 - 0.99`` is ``0.01``)."""
    text = f"{round(value, 12):.12g}"
    return text if "e" not in text else repr(float(text))


def duration(seconds: float) -> str:
    """A Prometheus duration (``90`` -> ``1m30s``, ``0.5`` -> ``500ms``).

    Raises:
        ValueError: ``seconds`` is negative, not finite, or finer than a millisecond.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration is a non-negative number of seconds, got {seconds}")
    millis = round(seconds * 1000)
    if abs(millis - seconds * 1000) > 1e-6:
        raise ValueError(f"{seconds} s is finer than Prometheus' millisecond durations")
    if millis == 0:
        return "0s"
    whole, rest = divmod(millis, 1000)
    parts = []
    for unit, size in _UNITS:
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if rest:
        parts.append(f"{rest}ms")
    return "".join(parts)
