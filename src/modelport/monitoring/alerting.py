"""Alert evaluation and notification payloads (pure: no I/O, no clock of its own).

The control plane's alert job (next) reads what a rule watches, asks these functions whether
its condition holds, steps each alert's state, and sends what changed. Everything here is a
function of plain data, so it is tested exhaustively without servers or sleeps.

- :func:`burn_rate` and :func:`slo_burning`: multi-window burn-rate alerting on a latency (or any
  ratio) objective. The error budget is ``1 - objective``; a window's burn rate is its bad share
  over the budget; a pair fires when both its long and its short window burn faster than the
  pair's factor (Beyer et al., *The Site Reliability Workbook*, O'Reilly 2018, chapter 5,
  "Alerting on SLOs": 14.4 over 1 h and 5 min spends 2% of a 30-day budget in an hour).
- :class:`Baseline`: an exponentially weighted mean and variance with a half-life in seconds,
  and the z-score of a new value against it (West, "Updating mean and variance estimates",
  CACM 22, 1979, in its exponentially weighted form: Finch, "Incremental calculation of
  weighted mean and variance", 2009).
- :func:`step`: an alert's life: inactive, pending while the condition holds for less than the
  rule's ``for``, firing, and resolved when it stops holding (as Prometheus rules behave).
- :func:`fingerprint`: Prometheus' label-set fingerprint (64-bit FNV-1a over the sorted names
  and values, each followed by the byte 0xff), so receivers deduplicate as they do for
  Alertmanager.
- :func:`alertmanager_payload` and :func:`slack_payload`: what a webhook receiver gets.
  Alertmanager's webhook format, version 4 (``version``, ``groupKey``, ``truncatedAlerts``,
  ``status``, ``receiver``, ``groupLabels``, ``commonLabels``, ``commonAnnotations``,
  ``externalURL``, and per alert ``status``, ``labels``, ``annotations``, ``startsAt``,
  ``endsAt``, ``generatorURL``, ``fingerprint``); a resolved alert has ``endsAt`` set, a firing
  one the zero time ``0001-01-01T00:00:00Z``, as Alertmanager sends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Literal

__all__ = [
    "ZERO_TIME",
    "Alert",
    "AlertState",
    "Baseline",
    "alertmanager_payload",
    "burn_rate",
    "fingerprint",
    "slack_payload",
    "slo_burning",
    "step",
]

ZERO_TIME: Final = "0001-01-01T00:00:00Z"
"""``endsAt`` of a firing alert in Alertmanager's payloads."""

_FNV_OFFSET: Final = 14695981039346656037
_FNV_PRIME: Final = 1099511628211
_MASK: Final = (1 << 64) - 1
_SEPARATOR: Final = 0xFF


def burn_rate(bad: float, total: float, objective: float) -> float:
    """How many times faster than the objective allows the error budget is being spent.

    Args:
        bad: Events outside the objective (requests slower than the threshold, failures).
        total: All events in the window.
        objective: The share that must be good (``0.99``).

    Returns:
        ``(bad / total) / (1 - objective)``; 0 for a window without events.

    Raises:
        ValueError: ``objective`` is not between 0 and 1, or the counts are negative or
            inconsistent.
    """
    if not 0 < objective < 1:
        raise ValueError(f"objective must be between 0 and 1, got {objective}")
    if bad < 0 or total < 0 or bad > total:
        raise ValueError(f"expected 0 <= bad <= total, got bad={bad}, total={total}")
    if total == 0:
        return 0.0
    return (bad / total) / (1 - objective)


def slo_burning(
    windows: Sequence[tuple[float, float, float]],
    counts: Mapping[float, tuple[float, float]],
    objective: float,
    min_events: int = 1,
) -> tuple[bool, list[dict[str, float]]]:
    """Whether any long/short window pair burns faster than its factor.

    Args:
        windows: ``(long_s, short_s, factor)`` pairs.
        counts: ``(bad, total)`` per window length in seconds (every length the pairs name).
        objective: The share that must be good.
        min_events: A window with fewer events burns nothing (a few slow requests of a few).

    Returns:
        Whether the condition holds, and each pair's burn rates (for the alert's annotations).

    Raises:
        KeyError: ``counts`` lacks a window a pair names.
    """
    report = []
    burning = False
    for long_s, short_s, factor in windows:
        rates = []
        for length in (long_s, short_s):
            bad, total = counts[length]
            rates.append(burn_rate(bad, total, objective) if total >= min_events else 0.0)
        fires = rates[0] > factor and rates[1] > factor
        burning = burning or fires
        report.append({"long_s": long_s, "short_s": short_s, "factor": factor,
                       "long_rate": rates[0], "short_rate": rates[1]})  # fmt: skip
    return burning, report


