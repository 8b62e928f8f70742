"""A Grafana dashboard over modelport's metrics (pure; the JSON model, schema version 39).

Two template variables: ``datasource`` (any Prometheus data source; every panel and query
names it as ``${datasource}``, so the file imports into any Grafana) and ``deployment`` (the
deployments the gateway counted, several at once or all). Panels, two to a row: requests per
second by variant, the 5xx share, latency p50/p95/p99 (``histogram_quantile`` over the
gateway's histogram), requests in flight (gateway and model servers), batch queue rows, the
response cache's hit ratio, drift scores against their thresholds, and each process's CPU and
resident memory. Rates use Grafana's ``$__rate_interval``.
"""

from __future__ import annotations

from typing import Any, Final

from modelport.monitoring._promql import (
    BATCH_QUEUE_ROWS,
    CACHE_HITS,
    CACHE_MISSES,
    DRIFT_SCORE,
    DRIFT_THRESHOLD,
    GATEWAY_IN_FLIGHT,
    INFERENCE_IN_FLIGHT,
    LATENCY,
    PROCESS_CPU,
    PROCESS_MEMORY,
    REQUESTS,
)

__all__ = ["SCHEMA_VERSION", "grafana_dashboard"]

SCHEMA_VERSION: Final = 39
"""The dashboard JSON model's version (Grafana 10.4 and later read it)."""

_SOURCE: Final = {"type": "prometheus", "uid": "${datasource}"}
_CHOSEN: Final = 'deployment=~"$deployment"'
_RATE: Final = "[$__rate_interval]"
_WIDTH: Final = 12
_HEIGHT: Final = 8


def _rate(metric: str, *matchers: str) -> str:
    return f"rate({metric}{{{','.join(matchers)}}}{_RATE})"


def _panels() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """``(title, unit, [(expression, legend), ...])`` of every panel, in order."""
    requests = _rate(REQUESTS, _CHOSEN)
    errors = _rate(REQUESTS, _CHOSEN, 'code=~"5.."')
    buckets = _rate(f"{LATENCY}_bucket", _CHOSEN)
    hits, misses = _rate(CACHE_HITS, _CHOSEN), _rate(CACHE_MISSES, _CHOSEN)
    by_variant = "sum by (deployment, variant)"
    return [
        (
            "Requests per second by variant",
            "reqps",
            [(f"{by_variant} ({requests})", "{{deployment}} {{variant}}")],
        ),
        (
            "Server errors (5xx share)",
            "percentunit",
            [
                (
                    f"{by_variant} ({errors}) / {by_variant} ({requests})",
                    "{{deployment}} {{variant}}",
                )
            ],
        ),
        (
            "Latency p50 / p95 / p99",
            "s",
            [
                (
                    f"histogram_quantile({q}, sum by (deployment, le) ({buckets}))",
                    f"{{{{deployment}}}} p{round(q * 100)}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
        ),
        (
            "Requests in flight",
            "short",
            [
                (f"sum by (instance) ({GATEWAY_IN_FLIGHT})", "gateway {{instance}}"),
                (f"sum by (model, version) ({INFERENCE_IN_FLIGHT})", "{{model}}@{{version}}"),
            ],
        ),
        (
            "Batch queue rows",
            "short",
            [(f"sum by (model, version) ({BATCH_QUEUE_ROWS})", "{{model}}@{{version}}")],
        ),
        (
            "Response cache hit ratio",
            "percentunit",
            [
                (
                    f"sum by (deployment) ({hits}) / (sum by (deployment) ({hits}) + "
                    f"sum by (deployment) ({misses}))",
                    "{{deployment}}",
                )
            ],
        ),
        (
            "Drift scores (dashed: thresholds)",
            "short",
            [
                (
                    f"max by (deployment, variant, feature, method) ({DRIFT_SCORE}{{{_CHOSEN}}})",
                    "{{variant}} {{feature}} ({{method}})",
                ),
                (
                    f"max by (deployment, variant, feature, method) "
                    f"({DRIFT_THRESHOLD}{{{_CHOSEN}}})",
                    "threshold {{variant}} {{feature}}",
                ),
            ],
        ),
        (
            "Process CPU (cores)",
            "short",
            [(f"sum by (instance, worker) ({_rate(PROCESS_CPU)})", "{{instance}} #{{worker}}")],
        ),
        (
            "Process resident memory",
            "bytes",
            [(f"sum by (instance, worker) ({PROCESS_MEMORY})", "{{instance}} #{{worker}}")],
        ),
    ]


def _panel(number: int, title: str, unit: str, queries: list[tuple[str, str]]) -> dict[str, Any]:
    overrides = []
    if title.startswith("Drift"):
        overrides.append(
            {
                "matcher": {"id": "byRegexp", "options": "^threshold .*"},
                "properties": [
                    {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}
                ],
            }
        )
    return {
        "id": number + 1,
        "type": "timeseries",
        "title": title,
        "datasource": dict(_SOURCE),
        "gridPos": {
            "h": _HEIGHT,
            "w": _WIDTH,
            "x": (number % 2) * _WIDTH,
            "y": (number // 2) * _HEIGHT,
        },
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": overrides},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": dict(_SOURCE),
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for index, (expr, legend) in enumerate(queries)
        ],
    }


def _variables(deployment: str | None) -> list[dict[str, Any]]:
    query = f"label_values({REQUESTS}, deployment)"
    chosen = (
        {"selected": True, "text": deployment, "value": deployment}
        if deployment is not None
        else {"selected": True, "text": ["All"], "value": ["$__all"]}
    )
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "options": [],
        },
        {
            "name": "deployment",
            "label": "Deployment",
            "type": "query",
            "datasource": dict(_SOURCE),
            "query": {"query": query, "refId": "deployments"},
            "definition": query,
            "current": chosen,
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
            "refresh": 2,
            "sort": 1,
            "hide": 0,
            "options": [],
        },
    ]


def grafana_dashboard(deployment: str | None = None) -> dict[str, Any]:
    """The dashboard's JSON model.

    Args:
        deployment: The deployment shown when the dashboard opens; ``None``: all of them.
    """
    return {
        "uid": "modelport" if deployment is None else f"modelport-{deployment}"[:40],
        "title": "modelport" if deployment is None else f"modelport: {deployment}",
        "description": "Deployments served by modelport: traffic, errors, latency, drift.",
        "tags": ["modelport"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": _variables(deployment)},
        "panels": [
            _panel(number, title, unit, queries)
            for number, (title, unit, queries) in enumerate(_panels())
        ],
    }
