"""Alert rules and a dashboard for Prometheus and Grafana: what ``modelport monitor export`` writes.

Pure: stored :class:`~modelport.core.alert.AlertRule` documents in, plain data out (the caller
writes YAML and JSON). :func:`prometheus_rule` is a Kubernetes ``monitoring.coreos.com/v1``
``PrometheusRule`` (the Prometheus Operator's) with one group per deployment and one alerting
rule per AlertRule, over the metrics modelport's processes expose (``modelport_gateway_*`` per
deployment and variant, ``modelport_batch_queue_rows`` per model version, the control plane's
``modelport_drift_*``). :func:`~modelport.monitoring._dashboard.grafana_dashboard` is the
matching Grafana dashboard. Each condition becomes:

- ``latencySlo``: multi-window burn rates (Beyer et al., *The Site Reliability Workbook*,
  chapter 5): for each pair, ``(1 - rate(bucket{le="T"}[w]) / rate(count[w])) / (1 -
  objective) > burnRate`` for the long AND the short window; the pairs joined by OR. The
  threshold must be an edge of the latency histograms (``monitoring.slo_latency_seconds``), so
  the good share is read exactly; any other threshold is an error.
- ``errorRate``: the share of 5xx answers over the window above ``above``, with at least
  ``minRequests`` requests in it.
- ``driftScore``: the drift job's gauges for the rule's window: ``modelport_drift_score`` above
  ``above``, or ``modelport_drift_detected`` (its own verdict) when there is no ``above``.
- ``modelNotReady``: a variant that answered only 503 (unavailable) for the last two minutes.
  Prometheus sees readiness only through traffic: a variant nobody calls is not judged here
  (the control plane's alert job probes readiness itself).
- ``queueSaturation``: ``modelport_batch_queue_rows`` of the deployment's variants' models over
  ``batching.max_queue_rows`` (of the exporting settings) above ``above``. Assumptions: the
  serving processes use that same ``max_queue_rows``; a model's queues are judged whatever
  version they hold; and with several workers in one process the gauge adds up their queues
  while each worker refuses at its own limit, so the rule fires early (when the workers'
  queues together hold that share of one worker's capacity), never late.
- ``trafficAnomaly``: the z-score of the signal's 5-minute value against its mean and standard
  deviation over the range with the same mean age as the exponentially weighted baseline of a
  half-life ``h`` (``2 h / ln 2``; mean age ``h / ln 2``), ending 5 minutes ago, sampled each
  minute; judged only with at least ``minRequests`` requests in the 5 minutes.

Every alert carries the labels ``alertname`` (the rule's name), ``deployment``, ``severity`` and
the rule's own, and its annotations (a ``summary`` is made when the rule has none).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from modelport.core.alert import (
    AlertRule,
    DriftScore,
    ErrorRate,
    LatencySlo,
    QueueSaturation,
    TrafficAnomaly,
)
from modelport.core.errors import InvalidInput
from modelport.monitoring._dashboard import grafana_dashboard
from modelport.monitoring._promql import (
    BATCH_QUEUE_ROWS,
    DRIFT_DETECTED,
    DRIFT_SCORE,
    LATENCY,
    REQUESTS,
    duration,
    matcher_regex,
    number,
    selector,
)

__all__ = ["ExportContext", "expression", "grafana_dashboard", "prometheus_rule"]

SIGNAL_WINDOW_S: Final = 300.0
"""The window a traffic anomaly's signal is measured over (and its baseline ends before)."""
NOT_READY_WINDOW_S: Final = 120.0
"""How long a variant must have answered only 503 to count as not ready."""
_SERVER_ERRORS: Final = ("code", "=~", "5..")


@dataclass(frozen=True, slots=True)
class ExportContext:
    """What the expressions need besides the rules.

    Attributes:
        latency_buckets: The edges of the latency histograms, in seconds (every
            ``monitoring.slo_latency_seconds`` threshold among them).
        max_queue_rows: ``batching.max_queue_rows``: a batch queue's capacity.
        models: Each deployment's variants' model names (queue saturation watches them).
    """

    latency_buckets: Sequence[float]
    max_queue_rows: int
    models: Mapping[str, Sequence[str]]


