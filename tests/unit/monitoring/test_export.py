"""``modelport monitor export``'s renderer: exact PromQL for worked rules, parsed by a real parser.

Every expression and every dashboard query is parsed with ``promql-parser`` (the Rust
``promql-parser`` crate, which follows Prometheus' grammar), and the metric names they use are
compared with the names modelport's metric families create; that those names are what a
running ``modelport up`` shows is checked in ``tests/e2e/test_monitor_cli.py``.
"""

from __future__ import annotations

import json
from typing import Any

import promql_parser
import pytest
import yaml

from modelport.core.alert import AlertRule, parse_alert_rule
from modelport.core.errors import InvalidInput
from modelport.monitoring import latency_buckets
from modelport.monitoring._promql import duration, matcher_regex, number
from modelport.monitoring.export import (
    ExportContext,
    expression,
    grafana_dashboard,
    prometheus_rule,
)

CONTEXT = ExportContext(latency_buckets([0.3]), 4096, {"fraud": ["fraud", "fraud.v2"]})

LATENCY_RULE = """\
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {name: fraud-latency}
spec:
  deployment: fraud
  severity: critical
  for: 2m
  condition:
    latencySlo:
      threshold: 0.3
      objective: 0.99
      windows:
        - {long: 1h, short: 5m, burnRate: 14.4}
        - {long: 6h, short: 30m, burnRate: 6}
  labels: {team: risk}
  annotations: {runbook: https://wiki.example.com/fraud-latency}
"""


def rule(condition: dict[str, Any], name: str = "fraud-x", **spec: Any) -> AlertRule:
    return parse_alert_rule(
        {
            "apiVersion": "modelport.io/v1",
            "kind": "AlertRule",
            "metadata": {"name": name},
            "spec": {"deployment": spec.pop("deployment", "fraud"), "condition": condition, **spec},
        }
    )


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


REQ = "modelport_gateway_requests_total"
BUCKET = "modelport_gateway_request_duration_seconds_bucket"
COUNT = "modelport_gateway_request_duration_seconds_count"


def test_the_worked_latency_rule_is_multi_window_burn_rates() -> None:
    rendered = prometheus_rule([parse_alert_rule(yaml.safe_load(LATENCY_RULE))], CONTEXT)
    ((group,),) = [rendered["spec"]["groups"]]
    assert group["name"] == "modelport-fraud"
    (entry,) = group["rules"]

    def burn(window: str, factor: str) -> str:
        return (
            f'(1 - sum by (deployment) (rate({BUCKET}{{deployment="fraud",le="0.3"}}[{window}])) '
            f'/ sum by (deployment) (rate({COUNT}{{deployment="fraud"}}[{window}]))) '
            f"/ 0.01 > {factor}"
        )

    assert entry == {
        "alert": "fraud-latency",
        "expr": f"({burn('1h', '14.4')} and {burn('5m', '14.4')}) or "
        f"({burn('6h', '6')} and {burn('30m', '6')})",
        "for": "2m",
        "labels": {
            "team": "risk",
            "alertname": "fraud-latency",
            "deployment": "fraud",
            "severity": "critical",
        },
        "annotations": {
            "runbook": "https://wiki.example.com/fraud-latency",
            "summary": "fraud-latency: fraud answers slower than its latency objective allows",
        },
    }
    assert rendered["apiVersion"] == "monitoring.coreos.com/v1"
    assert rendered["kind"] == "PrometheusRule" and rendered["metadata"]["name"] == "modelport"
    assert metric_names(entry["expr"]) == {BUCKET, COUNT}


