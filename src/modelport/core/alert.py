"""The AlertRule resource: a condition on a deployment, held for a while, sent to receivers.

Declared in YAML beside deployments and applied the same way::

    apiVersion: modelport.io/v1
    kind: AlertRule
    metadata:
      name: fraud-latency
    spec:
      deployment: fraud
      severity: critical
      for: 2m
      condition:
        latencySlo:
          threshold: 0.25            # seconds: a request slower than this is "bad"
          objective: 0.99            # 99% of requests within the threshold
          windows:                   # multi-window burn rates (Google SRE workbook, ch. 5)
            - {long: 1h, short: 5m, burnRate: 14.4}
            - {long: 6h, short: 30m, burnRate: 6}
      labels: {team: risk}
      annotations:
        summary: fraud answers slower than its SLO allows
        runbook: https://wiki.example.com/runbooks/fraud-latency
      receivers:
        - {url: https://alerts.example.com/hook}          # Alertmanager webhook format (v4)
        - {url: https://hooks.slack.com/services/T/B/X, format: slack}

A rule has exactly one condition: ``latencySlo`` (burn rate of a latency objective),
``errorRate`` (share of failed requests over a window), ``driftScore`` (a feature's drift
verdict or score), ``trafficAnomaly`` (request rate or latency far from its recent baseline: an
EWMA z-score, with a minimum volume), ``modelNotReady`` and ``queueSaturation``. ``for`` is how
long the condition must hold before the alert fires. How each is evaluated is in
:mod:`modelport.monitoring.alerting`.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from modelport.core.refs import validate_model_name
from modelport.core.resources import Metadata, Spec, checked, parse_duration, parse_resource

__all__ = [
    "AlertRule",
    "AlertRuleSpec",
    "BurnWindow",
    "Condition",
    "DriftScore",
    "ErrorRate",
    "LatencySlo",
    "ModelNotReady",
    "QueueSaturation",
    "Receiver",
    "TrafficAnomaly",
    "parse_alert_rule",
]


class BurnWindow(Spec):
    """A pair of windows and the burn rate both must exceed (the SRE workbook's rule)."""

    long: float
    """The long window (``1h``): the condition's significance."""

    short: float
    """The short window (``5m``): that it is still happening (the alert resolves fast)."""

    burn_rate: float = Field(gt=1.0)
    """How many times faster than the objective allows the error budget is being spent."""

    _long = field_validator("long", "short", mode="before")(lambda v: parse_duration(v))

    @model_validator(mode="after")
    def _ordered(self) -> BurnWindow:
        if not 0 < self.short < self.long:
            raise ValueError("short must be more than 0 and less than long")
        return self


class LatencySlo(Spec):
    """A latency objective, alerted on by multi-window burn rates."""

    threshold: float = Field(gt=0)
    """Seconds: a request slower than this spends error budget."""

    objective: float = Field(gt=0, lt=1)
    """The share of requests that must be within the threshold (``0.99``)."""

    windows: list[BurnWindow] = Field(
        default_factory=lambda: [
            BurnWindow(long=3600.0, short=300.0, burn_rate=14.4),
            BurnWindow(long=21600.0, short=1800.0, burn_rate=6.0),
        ],
        min_length=1,
    )
    """Any pair firing fires the condition; default: the workbook's page-worthy pairs."""


class ErrorRate(Spec):
    """The share of requests that failed on the server's side, over a window."""

    above: float = Field(gt=0, lt=1)
    """The share that fires the condition."""

    window: float = 300.0
    """Seconds (or ``5m``) the share is computed over."""

    min_requests: int = Field(default=100, ge=1)
    """Fewer requests in the window decide nothing (a few failures of a few requests)."""

    _window = field_validator("window", mode="before")(lambda v: parse_duration(v))


class DriftScore(Spec):
    """A feature's drift, as the drift job scores each window."""

    feature: str = "*"
    """The feature (``input[0]``, ``output:predict``), or ``*`` for any."""

    above: float | None = Field(default=None, ge=0)
    """A score that fires the condition; ``None``: the drift job's own verdict."""

    window: float = 3600.0
    """The drift job's window the score comes from."""

    _window = field_validator("window", mode="before")(lambda v: parse_duration(v))


class TrafficAnomaly(Spec):
    """A signal far from its recent baseline (an exponentially weighted mean and variance)."""

    signal: Literal["request_rate", "latency_p99", "error_rate"] = "request_rate"
    """What is watched."""

    z_score: float = Field(default=4.0, gt=0)
    """How many baseline standard deviations away fires the condition (either direction)."""

    half_life: float = 3600.0
    """How fast the baseline forgets (seconds, or ``1h``)."""

    min_requests: int = Field(default=100, ge=1)
    """Evaluations with fewer requests are not judged (and do not update the baseline)."""

    _half_life = field_validator("half_life", mode="before")(lambda v: parse_duration(v))


class ModelNotReady(Spec):
    """A variant of the deployment cannot answer."""


class QueueSaturation(Spec):
    """A batcher's queue fuller than a share of its capacity."""

    above: float = Field(default=0.8, gt=0, le=1)
    """The share of the queue's capacity that fires the condition."""


class Condition(Spec):
    """Exactly one of the conditions."""

    latency_slo: LatencySlo | None = None
    error_rate: ErrorRate | None = None
    drift_score: DriftScore | None = None
    traffic_anomaly: TrafficAnomaly | None = None
    model_not_ready: ModelNotReady | None = None
    queue_saturation: QueueSaturation | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            names = ", ".join(
                str(field.alias or name) for name, field in type(self).model_fields.items()
            )
            raise ValueError(f"give exactly one condition of {names}; got {len(given)}")
        return self

    @property
    def kind(self) -> str:
        """The condition's name (``latency_slo``...)."""
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)