def prometheus_rule(
    rules: Sequence[AlertRule], context: ExportContext, name: str = "modelport"
) -> dict[str, Any]:
    """A ``PrometheusRule`` with one group per deployment (sorted) and one rule per AlertRule.

    Args:
        rules: The alert rules.
        context: Bucket edges, queue capacity and the deployments' models.
        name: ``metadata.name`` of the resource.

    Raises:
        InvalidInput: A rule cannot be expressed over the metrics (a latency threshold that is
            no bucket edge, a deployment without models); the message names every such rule
            and what to change.
    """
    problems: list[str] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for rule in sorted(rules, key=lambda r: (r.spec.deployment, r.name)):
        try:
            groups.setdefault(rule.spec.deployment, []).append(_alerting_rule(rule, context))
        except InvalidInput as exc:
            problems.append(exc.message)
    if problems:
        raise InvalidInput("; ".join(problems))
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "modelport",
                "app.kubernetes.io/component": "alert-rules",
            },
        },
        "spec": {
            "groups": [
                {"name": f"modelport-{deployment}", "rules": entries}
                for deployment, entries in groups.items()
            ]
        },
    }


def expression(rule: AlertRule, context: ExportContext) -> str:
    """The PromQL expression that holds while ``rule``'s condition does.

    Raises:
        InvalidInput: The condition cannot be expressed (see :func:`prometheus_rule`).
    """
    condition = rule.spec.condition
    kind = condition.kind
    render = _RENDERERS[kind]
    return render(rule, getattr(condition, kind), context)


def _alerting_rule(rule: AlertRule, context: ExportContext) -> dict[str, Any]:
    spec = rule.spec
    entry: dict[str, Any] = {"alert": rule.name, "expr": expression(rule, context)}
    if spec.for_ > 0:
        entry["for"] = duration(spec.for_)
    entry["labels"] = {
        **spec.labels,
        "alertname": rule.name,
        "deployment": spec.deployment,
        "severity": spec.severity,
    }
    annotations = dict(spec.annotations)
    annotations.setdefault("summary", f"{rule.name}: {_summary(rule)}")
    entry["annotations"] = annotations
    return entry


def _summary(rule: AlertRule) -> str:
    condition, deployment = rule.spec.condition, rule.spec.deployment
    match condition.kind:
        case "latency_slo":
            return f"{deployment} answers slower than its latency objective allows"
        case "error_rate":
            return f"{deployment} fails too many requests"
        case "drift_score":
            return f"{deployment}'s traffic drifted from its reference"
        case "traffic_anomaly":
            return f"{deployment}'s traffic is far from its recent baseline"
        case "model_not_ready":
            return f"a variant of {deployment} cannot answer"
        case _:
            return f"{deployment}'s batch queues are nearly full"


def _sum(by: str, inner: str) -> str:
    return f"sum by ({by}) ({inner})"


def _latency_slo(rule: AlertRule, slo: LatencySlo, context: ExportContext) -> str:
    from prometheus_client.utils import floatToGoString

    edge = next((e for e in context.latency_buckets if math.isclose(e, slo.threshold)), None)
    if edge is None:
        edges = ", ".join(f"{e:g}" for e in context.latency_buckets)
        raise InvalidInput(
            f"alert rule {rule.name!r}, spec.condition.latencySlo.threshold: {slo.threshold:g} s "
            f"is not an edge of the latency histograms ({edges}); add it to "
            "monitoring.slo_latency_seconds (MODELPORT_MONITORING__SLO_LATENCY_SECONDS) for "
            "every modelport process and export again"
        )
    deployment = ("deployment", "=", rule.spec.deployment)
    budget = number(1 - slo.objective)

    # The ``le`` text exactly as the client writes it (untyped: it is the client's own helper).
    le = floatToGoString(edge)  # type: ignore[no-untyped-call]
    within = selector(LATENCY + "_bucket", deployment, ("le", "=", le))
    every = selector(LATENCY + "_count", deployment)

    def burn(window: float, factor: float) -> str:
        span = duration(window)
        good = _sum("deployment", f"rate({within}[{span}])")
        total = _sum("deployment", f"rate({every}[{span}])")
        return f"(1 - {good} / {total}) / {budget} > {number(factor)}"

    pairs = [f"({burn(w.long, w.burn_rate)} and {burn(w.short, w.burn_rate)})" for w in slo.windows]
    return " or ".join(pairs)


