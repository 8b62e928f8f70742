"""The alert jobs: their names and intervals from the settings, their locks, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelport.core.alert import parse_alert_rule
from modelport.core.settings import Settings
from modelport.monitoring.alert_records import Evaluation, NewNotification
from modelport.monitoring.alert_rules import AlertRuleStore
from modelport.monitoring.alert_state import AlertStateStore
from modelport.monitoring.signals import SignalRow
from modelport.service.alert_jobs import KEEP_S, alert_jobs, open_alerts, prune_alerts
from modelport.service.jobs import JobSkipped, exclusive
from modelport.testing import FakeClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        controlplane={"alert_interval_s": 2, "notify_interval_s": 0.5, "prune_interval_s": 60},
    )


def test_the_jobs_run_at_the_configured_intervals(settings: Settings) -> None:
    jobs = {job.name: job.interval_s for job in alert_jobs(settings, FakeClock(T0))}
    assert jobs == {"evaluate-alerts": 2, "deliver-notifications": 0.5, "prune-alerts": 60}


def test_evaluation_skips_its_turn_while_another_process_holds_the_lock(
    settings: Settings,
) -> None:
    evaluate, deliver, prune = (job.run for job in alert_jobs(settings, FakeClock(T0)))
    assert evaluate() is None and deliver() is None and prune() is None  # nothing to do
    with exclusive(settings.home / "alerts.lock") as held:
        assert held
        with pytest.raises(JobSkipped):
            evaluate()
        with pytest.raises(JobSkipped):
            prune()
        assert deliver() is None  # delivery has its own lock
    with exclusive(settings.home / "notify.lock"), pytest.raises(JobSkipped):
        deliver()


def test_retention_keeps_a_week_or_the_longest_window_a_rule_reads(settings: Settings) -> None:
    clock = FakeClock(T0)
    url = settings.resolved_database_url()
    with open_alerts(settings, clock) as service:
        state = service.state
        old = [SignalRow("fraud", "a", T0 - timedelta(days=d), 15.0, samples=1) for d in (8, 10)]
        state.add_signals(old, "w")
        state.save(
            Evaluation(
                T0 - timedelta(days=8),
                notifications=[NewNotification("r", "http://127.0.0.1:9/", "slack", {})],
            )
        )
        [entry] = state.due(T0)
        state.attempted(entry.id, 1, delivered_at=T0 - timedelta(days=8))
        with AlertRuleStore(url, clock) as rules:
            rule = {
                "apiVersion": "modelport.io/v1",
                "kind": "AlertRule",
                "metadata": {"name": "slow"},
                "spec": {
                    "deployment": "fraud",
                    "condition": {"errorRate": {"above": 0.1, "window": "9d"}},
                },
            }
            rules.apply(parse_alert_rule(rule), "tests")
            assert prune_alerts(service) == (
                "deleted 1 signal row(s), 1 finished notification(s) and 0 resolved alert(s)"
            )
            rules.delete("slow")
        assert prune_alerts(service) is not None  # now a week is the longest kept
    with AlertStateStore(url) as state:
        assert state.signals("fraud", T0 - timedelta(days=30), T0) == []
    assert KEEP_S == 7 * 86400
