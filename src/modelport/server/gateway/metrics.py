"""The metrics of a gateway worker: its counts, as HTTP statuses, in the process's exposition.

The gateway counts failures by error kind (it knows no transport); the ``code`` label of
``modelport_gateway_requests_total`` is the HTTP status, so the kinds are mapped here, with the
REST transport's own table: a gRPC call counts the status REST answers for the same outcome.
"""

from __future__ import annotations

from typing import Final

from modelport.monitoring import Exposition, GatewayCounts, GatewayMetrics
from modelport.monitoring.prediction_log import PredictionLog
from modelport.server.rest.errors import STATUS_BY_KIND
from modelport.service.feedback import FeedbackService
from modelport.service.gateway import Gateway, GatewayStats

__all__ = ["follow_gateway", "gateway_counts"]

_STATUS: Final = {kind.value: str(status) for kind, status in STATUS_BY_KIND.items()}

_PREDICTION_LOG: Final = {
    "modelport_prediction_log_records_total": "Predictions queued for the prediction log",
    "modelport_prediction_log_dropped_total": (
        "Predictions dropped because the prediction log's queue was full"
    ),
    "modelport_prediction_log_write_failures_total": (
        "Flushes of the prediction log its storage refused (records kept for retry)"
    ),
    "modelport_prediction_log_lost_total": (
        "Predictions the prediction log's storage could never take"
    ),
}
_FEEDBACK: Final = {
    "modelport_feedback_accepted_total": "Feedback on answered requests stored (POST /v2/feedback)",
    "modelport_feedback_replaced_total": (
        "Feedback that replaced an earlier feedback for the same request"
    ),
    "modelport_feedback_unknown_total": (
        "Request ids sent as feedback that the prediction log does not hold"
    ),
}


def gateway_counts(stats: GatewayStats) -> GatewayCounts:
    """The gateway's counts as the metrics read them: failures under their HTTP status."""
    requests: dict[tuple[str, str, str, str, bool], int] = {}
    for (deployment, variant, keyed, protocol, status), n in stats.answers.items():
        key = (deployment, variant, protocol, str(status), keyed)
        requests[key] = requests.get(key, 0) + n
    for (deployment, variant, keyed, protocol, kind), n in stats.failures.items():
        key = (deployment, variant, protocol, _STATUS.get(kind, "500"), keyed)
        requests[key] = requests.get(key, 0) + n
    return GatewayCounts(
        requests=requests,
        latency=stats.latency,
        in_flight=stats.in_flight,
        shadows=stats.shadows,
        shadow_failures=stats.shadow_failures,
        shadows_skipped=stats.shadows_skipped,
        cache_hits=stats.cache_hits,
        cache_misses=stats.cache_misses,
    )


def follow_gateway(
    exposition: Exposition,
    gateway: Gateway,
    predictions: PredictionLog | None,
    feedback: FeedbackService | None,
) -> GatewayMetrics:
    """Add the gateway's families, its prediction log's and its feedback's to ``exposition``."""
    metrics = GatewayMetrics(exposition, lambda: gateway_counts(gateway.stats()))
    if predictions is not None:
        log = predictions

        def logged() -> dict[str, float]:
            stats = log.stats()
            return {
                "modelport_prediction_log_records_total": stats.logged,
                "modelport_prediction_log_dropped_total": stats.dropped,
                "modelport_prediction_log_write_failures_total": stats.failures,
                "modelport_prediction_log_lost_total": stats.lost,
            }

        exposition.follow_totals(_PREDICTION_LOG, logged)
    if feedback is not None:
        service = feedback

        def received() -> dict[str, float]:
            stats = service.stats()
            return {
                "modelport_feedback_accepted_total": stats.accepted,
                "modelport_feedback_replaced_total": stats.replaced,
                "modelport_feedback_unknown_total": stats.unknown,
            }

        exposition.follow_totals(_FEEDBACK, received)
    return metrics
