"""The control plane's alert jobs: evaluate the rules, deliver the notifications, keep it small.

:func:`alert_jobs` returns three :class:`~modelport.service.jobs.Job` s, which
``service/wiring.py``'s ``control_plane_jobs`` adds to the others (so ``modelport
controlplane`` and every ``modelport up`` worker run them; each takes a lock file first, so one
process does the work at a time and the others skip their turn):

- ``evaluate-alerts``, every ``controlplane.alert_interval_s``, under ``HOME/alerts.lock``:
  :meth:`~modelport.service.alerts.AlertService.evaluate`.
- ``deliver-notifications``, every ``controlplane.notify_interval_s``, under
  ``HOME/notify.lock`` (its own: a slow receiver never delays an evaluation):
  :meth:`~modelport.service.notify.Notifier.deliver_due`.
- ``prune-alerts``, every ``controlplane.prune_interval_s``, under ``HOME/alerts.lock``:
  deletes signal rows older than the longest window any rule reads, and never younger than
  :data:`KEEP_S` (7 days); delivered or given-up notifications and resolved alerts older than
  :data:`KEEP_S`.

This module does not import ``service/wiring.py``, which imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Final

from modelport.core.clock import Clock, SystemClock
from modelport.core.settings import Settings
from modelport.experiments.store import DeploymentStore
from modelport.monitoring.alert_rules import AlertRuleStore
from modelport.monitoring.alert_state import AlertStateStore
from modelport.service.alert_conditions import needed_seconds
from modelport.service.alerts import AlertService, AlertTimings
from modelport.service.jobs import Job, JobSkipped, exclusive, turn
from modelport.service.notify import Notifier

__all__ = ["KEEP_S", "alert_jobs", "open_alerts"]

KEEP_S: Final = 7 * 86400.0
"""Seconds signals, finished notifications and resolved alerts are kept at least."""


@contextmanager
def open_alerts(settings: Settings, clock: Clock | None = None) -> Iterator[AlertService]:
    """Open the alert rules, the alert state and the deployments; the service over them.

    Raises:
        ConfigError: The metadata database cannot be reached.
    """
    clock = clock or SystemClock()
    url = settings.resolved_database_url()
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with ExitStack() as stack:
        rules = stack.enter_context(AlertRuleStore(url, clock))
        state = stack.enter_context(AlertStateStore(url))
        deployments = stack.enter_context(DeploymentStore(url, clock))
        timings = AlertTimings.from_settings(settings)
        yield AlertService(rules, state, deployments, clock, timings)


def alert_jobs(settings: Settings, clock: Clock | None = None) -> list[Job]:
    """The alert jobs (evaluation, delivery, retention), each under a lock file."""
    clock = clock or SystemClock()
    lock = settings.home / "alerts.lock"
    notify_lock = settings.home / "notify.lock"
    prune_lock = settings.home / "alerts-prune.lock"
    control = settings.controlplane

    def evaluate() -> str | None:
        with turn(lock, control.alert_interval_s), open_alerts(settings, clock) as service:
            return service.evaluate()

    def deliver() -> str | None:
        with exclusive(notify_lock) as held:
            if not held:
                raise JobSkipped("another process is delivering notifications")
            url = settings.resolved_database_url()
            with AlertStateStore(url) as state:
                return Notifier(state, clock).deliver_due()

    def prune() -> str | None:
        with turn(prune_lock, control.prune_interval_s), open_alerts(settings, clock) as service:
            return prune_alerts(service)

    return [
        Job("evaluate-alerts", control.alert_interval_s, evaluate),
        Job("deliver-notifications", control.notify_interval_s, deliver),
        Job("prune-alerts", control.prune_interval_s, prune),
    ]


def prune_alerts(service: AlertService) -> str | None:
    """Delete what no rule needs any more; a line of what went, ``None``: nothing did."""
    t = service.timings
    longest = max(
        (
            needed_seconds(s.rule, t.signal_interval_s, t.alert_interval_s)
            for s in service.rules.list()
        ),
        default=0.0,
    )
    now = service.clock.now()
    kept = timedelta(seconds=max(longest, KEEP_S))
    done = now - timedelta(seconds=KEEP_S)
    signals, notifications, alerts = service.state.prune(now - kept, done, done)
    if not (signals or notifications or alerts):
        return None
    return (
        f"deleted {signals} signal row(s), {notifications} finished notification(s) and "
        f"{alerts} resolved alert(s)"
    )
