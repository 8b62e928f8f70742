"""What an evaluation reads of the signals: the timings, and each deployment's rows, read once.

Gateway processes end their buckets on multiples of ``monitoring.signal_interval_s`` and write
them a moment later; an evaluation reads windows that end on the latest boundary at least
:func:`settle_seconds` old, so every process's row of the last bucket is there.
:class:`SignalReader` reads each deployment's rows once per evaluation, over the longest window
any of its rules needs (:func:`~modelport.service.alert_conditions.needed_seconds`), and hands
each rule a :class:`~modelport.service.alert_conditions.SignalWindow` with the deployment's
variants now; a deployment that no longer exists has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from modelport.core.alert import AlertRule
from modelport.core.errors import NotFound
from modelport.core.settings import Settings
from modelport.experiments.store import StoredDeployment
from modelport.monitoring.alert_state import AlertStateStore
from modelport.monitoring.signals import boundary
from modelport.service.alert_conditions import SignalWindow, needed_seconds

__all__ = ["AlertTimings", "DeploymentSource", "SignalReader", "settle_seconds"]


class DeploymentSource(Protocol):
    """Where deployments are read (the deployment store)."""

    def get(self, name: str) -> StoredDeployment:
        """The deployment called ``name``.

        Raises:
            NotFound: There is none.
        """
        ...


@dataclass(frozen=True, slots=True)
class AlertTimings:
    """The intervals evaluation depends on (the settings', by default).

    Attributes:
        signal_interval_s: How often gateway processes write their signals.
        alert_interval_s: How often rules are evaluated.
        repeat_interval_s: How long before a firing alert is notified again.
    """

    signal_interval_s: float = 15.0
    alert_interval_s: float = 15.0
    repeat_interval_s: float = 14400.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertTimings:
        """The timings ``settings`` configure."""
        control = settings.controlplane
        return cls(
            settings.monitoring.signal_interval_s,
            control.alert_interval_s,
            control.alert_repeat_interval_s,
        )


def settle_seconds(signal_interval_s: float) -> float:
    """How long after a bucket ends it is read: every writer has written it by then."""
    return min(signal_interval_s / 2, 5.0)


class SignalReader:
    """Each deployment's signals, read once per evaluation over the longest window it needs.

    Args:
        state: Where the signals are.
        deployments: Where deployments are (their variants; whether they exist).
        timings: The intervals.
        now: When the evaluation runs.
        rules: The rules it evaluates.
    """

    def __init__(
        self,
        state: AlertStateStore,
        deployments: DeploymentSource,
        timings: AlertTimings,
        now: datetime,
        rules: Sequence[AlertRule],
    ) -> None:
        self._state = state
        self._deployments = deployments
        self._timings = t = timings
        settled = now - timedelta(seconds=settle_seconds(t.signal_interval_s))
        self.until = boundary(settled, t.signal_interval_s)
        self._needed: dict[str, float] = {}
        for rule in rules:
            seconds = needed_seconds(rule, t.signal_interval_s, t.alert_interval_s)
            name = rule.spec.deployment
            self._needed[name] = max(self._needed.get(name, 0.0), seconds)
        self._read: dict[str, SignalWindow | None] = {}

    def of(self, deployment: str) -> SignalWindow | None:
        """The deployment's signals; ``None`` when it does not exist."""
        if deployment not in self._read:
            self._read[deployment] = self._load(deployment)
        return self._read[deployment]

    def _load(self, deployment: str) -> SignalWindow | None:
        try:
            stored = self._deployments.get(deployment)
        except NotFound:
            return None
        variants = [variant.name for variant in stored.deployment.spec.variants]
        t = self._timings
        seconds = self._needed.get(deployment, 0.0)
        rows = []
        if seconds > 0:
            since = self.until - timedelta(seconds=seconds)
            rows = self._state.signals(deployment, since, self.until)
        return SignalWindow(rows, self.until, t.signal_interval_s, t.alert_interval_s, variants)