def _error_rate(rule: AlertRule, errors: ErrorRate, context: ExportContext) -> str:
    deployment = ("deployment", "=", rule.spec.deployment)
    span = duration(errors.window)
    failed = _sum("deployment", f"rate({selector(REQUESTS, deployment, _SERVER_ERRORS)}[{span}])")
    total = _sum("deployment", f"rate({selector(REQUESTS, deployment)}[{span}])")
    volume = _sum("deployment", f"increase({selector(REQUESTS, deployment)}[{span}])")
    return f"{failed} / {total} > {number(errors.above)} and {volume} >= {errors.min_requests}"


def _drift_score(rule: AlertRule, drift: DriftScore, context: ExportContext) -> str:
    matchers = [("deployment", "=", rule.spec.deployment), ("window", "=", f"{drift.window:g}")]
    if drift.feature != "*":
        matchers.append(("feature", "=", drift.feature))
    by = "deployment, variant, feature"
    if drift.above is None:
        return f"max by ({by}) ({selector(DRIFT_DETECTED, *matchers)}) > 0"
    return f"max by ({by}) ({selector(DRIFT_SCORE, *matchers)}) > {number(drift.above)}"


def _model_not_ready(rule: AlertRule, _: object, context: ExportContext) -> str:
    deployment = ("deployment", "=", rule.spec.deployment)
    span = duration(NOT_READY_WINDOW_S)
    by = "deployment, variant"
    unavailable = _sum(by, f"rate({selector(REQUESTS, deployment, ('code', '=', '503'))}[{span}])")
    answered = _sum(by, f"rate({selector(REQUESTS, deployment, ('code', '=~', '2..'))}[{span}])")
    return f"{unavailable} > 0 unless on ({by}) {answered} > 0"


def _queue_saturation(rule: AlertRule, queue: QueueSaturation, context: ExportContext) -> str:
    models = context.models.get(rule.spec.deployment)
    if not models:
        raise InvalidInput(
            f"alert rule {rule.name!r}: deployment {rule.spec.deployment!r} does not exist, so "
            "its models' queues are unknown; apply the deployment or delete the rule"
        )
    rows = selector(BATCH_QUEUE_ROWS, ("model", "=~", matcher_regex(models)))
    return f"{rows} / {context.max_queue_rows} > {number(queue.above)}"


def _traffic_anomaly(rule: AlertRule, anomaly: TrafficAnomaly, context: ExportContext) -> str:
    deployment = ("deployment", "=", rule.spec.deployment)
    span = duration(SIGNAL_WINDOW_S)
    total = _sum("deployment", f"rate({selector(REQUESTS, deployment)}[{span}])")
    if anomaly.signal == "request_rate":
        signal = total
    elif anomaly.signal == "error_rate":
        failed = f"rate({selector(REQUESTS, deployment, _SERVER_ERRORS)}[{span}])"
        signal = f"{_sum('deployment', failed)} / {total}"
    else:
        buckets = f"rate({selector(LATENCY + '_bucket', deployment)}[{span}])"
        signal = f"histogram_quantile(0.99, {_sum('deployment, le', buckets)})"
    # The same mean age as the exponentially weighted baseline: h / ln 2, a range of twice it.
    minutes = math.ceil(2 * anomaly.half_life / math.log(2) / 60)
    history = f"({signal})[{duration(minutes * 60)}:1m] offset {span}"
    z = f"(({signal}) - avg_over_time({history})) / stddev_over_time({history})"
    volume = _sum("deployment", f"increase({selector(REQUESTS, deployment)}[{span}])")
    enough = f"{volume} >= {anomaly.min_requests}"
    return f"abs({z}) > {number(anomaly.z_score)} and on (deployment) {enough}"


_RENDERERS: Final[dict[str, Callable[[AlertRule, Any, ExportContext], str]]] = {
    "latency_slo": _latency_slo,
    "error_rate": _error_rate,
    "drift_score": _drift_score,
    "model_not_ready": _model_not_ready,
    "queue_saturation": _queue_saturation,
    "traffic_anomaly": _traffic_anomaly,
}
