"""The records the alert state store takes and gives back (plain, frozen data).

:class:`StoredAlert` is one alert of a rule as stored (pending, firing or resolved);
:class:`StoredBaseline` a trafficAnomaly rule's baseline; :class:`NewNotification` an entry to
put in the outbox and :class:`Notification` one read back with its delivery bookkeeping;
:class:`DriftVerdict` the drift job's verdict a driftScore rule reads; :class:`Evaluation`
everything one evaluation writes, in one transaction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from modelport.monitoring.alerting import Baseline

__all__ = [
    "AlertStatus",
    "DriftVerdict",
    "Evaluation",
    "FeatureScore",
    "NewNotification",
    "Notification",
    "StoredAlert",
    "StoredBaseline",
    "alert_of",
    "baseline_of",
    "notification_of",
    "verdict_of",
]

AlertStatus = Literal["pending", "firing", "resolved"]
Format = Literal["alertmanager", "slack"]


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """One alert of a rule: its labels' fingerprint, where it stands and since when.

    Attributes:
        rule: The rule's name (the ``alertname`` label).
        fingerprint: The labels' fingerprint (:func:`~modelport.monitoring.alerting.fingerprint`).
        deployment: The deployment the rule watches.
        labels: Every label.
        annotations: The rule's annotations and what the evaluation found (``description``).
        receivers: The rule's receivers when the alert last changed: ``(url, format)``.
        state: ``pending``, ``firing`` or ``resolved``.
        active_since: When the condition started holding (``None`` once resolved).
        fired_at: When it started firing (``None`` while pending).
        resolved_at: When it resolved (``None`` unless resolved).
        notified_at: When it was last put in a notification.
        value: What the condition measured at the latest evaluation (a share, a burn rate...).
        updated_at: The latest evaluation that changed or looked at it.
    """

    rule: str
    fingerprint: str
    deployment: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    receivers: tuple[tuple[str, Format], ...]
    state: AlertStatus
    active_since: datetime | None
    fired_at: datetime | None
    resolved_at: datetime | None
    notified_at: datetime | None
    value: float | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredBaseline:
    """A trafficAnomaly rule's baseline of its signal, and when it was last updated."""

    rule: str
    signal: str
    baseline: Baseline
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A webhook POST to make: the rule it is about, where, in which format, what."""

    rule: str
    receiver: str
    format: Format
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notification:
    """An outbox entry with its delivery bookkeeping.

    Attributes:
        id: Its number (entries are delivered in this order).
        rule: The rule it is about.
        receiver: The URL it is POSTed to.
        format: ``alertmanager`` or ``slack``.
        payload: The JSON body.
        created_at: When the evaluation that made it ran.
        attempts: POSTs tried so far.
        next_attempt_at: When the next may be tried.
        delivered_at: When a receiver accepted it; ``None`` until then.
        last_error: Why the latest attempt failed.
        given_up: No more attempts will be made.
    """

    id: int
    rule: str
    receiver: str
    format: Format
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    given_up: bool


@dataclass(frozen=True, slots=True)
class FeatureScore:
    """One feature's score in a drift verdict (``score`` ``None``: the window had no value)."""

    name: str
    score: float | None
    threshold: float | None
    drifted: bool


@dataclass(frozen=True, slots=True)
class DriftVerdict:
    """The drift job's verdict on one variant's window, against the version's reference."""

    variant: str
    version: str
    window_start: datetime
    window_end: datetime
    features: tuple[FeatureScore, ...]
    evaluated_at: datetime


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one evaluation writes, all in one transaction.

    Attributes:
        at: When it ran (the new outbox entries' creation time and first attempt).
        alerts: Alerts to store (new or changed).
        removed: ``(rule, fingerprint)`` of alerts to delete (pending ones that stopped holding,
            and those of rules that no longer exist once resolved).
        baselines: Baselines to store.
        baselines_removed: Rules whose baseline is to be deleted.
        notifications: Outbox entries to add.
    """

    at: datetime
    alerts: Sequence[StoredAlert] = ()
    removed: Sequence[tuple[str, str]] = ()
    baselines: Sequence[StoredBaseline] = ()
    baselines_removed: Sequence[str] = ()
    notifications: Sequence[NewNotification] = field(default=())


def alert_of(row: Any) -> StoredAlert:
    """A stored alert from its ``alert_states`` row."""
    return StoredAlert(
        row.rule, row.fingerprint, row.deployment, dict(row.labels), dict(row.annotations),
        tuple((r["url"], r["format"]) for r in row.receivers), row.state, row.active_since,
        row.fired_at, row.resolved_at, row.notified_at, row.value, row.updated_at,
    )  # fmt: skip


def baseline_of(row: Any) -> StoredBaseline:
    """A baseline from its ``alert_baselines`` row."""
    baseline = Baseline(row.mean, row.variance, row.observations)
    return StoredBaseline(row.rule, row.signal, baseline, row.updated_at)


def notification_of(row: Any) -> Notification:
    """An outbox entry from its ``alert_notifications`` row."""
    return Notification(
        row.id, row.rule, row.receiver, row.format, dict(row.payload), row.created_at,
        row.attempts, row.next_attempt_at, row.delivered_at, row.last_error, bool(row.given_up),
    )  # fmt: skip


def verdict_of(row: Any) -> DriftVerdict:
    """A verdict from its ``drift_results`` row (the report's features, scores as numbers)."""
    features = []
    for feature in row.report.get("features", []):
        features.append(
            FeatureScore(
                str(feature.get("name")),
                _number(feature.get("score")),
                _number(feature.get("threshold")),
                bool(feature.get("drifted")),
            )
        )
    return DriftVerdict(
        row.variant, row.version, row.window_start, row.window_end, tuple(features),
        row.evaluated_at,
    )  # fmt: skip


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