@dataclass(frozen=True, slots=True)
class Baseline:
    """An exponentially weighted mean and variance of a signal, with a half-life in seconds.

    Start with ``Baseline()`` and :meth:`update` it with each observation; :meth:`z` says how
    far a value is from it in standard deviations. The first observation sets the mean; the
    variance needs a few before :attr:`ready`.
    """

    mean: float = 0.0
    variance: float = 0.0
    observations: int = 0

    @property
    def ready(self) -> bool:
        """Whether enough observations were seen for a z-score to mean something (5)."""
        return self.observations >= 5

    def update(self, value: float, elapsed_s: float, half_life_s: float) -> Baseline:
        """The baseline after ``value``, observed ``elapsed_s`` after the previous one.

        Raises:
            ValueError: ``value`` is not finite, or the times are not positive.
        """
        if not math.isfinite(value):
            raise ValueError(f"a baseline takes finite values, got {value}")
        if elapsed_s <= 0 or half_life_s <= 0:
            raise ValueError("elapsed_s and half_life_s must be positive")
        if self.observations == 0:
            return Baseline(value, 0.0, 1)
        weight = 1.0 - 0.5 ** (elapsed_s / half_life_s)  # the new value's share
        delta = value - self.mean
        mean = self.mean + weight * delta
        variance = (1.0 - weight) * (self.variance + weight * delta * delta)
        return Baseline(mean, variance, self.observations + 1)

    def z(self, value: float) -> float:
        """How many standard deviations ``value`` is from the mean (0 while not :attr:`ready`)."""
        if not self.ready:
            return 0.0
        spread = math.sqrt(self.variance)
        if spread == 0.0:
            return 0.0 if value == self.mean else math.copysign(math.inf, value - self.mean)
        return (value - self.mean) / spread


AlertStatus = Literal["inactive", "pending", "firing"]


@dataclass(frozen=True, slots=True)
class AlertState:
    """Where one alert stands.

    Attributes:
        status: ``inactive``, ``pending`` (the condition holds, not yet for long enough) or
            ``firing``.
        active_since: When the condition started holding (``None`` while inactive).
        fired_at: When it started firing (``None`` unless firing).
    """

    status: AlertStatus = "inactive"
    active_since: datetime | None = None
    fired_at: datetime | None = None


def step(
    state: AlertState, holds: bool, now: datetime, for_s: float
) -> tuple[AlertState, Literal["firing", "resolved"] | None]:
    """An alert's next state, and the notification it calls for, if any.

    The condition must hold at every evaluation for ``for_s`` seconds before the alert fires
    (an evaluation where it does not resets the wait); a firing alert resolves at the first
    evaluation where the condition no longer holds.
    """
    if not holds:
        if state.status == "firing":
            return AlertState(), "resolved"
        return AlertState(), None
    since = state.active_since or now
    if state.status == "firing":
        return state, None
    if (now - since).total_seconds() >= for_s:
        return AlertState("firing", since, now), "firing"
    return replace(state, status="pending", active_since=since), None


def fingerprint(labels: Mapping[str, str]) -> str:
    """Prometheus' fingerprint of a label set: 16 hex digits (64-bit FNV-1a)."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8"):
                value = ((value ^ byte) * _FNV_PRIME) & _MASK
            value = ((value ^ _SEPARATOR) * _FNV_PRIME) & _MASK
    return f"{value:016x}"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as notified.

    Attributes:
        labels: ``alertname``, ``deployment``, ``severity`` and the rule's own.
        annotations: The rule's, plus what the evaluation found (``description``).
        status: ``firing`` or ``resolved``.
        starts_at: When it started firing.
        ends_at: When it resolved (``None`` while firing).
        generator_url: Where to see it (the control plane's alert listing).
    """

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: Literal["firing", "resolved"]
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""


def alertmanager_payload(
    receiver: str, alerts: Sequence[Alert], external_url: str = ""
) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4) for a group of alerts of one rule.

    Raises:
        ValueError: ``alerts`` is empty.
    """
    if not alerts:
        raise ValueError("a notification has at least one alert")
    common_labels = _common([a.labels for a in alerts])
    common_annotations = _common([a.annotations for a in alerts])
    group_labels = {k: v for k, v in common_labels.items() if k in ("alertname", "deployment")}
    group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": external_url,
        "alerts": [
            {
                "status": a.status,
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "startsAt": _rfc3339(a.starts_at),
                "endsAt": ZERO_TIME if a.ends_at is None else _rfc3339(a.ends_at),
                "generatorURL": a.generator_url,
                "fingerprint": fingerprint(a.labels),
            }
            for a in alerts
        ],
    }


def slack_payload(alerts: Sequence[Alert]) -> dict[str, Any]:
    """A Slack incoming-webhook payload: a ``text`` summary and a section per alert.

    Raises:
        ValueError: ``alerts`` is empty.
    """
    if not alerts:
        raise ValueError("a notification has at least one alert")
    lines = []
    for alert in alerts:
        mark = ":red_circle:" if alert.status == "firing" else ":large_green_circle:"
        name = alert.labels.get("alertname", "alert")
        where = alert.labels.get("deployment", "")
        summary = alert.annotations.get("summary") or alert.annotations.get("description", "")
        lines.append(f"{mark} *{alert.status.upper()}* {name} ({where}): {summary}".rstrip(": "))
    return {
        "text": "\n".join(lines),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": line}} for line in lines],
    }


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"alert times are timezone-aware, got {moment!r}")
    return moment.isoformat().replace("+00:00", "Z")
