"""The control plane's /v1/alertrules in-process, through an ASGI transport.

Apply (PUT and POST, JSON and YAML, idempotent), read, list (by deployment), delete; bad bodies
are 400 naming the field and write nothing; a rule of an unknown deployment is 404; every
route is authorised on the deployment the rule watches and every change is audited. The app
runs over real stores on SQLite (deployments, alert rules, registry and security store in one
data directory).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport.core.clock import SystemClock
from modelport.core.settings import Settings
from modelport.experiments.experiment_store import ExperimentStore
from modelport.experiments.feedback import FeedbackStore
from modelport.experiments.store import DeploymentStore
from modelport.monitoring.alert_rules import AlertRuleStore
from modelport.registry import MetadataStore
from modelport.security.identity import parse_grants
from modelport.security.store import SecurityStore
from modelport.server.controlplane.app import ControlPlaneApp
from modelport.server.controlplane.routes import control_openapi_document
from modelport.service.access import AccessControl
from modelport.service.alert_rules import AlertRuleService
from modelport.service.deployments import DeploymentService
from modelport.service.experiments import ExperimentService, PredictionLogData
from tests.contract.registry._support import new_version

MAX_BODY = 16 * 1024

RULE: dict[str, Any] = {
    "apiVersion": "modelport.io/v1",
    "kind": "AlertRule",
    "metadata": {"name": "fraud-errors"},
    "spec": {
        "deployment": "fraud-a",
        "for": "2m",
        "condition": {"errorRate": {"above": 0.05}},
    },
}

YAML = """\
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {name: fraud-latency}
spec:
  deployment: fraud-a
  severity: critical
  condition:
    latencySlo: {threshold: 0.25, objective: 0.99}
