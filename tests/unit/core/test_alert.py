"""AlertRule documents: every condition, defaults, and each refusal naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from modelport.core.alert import parse_alert_rule
from modelport.core.errors import InvalidInput


def rule(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "AlertRule",
        "metadata": {"name": "fraud-alert"},
        "spec": {"deployment": "fraud", "condition": {"errorRate": {"above": 0.05}}, **spec},
    }


def test_every_condition_parses_with_its_defaults() -> None:
    conditions = {
        "latencySlo": {"threshold": 0.25, "objective": 0.99},
        "errorRate": {"above": 0.05, "window": "10m"},
        "driftScore": {"feature": "input[0]", "above": 0.2},
        "trafficAnomaly": {"signal": "request_rate", "zScore": 5, "halfLife": "2h"},
        "modelNotReady": {},
        "queueSaturation": {"above": 0.9},
    }
    kinds = set()
    for name, body in conditions.items():
        parsed = parse_alert_rule(rule(condition={name: body}, **{"for": "2m"}))
        kinds.add(parsed.spec.condition.kind)
        assert parsed.spec.for_ == 120.0 and parsed.spec.severity == "warning"
    assert len(kinds) == 6
    slo = parse_alert_rule(rule(condition={"latencySlo": conditions["latencySlo"]}))
    windows = slo.spec.condition.latency_slo.windows  # type: ignore[union-attr]
    assert [(w.long, w.short, w.burn_rate) for w in windows] == [
        (3600.0, 300.0, 14.4),
        (21600.0, 1800.0, 6.0),
    ]
    errors = parse_alert_rule(rule()).spec.condition.error_rate
    assert errors is not None and (errors.window, errors.min_requests) == (300.0, 100)
    document = parse_alert_rule(rule()).document()
    assert document["spec"]["for"] == 0.0 and "for_" not in document["spec"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"condition": {}}, "give exactly one condition"),
        (
            {"condition": {"errorRate": {"above": 0.1}, "modelNotReady": {}}},
            "exactly one condition",
        ),
        ({"condition": {"errorRate": {"above": 2}}}, "spec.condition.errorRate.above"),
        ({"for": "soon"}, "spec.for: expected a duration"),
        ({"severity": "page"}, "spec.severity"),
        ({"labels": {"severity": "x"}}, "set by modelport"),
        ({"labels": {"bad-name": "x"}}, "not a Prometheus label name"),
        ({"receivers": [{"url": "ftp://x"}]}, "spec.receivers[0].url"),
        ({"receivers": [{"url": "https://x", "format": "teams"}]}, "spec.receivers[0].format"),
        (
            {"condition": {"latencySlo": {"threshold": 0.2, "objective": 0.99,
                                          "windows": [{"long": "5m", "short": "1h", "burnRate": 2}]}}},
            "short must be more than 0 and less than long",
        ),
        ({"deployment": "Not A Name"}, "spec.deployment"),
        ({"surprise": 1}, "spec.surprise: unknown field"),
    ],
)  # fmt: skip
def test_bad_rules_are_refused_naming_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match="invalid AlertRule") as refused:
        parse_alert_rule(rule(**spec))
    assert message in refused.value.message
