"""Alert evaluation: every stored rule judged on what gateways measured, alerts stepped, notified.

:meth:`AlertService.evaluate` is the control plane's ``evaluate-alerts`` job. For every stored
AlertRule it reads the deployment's signals (the ``traffic_windows`` rows of every gateway
process, over windows ending on a signal-interval boundary:
:class:`~modelport.service.alert_signals.SignalReader`) or the drift job's verdicts, asks
:func:`~modelport.service.alert_conditions.judge` whether the condition holds for each alert,
and steps each alert (:func:`~modelport.monitoring.alerting.step`: pending, firing, resolved).
Alerts that fired or resolved in this evaluation, and firing ones last notified at least
``controlplane.alert_repeat_interval_s`` ago (4 h, Alertmanager's ``repeat_interval``), make
one notification per receiver of the rule: an Alertmanager (v4) payload grouping them
(``groupKey`` from the rule name) or a Slack one. States, baselines and notifications are
written in one transaction (:meth:`~modelport.monitoring.alert_state.AlertStateStore.save`);
:mod:`modelport.service.notify` delivers the outbox.

A rule deleted while its alerts fire resolves them (its receivers, kept with each alert, are
told); a rule whose deployment no longer exists judges nothing, so its alerts resolve too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from modelport.core.alert import AlertRule
from modelport.core.clock import Clock
from modelport.monitoring.alert_records import (
    AlertStatus,
    Evaluation,
    NewNotification,
    StoredAlert,
    StoredBaseline,
)
from modelport.monitoring.alert_rules import StoredAlertRule
from modelport.monitoring.alert_state import AlertStateStore
from modelport.monitoring.alerting import (
    Alert,
    AlertState,
    alertmanager_payload,
    fingerprint,
    slack_payload,
    step,
)
from modelport.service.alert_conditions import Finding, Judgement, judge
from modelport.service.alert_signals import (
    AlertTimings,
    DeploymentSource,
    SignalReader,
    settle_seconds,
)

__all__ = ["AlertService", "AlertTimings", "settle_seconds"]

log = logging.getLogger("modelport.alerts")

RESOLVED_LISTED_S: Final = 86400.0
"""``modelport alerts list --all`` shows alerts resolved this recently."""
_ORDER: Final = {"firing": 0, "pending": 1, "resolved": 2}
Receivers = tuple[tuple[str, Any], ...]


class RuleSource(Protocol):
    """Where rules are read (the alert rule store)."""

    def list(self, deployment: str | None = None) -> list[StoredAlertRule]:
        """Every rule, by name."""
        ...


@dataclass(slots=True)
class _Plan:
    """What one evaluation will write."""

    at: datetime
    alerts: list[StoredAlert] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    baselines: list[StoredBaseline] = field(default_factory=list)
    notifications: list[NewNotification] = field(default_factory=list)
    changed: int = 0
    """Alerts that became pending, fired, resolved or were forgotten."""

    def evaluation(self, baselines_removed: Sequence[str]) -> Evaluation:
        return Evaluation(
            self.at, self.alerts, self.removed, self.baselines, baselines_removed,
            self.notifications,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Subject:
    """The rule an alert belongs to, as stepping needs it."""

    rule: str
    deployment: str
    receivers: Receivers
    for_s: float


class AlertService:
    """Evaluates the stored rules and lists their alerts.

    Args:
        rules: The alert rules.
        state: Signals, alerts, baselines and the outbox.
        deployments: The deployments (a rule's variants; whether its deployment exists).
        clock: The time of evaluations.
        timings: The intervals.
        external_url: Base URL of the control plane, for each alert's ``generatorURL``.
    """

    def __init__(
        self,
        rules: RuleSource,
        state: AlertStateStore,
        deployments: DeploymentSource,
        clock: Clock,
        timings: AlertTimings | None = None,
        external_url: str = "",
    ) -> None:
        self.rules = rules
        self.state = state
        self._deployments = deployments
        self.clock = clock
        self.timings = timings or AlertTimings()
        self._external = external_url.rstrip("/")

    def evaluate(self, now: datetime | None = None) -> str | None:
        """Judge every rule, step its alerts, queue what must be notified.

        Returns:
            A line of what changed (for the job's log); ``None`` when nothing did.
        """
        now = now or self.clock.now()
        stored_rules = self.rules.list()
        by_rule: dict[str, list[StoredAlert]] = {}
        for alert in self.state.alerts():
            by_rule.setdefault(alert.rule, []).append(alert)
        baselines = self.state.baselines()
        plan = _Plan(now)
        windows = SignalReader(
            self.state, self._deployments, self.timings, now, [s.rule for s in stored_rules]
        )
        anomaly_rules = set()
        for stored in stored_rules:
            rule = stored.rule
            if rule.spec.condition.traffic_anomaly is not None:
                anomaly_rules.add(rule.name)
            try:
                findings = self._judge(rule, windows, baselines.get(rule.name), plan)
            except (
                Exception
            ):  # one rule's bug must not stop the others; its alerts stay as they are
                log.exception("alert rule %s could not be evaluated", rule.name)
                by_rule.pop(rule.name, None)
                continue
            subject = _Subject(rule.name, rule.spec.deployment, _receivers(rule), rule.spec.for_)
            self._step(subject, rule, findings, by_rule.pop(rule.name, []), plan)
        for name, leftovers in by_rule.items():  # rules deleted since
            self._resolve_deleted(name, leftovers, plan)
        self.state.save(plan.evaluation(sorted(set(baselines) - anomaly_rules)))
        return _summary(len(stored_rules), plan)

    def list_alerts(
        self,
        deployment: str | None = None,
        include_resolved: bool = False,
        visible: Callable[[set[str]], set[str]] | None = None,
    ) -> dict[str, Any]:
        """The alerts as ``GET /v1/alerts`` and ``modelport alerts list -o json`` show them.

        Args:
            deployment: Only this deployment's.
            include_resolved: Add alerts resolved in the last 24 hours.
            visible: Keeps the deployments the caller may see; ``None``: all.
        """
        now = self.clock.now()
        found = self.state.alerts(deployment=deployment)
        cutoff = now - timedelta(seconds=RESOLVED_LISTED_S)
        found = [
            a
            for a in found
            if a.state != "resolved"
            or (include_resolved and a.resolved_at is not None and a.resolved_at >= cutoff)
        ]
        if visible is not None:
            allowed = visible({a.deployment for a in found})
            found = [a for a in found if a.deployment in allowed]
        pending = self.state.pending_notifications()
        found.sort(key=lambda a: (_ORDER[a.state], a.rule, a.fingerprint))
        return {"alerts": [_describe(a, pending.get(a.rule, 0)) for a in found]}

    # -- one rule ------------------------------------------------------------------------------

    def _judge(
        self,
        rule: AlertRule,
        windows: SignalReader,
        baseline: StoredBaseline | None,
        plan: _Plan,
    ) -> list[Finding]:
        """The rule's findings; none when its deployment does not exist (its alerts resolve)."""
        window = windows.of(rule.spec.deployment)
        if window is None:
            return []
        drift = rule.spec.condition.drift_score
        verdicts = []
        if drift is not None:
            since = plan.at - timedelta(seconds=2 * drift.window)
            verdicts = self.state.latest_drift(rule.spec.deployment, drift.window, since)
        anomaly = rule.spec.condition.traffic_anomaly
        prior = None
        if anomaly is not None and baseline is not None and baseline.signal == anomaly.signal:
            prior = (baseline.baseline, (plan.at - baseline.updated_at).total_seconds())
        judgement: Judgement = judge(rule, window, verdicts, prior)
        if anomaly is not None and judgement.baseline is not None:
            plan.baselines.append(
                StoredBaseline(rule.name, anomaly.signal, judgement.baseline, plan.at)
            )
        return judgement.findings

    def _step(
        self,
        subject: _Subject,
        rule: AlertRule,
        findings: Iterable[Finding],
        stored: Sequence[StoredAlert],
        plan: _Plan,
    ) -> None:
        existing = {a.fingerprint: a for a in stored}
        notify: list[Alert] = []
        base = {
            "alertname": rule.name,
            "deployment": rule.spec.deployment,
            "severity": rule.spec.severity,
            **rule.spec.labels,
        }
        for finding in findings:
            labels = {**base, **finding.labels}
            previous = existing.pop(fingerprint(labels), None)
            annotations = {**rule.spec.annotations, "description": finding.description}
            self._advance(subject, labels, annotations, finding, previous, plan, notify)
        for previous in existing.values():  # alerts the condition no longer speaks of
            gone = Finding({}, False, previous.value, "no longer reported")
            annotations = dict(previous.annotations)
            self._advance(subject, dict(previous.labels), annotations, gone, previous, plan, notify)
        if notify:
            plan.notifications += self._notifications(subject.rule, subject.receivers, notify)

    def _advance(
        self,
        subject: _Subject,
        labels: dict[str, str],
        annotations: dict[str, str],
        finding: Finding,
        previous: StoredAlert | None,
        plan: _Plan,
        notify: list[Alert],
    ) -> None:
        """Step one alert; record what to store and what to notify."""
        now = plan.at
        prior = AlertState()
        if previous is not None and previous.state != "resolved":
            prior = AlertState(previous.state, previous.active_since, previous.fired_at)
        state, transition = step(prior, finding.holds, now, subject.for_s)
        fp = fingerprint(labels)
        if state.status == "inactive" and transition is None:
            if previous is not None and previous.state == "pending":
                plan.removed.append((subject.rule, fp))
                plan.changed += 1
            return
        if transition is not None or previous is None or previous.state == "resolved":
            plan.changed += 1
        notified_at = previous.notified_at if previous is not None else None
        url = self._generator_url(subject.deployment)
        record = _Record(subject, fp, labels, annotations, finding.value, now)
        if transition == "resolved":
            fired_at = prior.fired_at or now
            notify.append(Alert(labels, annotations, "resolved", fired_at, now, url))
            plan.alerts.append(record.stored("resolved", None, fired_at, now, now))
            return
        repeat = timedelta(seconds=self.timings.repeat_interval_s)
        due = state.status == "firing" and (
            transition == "firing" or notified_at is None or now - notified_at >= repeat
        )
        if due and state.fired_at is not None:
            notified_at = now
            notify.append(Alert(labels, annotations, "firing", state.fired_at, None, url))
        status: AlertStatus = "firing" if state.status == "firing" else "pending"
        plan.alerts.append(
            record.stored(status, state.active_since, state.fired_at, None, notified_at)
        )

    def _resolve_deleted(self, rule: str, stored: Sequence[StoredAlert], plan: _Plan) -> None:
        """Resolve the alerts of a rule that no longer exists, telling its last receivers."""
        by_receivers: dict[Receivers, list[StoredAlert]] = {}
        for alert in stored:
            if alert.state != "resolved":
                by_receivers.setdefault(alert.receivers, []).append(alert)
        for receivers, alerts in by_receivers.items():
            subject = _Subject(rule, alerts[0].deployment, receivers, 0.0)
            notify: list[Alert] = []
            for alert in alerts:
                gone = Finding({}, False, alert.value, "its rule was deleted")
                annotations = {**alert.annotations, "description": "its alert rule was deleted"}
                self._advance(subject, dict(alert.labels), annotations, gone, alert, plan, notify)
            if notify:
                plan.notifications += self._notifications(rule, receivers, notify)

    def _notifications(
        self, rule: str, receivers: Receivers, alerts: Sequence[Alert]
    ) -> list[NewNotification]:
        made = []
        for url, form in receivers:
            if form == "slack":
                payload = slack_payload(alerts)
            else:
                payload = alertmanager_payload(rule, alerts, self._external)
            made.append(NewNotification(rule, url, form, payload))
        return made

    def _generator_url(self, deployment: str) -> str:
        return f"{self._external}/v1/alerts?deployment={deployment}" if self._external else ""


def _receivers(rule: AlertRule) -> Receivers:
    return tuple((r.url, r.format) for r in rule.spec.receivers)


@dataclass(frozen=True, slots=True)
class _Record:
    """What an alert is, whatever its state: to be stored with its state and times."""

    subject: _Subject
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    now: datetime

    def stored(
        self,
        state: AlertStatus,
        active_since: datetime | None,
        fired_at: datetime | None,
        resolved_at: datetime | None,
        notified_at: datetime | None,
    ) -> StoredAlert:
        s = self.subject
        return StoredAlert(
            s.rule, self.fingerprint, s.deployment, self.labels, self.annotations, s.receivers,
            state, active_since, fired_at, resolved_at, notified_at, self.value, self.now,
        )  # fmt: skip


def _describe(alert: StoredAlert, pending: int) -> dict[str, Any]:
    since = alert.resolved_at if alert.state == "resolved" else alert.fired_at
    since = since or alert.active_since
    return {
        "rule": alert.rule,
        "deployment": alert.deployment,
        "state": alert.state,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "fingerprint": alert.fingerprint,
        "since": _iso(since),
        "activeSince": _iso(alert.active_since),
        "firedAt": _iso(alert.fired_at),
        "resolvedAt": _iso(alert.resolved_at),
        "value": alert.value,
        "updatedAt": _iso(alert.updated_at),
        "pendingNotifications": pending,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _summary(rules: int, plan: _Plan) -> str | None:
    if not plan.changed and not plan.notifications:
        return None
    counts = {"firing": 0, "pending": 0, "resolved": 0}
    for alert in plan.alerts:
        counts[alert.state] += 1
    return (
        f"{rules} rule{'s' if rules != 1 else ''}: {counts['firing']} firing, "
        f"{counts['pending']} pending, {counts['resolved']} resolved now; "
        f"{len(plan.notifications)} notification(s) queued"
    )