def test_each_condition_exactly() -> None:
    fraud = 'deployment="fraud"'
    per_deployment = f"sum by (deployment) (rate({REQ}{{{fraud}}}[5m]))"
    volume = f"sum by (deployment) (increase({REQ}{{{fraud}}}[5m]))"
    errors = f'sum by (deployment) (rate({REQ}{{{fraud},code=~"5.."}}[5m]))'
    assert expression(rule({"errorRate": {"above": 0.05}}), CONTEXT) == (
        f"{errors} / {per_deployment} > 0.05 and {volume} >= 100"
    )
    assert expression(rule({"driftScore": {"feature": "input[0]", "above": 0.2}}), CONTEXT) == (
        "max by (deployment, variant, feature) "
        '(modelport_drift_score{deployment="fraud",window="3600",feature="input[0]"}) > 0.2'
    )
    assert expression(rule({"driftScore": {"window": "1d"}}), CONTEXT) == (
        "max by (deployment, variant, feature) "
        '(modelport_drift_detected{deployment="fraud",window="86400"}) > 0'
    )
    by = "deployment, variant"
    assert expression(rule({"modelNotReady": {}}), CONTEXT) == (
        f'sum by ({by}) (rate({REQ}{{{fraud},code="503"}}[2m])) > 0 unless on ({by}) '
        f'sum by ({by}) (rate({REQ}{{{fraud},code=~"2.."}}[2m])) > 0'
    )
    assert expression(rule({"queueSaturation": {"above": 0.9}}), CONTEXT) == (
        'modelport_batch_queue_rows{model=~"fraud|fraud\\\\.v2"} / 4096 > 0.9'
    )
    history = f"({per_deployment})[2h54m:1m] offset 5m"  # 2 x 1 h / ln 2 = 173.1 min
    assert expression(rule({"trafficAnomaly": {"zScore": 3, "minRequests": 50}}), CONTEXT) == (
        f"abs((({per_deployment}) - avg_over_time({history})) / stddev_over_time({history})) "
        f"> 3 and on (deployment) {volume} >= 50"
    )
    p99 = expression(
        rule({"trafficAnomaly": {"signal": "latency_p99", "halfLife": "10m"}}), CONTEXT
    )
    assert p99.startswith(
        f"abs(((histogram_quantile(0.99, sum by (deployment, le) (rate({BUCKET}{{{fraud}}}[5m])))"
    )
    assert "[29m:1m] offset 5m" in p99  # 2 x 10 min / ln 2 = 28.9 min
    share = expression(rule({"trafficAnomaly": {"signal": "error_rate"}}), CONTEXT)
    assert share.startswith(f"abs((({errors} / {per_deployment}) - avg_over_time(")


def test_every_expression_parses_and_uses_only_modelport_metrics() -> None:
    rules = [
        parse_alert_rule(yaml.safe_load(LATENCY_RULE)),
        rule({"errorRate": {"above": 0.01, "window": "1h", "minRequests": 10}}, "a"),
        rule({"driftScore": {}}, "b"),
        rule({"driftScore": {"feature": 'odd "name" \\ here', "above": 1}}, "c"),
        rule({"modelNotReady": {}}, "d", severity="critical"),
        rule({"queueSaturation": {}}, "e"),
        *(
            rule({"trafficAnomaly": {"signal": s}}, f"f-{s.replace('_', '-')}")
            for s in ("request_rate", "latency_p99", "error_rate")
        ),
    ]
    rendered = prometheus_rule(rules, CONTEXT)
    text = yaml.safe_dump(rendered, sort_keys=False)
    assert yaml.safe_load(text) == rendered
    (group,) = rendered["spec"]["groups"]
    assert [r["alert"] for r in group["rules"]] == sorted(r.name for r in rules)
    used: set[str] = set()
    for entry in group["rules"]:
        used |= metric_names(entry["expr"])
    assert used == {
        REQ, BUCKET, COUNT, "modelport_drift_detected", "modelport_drift_score",
        "modelport_batch_queue_rows",
    }  # fmt: skip
    odd = next(r for r in group["rules"] if r["alert"] == "c")["expr"]
    assert 'feature="odd \\"name\\" \\\\ here"' in odd


def test_groups_are_per_deployment_and_for_is_left_out_when_zero() -> None:
    context = ExportContext(latency_buckets(), 100, {"fraud": ["fraud"], "churn": ["churn"]})
    rendered = prometheus_rule(
        [
            rule({"modelNotReady": {}}, "z", deployment="fraud"),
            rule({"modelNotReady": {}}, "y", deployment="churn", **{"for": "90m"}),
            rule({"modelNotReady": {}}, "a", deployment="fraud", annotations={"summary": "x"}),
        ],
        context,
        name="custom",
    )
    groups = rendered["spec"]["groups"]
    assert [(g["name"], [r["alert"] for r in g["rules"]]) for g in groups] == [
        ("modelport-churn", ["y"]),
        ("modelport-fraud", ["a", "z"]),
    ]
    assert groups[0]["rules"][0]["for"] == "1h30m" and "for" not in groups[1]["rules"][1]
    assert groups[1]["rules"][0]["annotations"] == {"summary": "x"}
    assert rendered["metadata"]["name"] == "custom"
    assert prometheus_rule([], context)["spec"]["groups"] == []