class Receiver(Spec):
    """Where notifications go."""

    url: str
    """An HTTP(S) endpoint that takes a POST."""

    format: Literal["alertmanager", "slack"] = "alertmanager"
    """``alertmanager``: Alertmanager's webhook payload (version 4); ``slack``: Slack's incoming
    webhook payload (``text`` and blocks)."""

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url


class AlertRuleSpec(Spec):
    """What is watched, how long it must hold, and who is told."""

    deployment: str
    """The deployment watched."""

    condition: Condition
    """What fires the alert."""

    for_: float = Field(default=0.0, alias="for")
    """How long the condition must hold before the alert fires (seconds, or ``5m``)."""

    severity: Literal["critical", "warning", "info"] = "warning"
    """Carried as the alert's ``severity`` label."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels of the alert (``team: risk``)."""

    annotations: dict[str, str] = Field(default_factory=dict)
    """Extra annotations (``summary``, ``runbook``...)."""

    receivers: list[Receiver] = Field(default_factory=list)
    """Where notifications go; none: the alert is only listed (``modelport alerts list``)."""

    _for = field_validator("for_", mode="before")(lambda v: parse_duration(v))

    @field_validator("deployment")
    @classmethod
    def _deployment(cls, name: str) -> str:
        return checked(validate_model_name, name)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        reserved = {"alertname", "deployment", "severity"} & labels.keys()
        if reserved:
            raise ValueError(f"{sorted(reserved)} are set by modelport; choose other names")
        for name in labels:
            if not name.replace("_", "a").isalnum() or name[0].isdigit():
                raise ValueError(f"label {name!r} is not a Prometheus label name")
        return labels


class AlertRule(Spec):
    """An AlertRule document."""

    api_version: Literal["modelport.io/v1"]
    """Always ``modelport.io/v1``."""

    kind: Literal["AlertRule"]
    """Always ``AlertRule``."""

    metadata: Metadata
    """Name and labels."""

    spec: AlertRuleSpec
    """What is watched and who is told."""

    @property
    def name(self) -> str:
        """The rule's name (the alert's ``alertname``)."""
        return self.metadata.name

    def document(self) -> dict[str, Any]:
        """The rule as a document (camelCase keys, defaults included)."""
        return self.model_dump(mode="json", by_alias=True)


def parse_alert_rule(document: object) -> AlertRule:
    """Validate an AlertRule document (parsed YAML or JSON).

    Raises:
        InvalidInput: The document is not a valid AlertRule; the message names every bad field
            by its path in the document and says what was expected.
    """
    return parse_resource(AlertRule, document)
