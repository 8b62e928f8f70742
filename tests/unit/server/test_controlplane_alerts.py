"""The control plane's GET /v1/alerts in-process, through an ASGI transport.

Real stores on SQLite: alerts made by an evaluation of stored rules over stored signals, listed
like deployments (filtered to the deployments the caller may see).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport.core.alert import parse_alert_rule
from modelport.core.deployment import parse_deployment
from modelport.core.settings import Settings
from modelport.experiments.experiment_store import ExperimentStore
from modelport.experiments.feedback import FeedbackStore
from modelport.experiments.store import DeploymentStore
from modelport.monitoring.alert_rules import AlertRuleStore
from modelport.monitoring.alert_state import AlertStateStore
from modelport.monitoring.signals import SignalRow
from modelport.registry import MetadataStore
from modelport.security.identity import parse_grants
from modelport.security.store import SecurityStore
from modelport.server.controlplane.app import ControlPlaneApp
from modelport.server.controlplane.routes import control_openapi_document
from modelport.service.access import AccessControl
from modelport.service.alerts import AlertService
from modelport.service.deployments import DeploymentService
from modelport.service.experiments import ExperimentService, PredictionLogData
from modelport.testing import FakeClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rule(name: str, deployment: str) -> Any:
    return parse_alert_rule(
        {
            "apiVersion": "modelport.io/v1",
            "kind": "AlertRule",
            "metadata": {"name": name},
            "spec": {
                "deployment": deployment,
                "condition": {"errorRate": {"above": 0.05, "window": "5m"}},
                "receivers": [{"url": "http://127.0.0.1:9/hook"}],
            },
        }
    )


@pytest.fixture()
def apps(
    tmp_path: Path, access: AccessControl, store: SecurityStore
) -> Iterator[tuple[ControlPlaneApp, ControlPlaneApp]]:
    """An app serving the alerts, and one without them."""
    url, clock = Settings(home=tmp_path / "home").resolved_database_url(), FakeClock(T0)
    with (
        DeploymentStore(url, clock) as deployments,
        MetadataStore(url, clock) as registry,
        ExperimentStore(url, clock) as experiments,
        FeedbackStore(url, clock) as feedback,
        AlertRuleStore(url, clock) as rules,
        AlertStateStore(url) as state,
    ):
        rows = []
        for name in ("fraud-a", "credit-a"):
            doc = {
                "apiVersion": "modelport.io/v1",
                "kind": "Deployment",
                "metadata": {"name": name},
                "spec": {"variants": [{"name": "v", "model": "fraud@1", "weight": 100}]},
            }
            deployments.apply(parse_deployment(doc), "tests")
            rules.apply(rule(f"{name}-errors", name), "tests")
            rows += [
                SignalRow(
                    name,
                    "v",
                    T0 + timedelta(seconds=15 * i),
                    15.0,
                    requests=100,
                    errors=50,
                    edges=(0.1,),
                    buckets=(100, 0),
                )  # fmt: skip
                for i in range(20)
            ]
        state.add_signals(rows, "w")
        clock.advance(305)
        alerts = AlertService(rules, state, deployments, clock)
        alerts.evaluate()
        service = DeploymentService(deployments, registry, store)
        experiment_service = ExperimentService(
            experiments, service, store, clock, PredictionLogData(tmp_path / "p", feedback)
        )
        yield (
            ControlPlaneApp(access, service, experiment_service, 16384, alerts=alerts),
            ControlPlaneApp(access, service, experiment_service, 16384),
        )


def key(store: SecurityStore, *grants: str) -> dict[str, str]:
    _, token = store.create_key("test", parse_grants(list(grants)), None, "tests")
    return {"authorization": f"Bearer {token}"}


def get(app: ControlPlaneApp, path: str, headers: dict[str, str]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(go())


def test_alerts_are_listed_for_the_deployments_the_caller_may_see(
    apps: tuple[ControlPlaneApp, ControlPlaneApp], store: SecurityStore
) -> None:
    app, _ = apps
    admin = key(store, "admin")
    listed = get(app, "/v1/alerts", admin)
    assert listed.status_code == 200, listed.text
    alerts = listed.json()["alerts"]
    assert [(a["rule"], a["state"]) for a in alerts] == [
        ("credit-a-errors", "firing"), ("fraud-a-errors", "firing"),
    ]  # fmt: skip
    assert alerts[0]["pendingNotifications"] == 1 and alerts[0]["value"] == pytest.approx(0.5)
    assert alerts[0]["labels"]["deployment"] == "credit-a" and alerts[0]["since"]
    only = get(app, "/v1/alerts?deployment=fraud-a&all=true", admin).json()["alerts"]
    assert [a["rule"] for a in only] == ["fraud-a-errors"]
    viewer = key(store, "viewer:fraud-*")
    assert [a["rule"] for a in get(app, "/v1/alerts", viewer).json()["alerts"]] == [
        "fraud-a-errors"
    ]
    assert get(app, "/v1/alerts", {}).status_code == 401


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?team=risk", "unknown query parameter 'team'"),
        ("?all=maybe", "expected true or false"),
        ("?deployment=a&deployment=b", "given more than once"),
    ],
)
def test_bad_queries_are_400(
    apps: tuple[ControlPlaneApp, ControlPlaneApp], store: SecurityStore, query: str, message: str
) -> None:
    reply = get(apps[0], f"/v1/alerts{query}", key(store, "admin"))
    assert reply.status_code == 400 and message in reply.json()["error"]


def test_a_server_without_the_alerts_answers_404(
    apps: tuple[ControlPlaneApp, ControlPlaneApp], store: SecurityStore
) -> None:
    reply = get(apps[1], "/v1/alerts", key(store, "admin"))
    assert reply.status_code == 404 and "alerts are not served" in reply.json()["error"]


def test_the_openapi_document_describes_the_route() -> None:
    document = control_openapi_document()
    operation = document["paths"]["/v1/alerts"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["deployment", "all"]
    assert "AlertList" in document["components"]["schemas"]