def test_a_threshold_that_is_no_bucket_edge_is_an_error_naming_the_setting() -> None:
    slow = rule({"latencySlo": {"threshold": 0.3, "objective": 0.999}}, "slow")
    ghost = rule({"queueSaturation": {}}, "ghost-queue", deployment="ghost")
    fine = rule({"latencySlo": {"threshold": 0.25, "objective": 0.999}}, "fine")
    context = ExportContext(latency_buckets(), 4096, {"fraud": ["fraud"]})
    with pytest.raises(InvalidInput) as raised:
        prometheus_rule([fine, slow, ghost], context)
    message = raised.value.message
    assert "alert rule 'slow', spec.condition.latencySlo.threshold: 0.3 s" in message
    assert "monitoring.slo_latency_seconds" in message
    assert "MODELPORT_MONITORING__SLO_LATENCY_SECONDS" in message
    assert "alert rule 'ghost-queue': deployment 'ghost' does not exist" in message
    assert "'fine'" not in message
    assert 'le="0.25"' in expression(fine, context)


def test_the_dashboard_is_a_grafana_model_over_modelport_metrics_only() -> None:
    dashboard = grafana_dashboard()
    assert json.loads(json.dumps(dashboard)) == dashboard
    assert dashboard["schemaVersion"] == 39 and dashboard["uid"] == "modelport"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["deployment"]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert variables["deployment"]["multi"] and variables["deployment"]["includeAll"]
    titles = [p["title"] for p in dashboard["panels"]]
    assert titles == [
        "Requests per second by variant",
        "Server errors (5xx share)",
        "Latency p50 / p95 / p99",
        "Requests in flight",
        "Batch queue rows",
        "Response cache hit ratio",
        "Drift scores (dashed: thresholds)",
        "Process CPU (cores)",
        "Process resident memory",
    ]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    positions = {(p["gridPos"]["x"], p["gridPos"]["y"]) for p in dashboard["panels"]}
    assert len(positions) == len(ids)  # no two panels on top of each other
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$deployment", ".*")
            used |= metric_names(expr)
    assert used == {
        REQ, BUCKET, "modelport_gateway_in_flight_requests",
        "modelport_inference_in_flight_requests", "modelport_batch_queue_rows",
        "modelport_gateway_cache_hits_total", "modelport_gateway_cache_misses_total",
        "modelport_drift_score", "modelport_drift_threshold",
        "modelport_process_cpu_seconds_total", "modelport_process_resident_memory_bytes",
    }  # fmt: skip
    latency = dashboard["panels"][2]["targets"]
    assert [t["expr"].split(",")[0] for t in latency] == [
        "histogram_quantile(0.5", "histogram_quantile(0.95", "histogram_quantile(0.99",
    ]  # fmt: skip
    one = grafana_dashboard("fraud")
    assert one["uid"] == "modelport-fraud"
    assert one["templating"]["list"][1]["current"]["value"] == "fraud"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.5, "500ms"), (90, "1m30s"), (3600, "1h"), (5400, "1h30m"), (86400, "1d"),
     (90061.25, "1d1h1m1s250ms")],
)  # fmt: skip
def test_durations_are_prometheus_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text
    if seconds:
        promql_parser.parse(f"x[{text}]")  # Prometheus reads it


def test_numbers_and_regexes() -> None:
    assert [number(v) for v in (1 - 0.99, 14.4, 6.0, 1 - 0.999, 4096)] == [
        "0.01", "14.4", "6", "0.001", "4096",
    ]  # fmt: skip
    assert matcher_regex(["b.c", "a", "a"]) == "a|b\\.c"
    with pytest.raises(ValueError, match="finer than"):
        duration(0.0001)
    with pytest.raises(ValueError, match="non-negative"):
        duration(-1)