"""


def rule(name: str = "fraud-errors", deployment: str = "fraud-a", **spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(RULE)
    doc["metadata"]["name"] = name
    doc["spec"]["deployment"] = deployment
    doc["spec"].update(spec)
    return doc


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"variants": [{"name": "v", "model": "fraud@1", "weight": 100}]},
    }


@pytest.fixture()
def app(tmp_path: Path, access: AccessControl, store: SecurityStore) -> Iterator[ControlPlaneApp]:
    url, clock = Settings(home=tmp_path / "home").resolved_database_url(), SystemClock()
    with (
        DeploymentStore(url, clock) as deployments,
        MetadataStore(url, clock) as registry,
        ExperimentStore(url, clock) as experiments,
        FeedbackStore(url, clock) as feedback,
        AlertRuleStore(url, clock) as rules,
    ):
        registry.create_version(new_version("fraud"))
        service = DeploymentService(deployments, registry, store)
        service.apply([deployment("fraud-a"), deployment("credit-a")], "tests")
        data = PredictionLogData(tmp_path / "predictions", feedback)
        yield ControlPlaneApp(
            access,
            service,
            ExperimentService(experiments, service, store, clock, data),
            MAX_BODY,
            alert_rules=AlertRuleService(rules, deployments, store),
        )


@pytest.fixture()
def admin(store: SecurityStore) -> dict[str, str]:
    return key(store, "admin")


def key(store: SecurityStore, *grants: str) -> dict[str, str]:
    _, token = store.create_key("test", parse_grants(list(grants)), None, "tests")
    return {"authorization": f"Bearer {token}"}


def call(
    app: ControlPlaneApp,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, headers=headers, **kwargs)

    return asyncio.run(go())


def names(app: ControlPlaneApp, headers: dict[str, str], query: str = "") -> list[str]:
    listed = call(app, "GET", f"/v1/alertrules{query}", headers)
    assert listed.status_code == 200, listed.text
    return [r["name"] for r in listed.json()["alertRules"]]


def test_put_post_get_list_and_delete(app: ControlPlaneApp, admin: dict[str, str]) -> None:
    created = call(app, "PUT", "/v1/alertrules/fraud-errors", admin, json=rule())
    assert created.status_code == 200, created.text
    (first,) = created.json()["applied"]
    assert (first["name"], first["generation"], first["created"], first["changed"]) == (
        "fraud-errors", 1, True, True,
    )  # fmt: skip
    again = call(app, "PUT", "/v1/alertrules/fraud-errors", admin, json=rule()).json()
    assert again["applied"] == [
        {"name": "fraud-errors", "generation": 1, "created": False, "changed": False, "changes": []}
    ]
    changed = call(app, "PUT", "/v1/alertrules/fraud-errors", admin, json=rule(severity="info"))
    assert changed.json()["applied"][0]["changes"] == ['spec.severity: "warning" -> "info"']
    posted = call(
        app,
        "POST",
        "/v1/alertrules",
        {**admin, "content-type": "application/yaml"},
        content=YAML
        + "---\n"
        + YAML.replace("fraud-latency", "credit-latency").replace(
            "deployment: fraud-a", "deployment: credit-a"
        ),
    )
    assert posted.status_code == 200, posted.text
    assert [a["name"] for a in posted.json()["applied"]] == ["fraud-latency", "credit-latency"]
    assert names(app, admin) == ["credit-latency", "fraud-errors", "fraud-latency"]
    assert names(app, admin, "?deployment=fraud-a") == ["fraud-errors", "fraud-latency"]
    assert names(app, admin, "?deployment=nothing") == []
    shown = call(app, "GET", "/v1/alertrules/fraud-latency", admin).json()
    assert set(shown) == {
        "name", "deployment", "generation", "createdAt", "createdBy", "updatedAt", "updatedBy",
        "document",
    }  # fmt: skip
    assert shown["document"]["spec"]["condition"]["latencySlo"]["windows"][1]["long"] == 21600
    removed = call(app, "DELETE", "/v1/alertrules/fraud-latency", admin)
    assert removed.status_code == 200 and removed.json()["name"] == "fraud-latency"
    assert call(app, "GET", "/v1/alertrules/fraud-latency", admin).status_code == 404
    gone = call(app, "DELETE", "/v1/alertrules/fraud-latency", admin)
    assert gone.status_code == 404 and "no alert rule 'fraud-latency'" in gone.json()["error"]


@pytest.mark.parametrize(
    ("body", "media", "message"),
    [
        ("{not json", "application/json", "not valid JSON"),
        ('{"kind": "AlertRule"', "application/json", "not valid JSON"),
        ("[1, 2]", "application/json", "document 1 is a number"),
        ("kind: AlertRule\n  bad: [", "application/yaml", "not valid YAML"),
        ("just text", "application/yaml", "document 1 is a str"),
        ("{}", "application/json", "document 1 has no kind"),
        ('{"kind": "Deployment"}', "application/json", "kind 'Deployment' is not one"),
        ("<x/>", "application/xml", "Content-Type 'application/xml' is not accepted"),
    ],
)
def test_a_malformed_body_is_400_and_writes_nothing(
    app: ControlPlaneApp, admin: dict[str, str], body: str, media: str, message: str
) -> None:
    reply = call(
        app, "PUT", "/v1/alertrules/x", {**admin, "content-type": media}, content=body.encode()
    )
    assert reply.status_code == 400, reply.text
    assert message in reply.json()["error"], reply.json()
    assert names(app, admin) == []


def test_bad_documents_are_400_naming_the_field(
    app: ControlPlaneApp, admin: dict[str, str]
) -> None:
    bad = rule(condition={"errorRate": {"above": 2}})
    reply = call(app, "PUT", "/v1/alertrules/fraud-errors", admin, json=bad)
    assert reply.status_code == 400 and "spec.condition.errorRate.above" in reply.json()["error"]
    wrong = rule(condition={"latencySlo": {"threshold": 0.2, "objective": 0.99, "windows": [
        {"long": "5m", "short": "1h", "burnRate": 2}]}})  # fmt: skip
    reply = call(app, "PUT", "/v1/alertrules/fraud-errors", admin, json=wrong)
    assert reply.status_code == 400
    assert "spec.condition.latencySlo.windows[0]" in reply.json()["error"]
    other = call(app, "PUT", "/v1/alertrules/other", admin, json=rule())
    assert other.status_code == 400
    assert "metadata.name 'fraud-errors' does not match" in other.json()["error"]
    two = call(app, "PUT", "/v1/alertrules/fraud-errors", admin, json=[rule(), rule()])
    assert two.status_code == 400 and "takes one document" in two.json()["error"]
    mixed = call(app, "POST", "/v1/alertrules", admin, json=[rule("good"), bad])
    assert mixed.status_code == 400 and "document 2" in mixed.json()["error"]
    assert names(app, admin) == []


def test_a_rule_of_an_unknown_deployment_is_404_naming_it(
    app: ControlPlaneApp, admin: dict[str, str]
) -> None:
    reply = call(app, "POST", "/v1/alertrules", admin, json=[rule(), rule("x", "ghost")])
    assert reply.status_code == 404
    assert "no deployment 'ghost'" in reply.json()["error"]
    assert names(app, admin) == []


def test_bad_query_strings_are_400(app: ControlPlaneApp, admin: dict[str, str]) -> None:
    for query, message in (
        ("?deploymnet=fraud-a", "unknown query parameter 'deploymnet'"),
        ("?deployment=a&deployment=b", "given 2 times"),
        ("?deployment", "not NAME=VALUE pairs"),
    ):
        reply = call(app, "GET", f"/v1/alertrules{query}", admin)
        assert reply.status_code == 400 and message in reply.json()["error"], (query, reply.text)


def test_rules_are_authorised_on_their_deployment(
    app: ControlPlaneApp, store: SecurityStore, admin: dict[str, str]
) -> None:
    call(app, "POST", "/v1/alertrules", admin, json=[rule(), rule("credit-errors", "credit-a")])
    assert call(app, "GET", "/v1/alertrules").status_code == 401
    predictor = key(store, "predictor")
    assert (
        call(app, "PUT", "/v1/alertrules/fraud-errors", predictor, json=rule()).status_code == 403
    )
    fraud_viewer = key(store, "viewer:fraud-*")
    assert names(app, fraud_viewer) == ["fraud-errors"]
    assert call(app, "GET", "/v1/alertrules/fraud-errors", fraud_viewer).status_code == 200
    assert call(app, "GET", "/v1/alertrules/credit-errors", fraud_viewer).status_code == 403
    fraud_deployer = key(store, "deployer:fraud-*")
    put = call(
        app, "PUT", "/v1/alertrules/fraud-errors", fraud_deployer, json=rule(severity="info")
    )
    assert put.status_code == 200, put.text
    refused = call(
        app, "PUT", "/v1/alertrules/credit-errors", fraud_deployer, json=rule("credit-errors")
    )
    assert refused.status_code == 403 and "credit-a" in refused.json()["error"]  # moving it
    assert call(app, "DELETE", "/v1/alertrules/credit-errors", fraud_deployer).status_code == 403
    assert call(app, "DELETE", "/v1/alertrules/fraud-errors", fraud_deployer).status_code == 200
    assert names(app, admin) == ["credit-errors"]
    changes = [
        (e.actor, e.action, e.target, e.outcome)
        for e in store.iter_audit()
        if e.action.startswith("alertrule.")
    ]
    assert changes[-2:] == [
        (changes[-1][0], "alertrule.delete", "fraud-errors", "started"),
        (changes[-1][0], "alertrule.delete", "fraud-errors", "ok"),
    ]
    assert changes[-1][0].startswith("key:")


def test_without_alert_rules_the_routes_are_404(
    access: AccessControl, app: ControlPlaneApp, admin: dict[str, str]
) -> None:
    bare = ControlPlaneApp(access, app.deployments, app.experiments, MAX_BODY)
    reply = call(bare, "GET", "/v1/alertrules", admin)
    assert reply.status_code == 404 and "not served" in reply.json()["error"]


def test_the_openapi_document_describes_the_alert_rule_routes() -> None:
    document = control_openapi_document()
    paths = document["paths"]
    assert set(paths["/v1/alertrules"]) == {"get", "post"}
    assert set(paths["/v1/alertrules/{name}"]) == {"get", "put", "delete"}
    assert paths["/v1/alertrules"]["get"]["parameters"][0]["name"] == "deployment"
    schema = document["components"]["schemas"]["AlertRule"]
    assert schema["properties"]["kind"]["enum"] == ["AlertRule"]
