"""AlertService.evaluate: every condition judged on stored signals, alerts stepped and notified.

Real stores on SQLite (alert rules, alert state, deployments) and a fake clock; signals are
written as gateway workers write them (rows per 15 s bucket, several writers).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from modelport import db
from modelport.core.alert import parse_alert_rule
from modelport.core.deployment import parse_deployment
from modelport.experiments.store import DeploymentStore
from modelport.monitoring._state_schema import drift_results
from modelport.monitoring.alert_rules import AlertRuleStore
from modelport.monitoring.alert_state import AlertStateStore
from modelport.monitoring.alerting import ZERO_TIME, fingerprint
from modelport.monitoring.signals import SignalRow
from modelport.service.alerts import AlertService, AlertTimings
from modelport.testing import FakeClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EDGES = (0.1, 0.25, 0.5, 1.0)
HOOK = "http://127.0.0.1:9/hook"
STEP = timedelta(seconds=15)


def rule(name: str, condition: dict[str, Any], **spec: Any) -> Any:
    doc: dict[str, Any] = {
        "apiVersion": "modelport.io/v1",
        "kind": "AlertRule",
        "metadata": {"name": name},
        "spec": {
            "deployment": "fraud",
            "condition": condition,
            "labels": {"team": "risk"},
            "annotations": {"summary": f"{name} says so"},
            "receivers": [{"url": HOOK}, {"url": HOOK + "/slack", "format": "slack"}],
        },
    }
    doc["spec"].update(copy.deepcopy(spec))
    return parse_alert_rule(doc)


class World:
    """The stores, the clock and the service, with helpers to write what gateways measured."""

    def __init__(self, url: str) -> None:
        self.clock = FakeClock(T0)
        self.rules = AlertRuleStore(url, self.clock)
        self.state = AlertStateStore(url)
        self.deployments = DeploymentStore(url, self.clock)
        self.deploy("fraud", ["a", "b"])
        self.service = AlertService(
            self.rules, self.state, self.deployments, self.clock, AlertTimings(15, 15, 3600)
        )

    def deploy(self, name: str, variants: list[str]) -> None:
        spec = [{"name": v, "model": "fraud@1", "weight": 100 // len(variants)} for v in variants]
        doc = {
            "apiVersion": "modelport.io/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"variants": spec},
        }
        self.deployments.apply(parse_deployment(doc), "tests")

    def apply(self, *rules: Any) -> None:
        for r in rules:
            self.rules.apply(r, "tests")

    def traffic(
        self,
        seconds: float,
        requests: int = 0,
        errors: int = 0,
        buckets: tuple[int, ...] | None = None,
        variant: str = "a",
        writer: str = "w1",
        **kw: Any,
    ) -> None:
        """One row per 15 s bucket over the ``seconds`` before now, each with these counts."""
        end = self.clock.now()
        start = end - timedelta(seconds=seconds)
        rows = []
        while start < end:
            rows.append(
                SignalRow(
                    "fraud",
                    variant,
                    start,
                    15.0,
                    requests=requests,
                    errors=errors,
                    edges=EDGES,
                    buckets=buckets or (requests, 0, 0, 0, 0),
                    **kw,
                )  # fmt: skip
            )
            start += STEP
        self.state.add_signals(rows, writer)

    def evaluate(self, seconds: float = 15) -> str | None:
        """Let ``seconds`` pass, then evaluate (settled: 5 s after the last bucket)."""
        self.clock.advance(seconds)
        return self.service.evaluate(self.clock.now() + timedelta(seconds=5))

    def alerts(self) -> dict[str, Any]:
        alerts = self.state.alerts()
        return {a.labels.get("feature") or a.labels.get("variant") or a.rule: a for a in alerts}

    def sent(self) -> list[dict[str, Any]]:
        return [n.payload for n in self.state.notifications() if n.format == "alertmanager"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(f"sqlite:///{tmp_path / 'm.db'}")
    yield made
    for store in (made.rules, made.state, made.deployments):
        store.close()


ERRORS = {"errorRate": {"above": 0.05, "window": "5m", "minRequests": 100}}


def test_an_error_rate_above_its_share_fires_then_resolves_with_payloads(world: World) -> None:
    world.apply(rule("fraud-errors", ERRORS))
    world.traffic(300, requests=50, errors=5, writer="w1")  # 10% over two writers
    world.traffic(300, requests=50, errors=5, writer="w2")
    assert "1 firing" in (world.evaluate(0) or "")
    [firing] = world.state.alerts()
    assert firing.state == "firing" and firing.value == pytest.approx(0.1)
    labels = {"alertname": "fraud-errors", "deployment": "fraud", "severity": "warning",
              "team": "risk"}  # fmt: skip
    assert firing.labels == labels
    [payload] = world.sent()
    assert payload["version"] == "4" and payload["status"] == "firing"
    assert payload["groupKey"] == '{}:{alertname="fraud-errors", deployment="fraud"}'
    [sent] = payload["alerts"]
    assert sent["fingerprint"] == fingerprint(labels) and sent["endsAt"] == ZERO_TIME
    assert sent["annotations"]["summary"] == "fraud-errors says so"
    assert "200 of 2000 requests" in sent["annotations"]["description"]
    slack = [n for n in world.state.notifications() if n.format == "slack"]
    assert len(slack) == 1 and "FIRING" in slack[0].payload["text"]
    # errors stop: the next evaluation's window (5 min) is healthy once the bad buckets age out
    world.clock.advance(300)
    world.traffic(300, requests=100, errors=0)
    assert "1 resolved" in (world.evaluate(0) or "")
    [resolved] = world.state.alerts()
    assert resolved.state == "resolved" and resolved.resolved_at is not None
    last = world.sent()[-1]
    assert last["status"] == "resolved" and last["alerts"][0]["endsAt"] != ZERO_TIME
    assert last["alerts"][0]["fingerprint"] == fingerprint(labels)


def test_too_few_requests_decide_nothing(world: World) -> None:
    world.apply(rule("fraud-errors", ERRORS))
    world.traffic(300, requests=4, errors=4)  # 80 requests, all failed
    world.evaluate(0)
    assert world.state.alerts() == [] and world.sent() == []


def test_for_keeps_an_alert_pending_until_the_condition_held_long_enough(world: World) -> None:
    world.apply(rule("fraud-errors", ERRORS, **{"for": "1m"}))
    world.traffic(300, requests=100, errors=50)
    world.evaluate(0)
    [pending] = world.state.alerts()
    assert pending.state == "pending" and world.sent() == []
    for _ in range(3):
        world.traffic(15, requests=100, errors=50)
        world.evaluate()
    assert world.state.alerts()[0].state == "pending"
    world.traffic(15, requests=100, errors=50)
    world.evaluate()
    assert world.state.alerts()[0].state == "firing" and len(world.sent()) == 1


def test_a_pending_alert_that_stops_holding_leaves_nothing_behind(world: World) -> None:
    world.apply(rule("fraud-errors", ERRORS, **{"for": "1h"}))
    world.traffic(300, requests=100, errors=50)
    world.evaluate(0)
    assert world.state.alerts()[0].state == "pending"
    world.clock.advance(300)
    world.traffic(300, requests=100)
    world.evaluate(0)
    assert world.state.alerts() == [] and world.state.notifications() == []


def test_a_firing_alert_is_not_sent_again_before_the_repeat_interval(world: World) -> None:
    world.apply(rule("fraud-errors", ERRORS))
    world.traffic(300, requests=100, errors=50)
    world.evaluate(0)
    for _ in range(3):
        world.traffic(15, requests=100, errors=50)
        assert world.evaluate() is None  # nothing changed: nothing to log
    assert len(world.sent()) == 1  # unchanged: deduplicated
    for _ in range(240):  # an hour, the repeat interval of these timings
        world.traffic(15, requests=100, errors=50)
        world.clock.advance(15)
    world.service.evaluate(world.clock.now() + timedelta(seconds=5))
    assert len(world.sent()) == 2 and world.sent()[-1]["status"] == "firing"


def test_latency_slo_burns_from_the_buckets_and_interpolates_between_edges(world: World) -> None:
    slo = {"latencySlo": {"threshold": 0.25, "objective": 0.99,
                          "windows": [{"long": "1h", "short": "5m", "burnRate": 14.4}]}}  # fmt: skip
    world.apply(rule("fraud-latency", slo))
    world.traffic(3600, requests=100, buckets=(80, 0, 20, 0, 0))  # 20% above 0.25 s: burn 20
    world.evaluate(0)
    [alert] = world.state.alerts()
    assert alert.state == "firing" and alert.value == pytest.approx(20.0)
    # 0.3 s is not an edge: 4/5 of the (0.25, 0.5] bucket is taken as slower
    world.apply(rule("fraud-latency", {"latencySlo": {**slo["latencySlo"], "threshold": 0.3}}))
    world.evaluate(0)
    assert world.state.alerts()[0].value == pytest.approx(16.0)
    world.apply(rule("fraud-latency", {"latencySlo": {**slo["latencySlo"], "threshold": 0.5}}))
    world.evaluate(0)
    assert world.state.alerts()[0].state == "resolved"


def test_latency_slo_needs_both_windows_to_burn(world: World) -> None:
    slo = {"latencySlo": {"threshold": 0.25, "objective": 0.99,
                          "windows": [{"long": "1h", "short": "5m", "burnRate": 14.4}]}}  # fmt: skip
    world.apply(rule("fraud-latency", slo))
    world.traffic(3600, requests=100, buckets=(80, 0, 20, 0, 0))
    world.clock.advance(300)
    world.traffic(300, requests=100)  # the last 5 min are fine: the short window is quiet
    world.evaluate(0)
    assert world.state.alerts() == []


ANOMALY = {"trafficAnomaly": {"signal": "request_rate", "zScore": 4, "minRequests": 100,
                              "halfLife": "1h"}}  # fmt: skip
NOISE = [45, 55, 50, 60, 40, 52, 48, 58, 42, 50]


def test_a_traffic_anomaly_fires_far_from_the_learned_baseline(world: World) -> None:
    world.apply(rule("fraud-traffic", ANOMALY))
    for n in NOISE[:4]:  # the first observation window (a minute) is full
        world.clock.advance(15)
        world.traffic(15, requests=n)
    for i in range(12):  # about 200 requests a minute, give or take
        world.clock.advance(15)
        world.traffic(15, requests=NOISE[i % len(NOISE)])
        world.evaluate(0)
    assert world.state.alerts() == []
    learned = world.state.baselines()["fraud-traffic"]
    assert learned.signal == "request_rate" and learned.baseline.observations == 12
    assert learned.baseline.mean == pytest.approx(200 / 60, rel=0.05)
    world.clock.advance(60)
    world.traffic(60, requests=400)  # 8 times the rate
    world.evaluate(0)
    [alert] = world.state.alerts()
    assert alert.state == "firing" and alert.value is not None and alert.value > 4
    assert "standard deviations" in alert.annotations["description"]


def test_a_traffic_anomaly_below_its_volume_is_not_judged_nor_learned(world: World) -> None:
    world.apply(rule("fraud-traffic", ANOMALY))
    for _ in range(8):
        world.traffic(15, requests=20)  # 80 a minute, under minRequests
        world.evaluate()
    assert world.state.baselines() == {} and world.state.alerts() == []
    world.apply(rule("fraud-traffic", {"errorRate": {"above": 0.5}}))
    world.evaluate()
    assert world.state.baselines() == {}


def test_model_not_ready_is_per_variant_and_notices_silence(world: World) -> None:
    world.apply(rule("fraud-ready", {"modelNotReady": {}}))
    world.traffic(600, samples=15, variant="a")
    world.traffic(600, samples=15, variant="b")
    world.clock.advance(15)
    world.traffic(15, samples=15, not_ready=3, variant="a")  # a: some samples not ready
    # b: sampled until a minute ago, then no process reported it
    world.evaluate(0)
    assert {k: a.state for k, a in world.alerts().items()} == {"a": "firing"}
    world.clock.advance(30)
    world.traffic(30, samples=15, variant="a")
    world.evaluate(0)
    alerts = world.alerts()
    assert alerts["a"].state == "resolved" and alerts["b"].state == "firing"
    assert alerts["b"].labels["variant"] == "b"
    assert "no process sampled" in alerts["b"].annotations["description"]


def test_queue_saturation_is_the_peak_share_of_the_last_interval(world: World) -> None:
    world.apply(rule("fraud-queue", {"queueSaturation": {"above": 0.8}}))
    world.traffic(15, samples=15, queue_fill=0.95, variant="a", writer="w1")
    world.traffic(15, samples=15, queue_fill=0.1, variant="a", writer="w2")
    world.traffic(15, samples=15, queue_fill=0.5, variant="b")
    world.evaluate(0)
    alerts = world.alerts()
    assert list(alerts) == ["a"] and alerts["a"].value == pytest.approx(0.95)
    world.traffic(15, samples=15, queue_fill=0.2, variant="a")
    world.evaluate()
    assert world.alerts()["a"].state == "resolved"


def drift_row(end: datetime, score: float, drifted: bool, hours: float = 1) -> dict[str, Any]:
    return {
        "deployment": "fraud", "variant": "a", "model": "fraud", "version": "1",
        "window_start": end - timedelta(hours=hours), "window_end": end, "against": "reference",
        "rows": 500, "baseline_rows": 1000,
        "report": {"features": [
            {"name": "input[0]", "score": score, "threshold": 0.2, "drifted": drifted},
            {"name": "input[1]", "score": 0.01, "threshold": 0.2, "drifted": False},
        ]},
        "drifted": ["input[0]"] if drifted else [], "evaluated_at": end,
    }  # fmt: skip


def test_drift_score_fires_per_feature_on_the_newest_reference_verdict(world: World) -> None:
    world.apply(rule("fraud-drift", {"driftScore": {"feature": "*", "window": "1h"}}))
    with db.write(world.state._engine) as conn:
        conn.execute(insert(drift_results), [drift_row(T0, 0.35, True)])
    world.evaluate(0)
    alerts = world.alerts()
    assert list(alerts) == ["input[0]"]
    assert alerts["input[0]"].labels["variant"] == "a" and alerts["input[0]"].value == 0.35
    world.apply(rule("fraud-drift", {"driftScore": {"feature": "input[1]", "above": 0.001}}))
    world.evaluate()
    alerts = world.alerts()
    assert alerts["input[0]"].state == "resolved" and alerts["input[1]"].state == "firing"
    with db.write(world.state._engine) as conn:  # a newer verdict, without drift
        conn.execute(insert(drift_results), [drift_row(T0 + STEP, 0.0, False)])
    world.apply(rule("fraud-drift", {"driftScore": {"feature": "*"}}))
    world.evaluate()
    assert {a.state for a in world.state.alerts()} == {"resolved"}


def test_a_rule_deleted_while_firing_resolves_and_tells_its_receivers(world: World) -> None:
    world.apply(rule("fraud-errors", ERRORS))
    world.traffic(300, requests=100, errors=50)
    world.evaluate(0)
    world.rules.delete("fraud-errors")
    world.evaluate()
    [resolved] = world.state.alerts()
    assert resolved.state == "resolved"
    assert [p["status"] for p in world.sent()] == ["firing", "resolved"]
    assert len(world.state.notifications()) == 4  # both receivers, both times
    world.evaluate()
    assert len(world.state.notifications()) == 4


def test_a_rule_whose_deployment_was_deleted_resolves_without_failing(world: World) -> None:
    world.apply(rule("fraud-errors", ERRORS), rule("fraud-ready", {"modelNotReady": {}}))
    world.traffic(300, requests=100, errors=50, samples=15, not_ready=15)
    world.evaluate(0)
    assert {a.state for a in world.state.alerts()} == {"firing"}
    world.deployments.delete("fraud")
    summary = world.evaluate()
    assert summary is not None and "2 rules" in summary
    assert {a.state for a in world.state.alerts()} == {"resolved"}


def test_the_listing_shows_firing_then_pending_and_resolved_on_request(world: World) -> None:
    world.apply(
        rule("fraud-errors", ERRORS),
        rule("fraud-ready", {"modelNotReady": {}}, **{"for": "1h"}),
        rule("fraud-queue", {"queueSaturation": {}}),
    )
    world.traffic(300, requests=100, errors=50, samples=15, not_ready=1, queue_fill=0.9)
    world.evaluate(0)
    world.traffic(15, requests=100, errors=50, samples=15, not_ready=1, queue_fill=0.1)
    world.evaluate()
    listed = world.service.list_alerts()["alerts"]
    assert [(a["rule"], a["state"]) for a in listed] == [
        ("fraud-errors", "firing"), ("fraud-ready", "pending"),
    ]  # fmt: skip
    first = listed[0]
    assert first["since"] == "2026-03-01T12:00:05Z" and first["pendingNotifications"] == 2
    assert first["labels"]["team"] == "risk" and first["value"] == pytest.approx(0.5)
    everything = world.service.list_alerts(include_resolved=True)["alerts"]
    assert everything[-1]["rule"] == "fraud-queue" and everything[-1]["state"] == "resolved"
    assert world.service.list_alerts(deployment="other")["alerts"] == []
    assert world.service.list_alerts(visible=lambda names: set())["alerts"] == []
    world.clock.advance(86400 + 60)
    assert len(world.service.list_alerts(include_resolved=True)["alerts"]) == 2
