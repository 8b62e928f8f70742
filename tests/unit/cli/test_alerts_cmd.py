"""``modelport alerts list``: the alerts of a data directory, as a table or as the API's JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelport.cli.main import app
from modelport.core.alert import parse_alert_rule
from modelport.core.deployment import parse_deployment
from modelport.core.settings import Settings
from modelport.experiments.store import DeploymentStore
from modelport.monitoring.alert_rules import AlertRuleStore
from modelport.monitoring.alert_state import AlertStateStore
from modelport.monitoring.signals import SignalRow
from modelport.service.alerts import AlertService
from modelport.testing import FakeClock


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory with one firing alert on ``fraud``, evaluated a minute ago."""
    home = tmp_path / "home"
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    url = Settings(home=home).resolved_database_url()
    now = datetime.now(UTC)
    clock = FakeClock(now - timedelta(minutes=6))
    home.mkdir()
    with (
        DeploymentStore(url, clock) as deployments,
        AlertRuleStore(url, clock) as rules,
        AlertStateStore(url) as state,
    ):
        doc = {
            "apiVersion": "modelport.io/v1",
            "kind": "Deployment",
            "metadata": {"name": "fraud"},
            "spec": {"variants": [{"name": "a", "model": "fraud@1", "weight": 100}]},
        }
        deployments.apply(parse_deployment(doc), "tests")
        rule = {
            "apiVersion": "modelport.io/v1",
            "kind": "AlertRule",
            "metadata": {"name": "fraud-ready"},
            "spec": {"deployment": "fraud", "condition": {"modelNotReady": {}},
                     "labels": {"team": "risk"}},
        }  # fmt: skip
        rules.apply(parse_alert_rule(rule), "tests")
        start = clock.now()
        state.add_signals(
            [SignalRow("fraud", "a", start + timedelta(seconds=15 * i), 15.0, samples=15,
                       not_ready=15) for i in range(20)],
            "w",
        )  # fmt: skip
        clock.advance(305)
        AlertService(rules, state, deployments, clock).evaluate()
    return home


def test_the_table_shows_each_alert_with_its_labels(home: Path) -> None:
    done = CliRunner().invoke(app, ["alerts", "list"])
    assert done.exit_code == 0, done.output
    assert "fraud-ready" in done.output and "firing" in done.output
    assert "team=risk" in done.output and "variant=a" in done.output
    empty = CliRunner().invoke(app, ["alerts", "list", "--deployment", "other"])
    assert "no alerts firing or pending on other" in empty.output


def test_json_is_what_the_api_answers(home: Path) -> None:
    done = CliRunner().invoke(app, ["alerts", "list", "--all", "-o", "json"])
    assert done.exit_code == 0, done.output
    [alert] = json.loads(done.output)["alerts"]
    assert alert["rule"] == "fraud-ready" and alert["labels"]["variant"] == "a"
    assert alert["value"] == 1.0 and alert["pendingNotifications"] == 0
