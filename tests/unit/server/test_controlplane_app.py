"""The control plane's ASGI app in-process: /v1/deployments through an ASGI transport.

Apply (PUT and POST, JSON and YAML, idempotent), read, list, delete; every bad input a 4xx with
nothing written; authorisation per route and per document; the audit trail; the replica probe;
health probes; the OpenAPI document and the route table. The app runs over a real
DeploymentService on SQLite (deployments, registry and security store in one data directory).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis

from modelport.core.clock import SystemClock
from modelport.core.settings import Settings
from modelport.experiments.experiment_store import ExperimentStore
from modelport.experiments.feedback import FeedbackStore
from modelport.experiments.store import DeploymentStore
from modelport.monitoring import ControlPlaneMetrics, Exposition
from modelport.registry import MetadataStore
from modelport.security.identity import parse_grants
from modelport.security.store import SecurityStore
from modelport.server.controlplane.app import ControlPlaneApp, parse_documents
from modelport.server.controlplane.routes import CONTROL_ROUTES, control_openapi_document
from modelport.server.rest.errors import STATUS_BY_KIND
from modelport.server.rest.routes import Router
from modelport.service.access import AccessControl
from modelport.service.deployments import DeploymentService
from modelport.service.experiments import ExperimentService, PredictionLogData
from tests.contract.registry._support import new_version

MAX_BODY = 16 * 1024


def doc(
    name: str = "fraud-a", *weights: float, model: str = "fraud@1", **spec: Any
) -> dict[str, Any]:
    weights = weights or (100,)
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "variants": [
                {
                    "name": f"v{i}",
                    "model": model,
                    "weight": w,
                    "role": "control" if i == 0 else "treatment",
                }
                for i, w in enumerate(weights)
            ],
            **spec,
        },
    }


YAML = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata:
  name: {name}
spec:
  variants:
    - name: current
      model: fraud@1
      weight: {current}
    - name: candidate
      model: fraud@latest
      weight: {candidate}
      role: treatment
"""


class FakeProbe:
    """A replica probe that fails the targets it is told to."""

    def __init__(self, failing: dict[str, str] | None = None) -> None:
        self.failing = failing or {}
        self.calls: list[tuple[list[str], list[str]]] = []

    def unreachable(self, urls: Sequence[str], dns: Sequence[str]) -> dict[str, str]:
        self.calls.append((list(urls), list(dns)))
        return {t: why for t, why in self.failing.items() if t in urls or t in dns}


@pytest.fixture()
def service(tmp_path: Path, store: SecurityStore) -> Iterator[DeploymentService]:
    url, clock = Settings(home=tmp_path / "home").resolved_database_url(), SystemClock()
    with DeploymentStore(url, clock) as deployments, MetadataStore(url, clock) as registry:
        registry.create_version(new_version("fraud"))
        registry.create_version(new_version("fraud"))
        registry.set_alias("fraud", "latest", 2, "tests")
        yield DeploymentService(deployments, registry, store)


@pytest.fixture()
def experiments(
    tmp_path: Path, service: DeploymentService, store: SecurityStore
) -> Iterator[ExperimentService]:
    url, clock = Settings(home=tmp_path / "home").resolved_database_url(), SystemClock()
    with ExperimentStore(url, clock) as stored, FeedbackStore(url, clock) as feedback:
        data = PredictionLogData(tmp_path / "predictions", feedback)
        yield ExperimentService(stored, service, store, clock, data)


@pytest.fixture()
def probe() -> FakeProbe:
    return FakeProbe()


@pytest.fixture()
def app(
    access: AccessControl,
    service: DeploymentService,
    experiments: ExperimentService,
    probe: FakeProbe,
) -> ControlPlaneApp:
    return ControlPlaneApp(access, service, experiments, MAX_BODY, probe=probe)


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


def put_yaml(
    app: ControlPlaneApp,
    name: str,
    text: str,
    headers: dict[str, str],
    media: str = "application/yaml",
) -> httpx.Response:
    return call(
        app, "PUT", f"/v1/deployments/{name}", {**headers, "content-type": media}, content=text
    )


def names(app: ControlPlaneApp, headers: dict[str, str]) -> list[str]:
    listed = call(app, "GET", "/v1/deployments", headers)
    assert listed.status_code == 200, listed.text
    return [d["name"] for d in listed.json()["deployments"]]


def audit(
    store: SecurityStore, action: str
) -> list[tuple[str, str, str, str | None, dict[str, Any]]]:
    return [
        (e.actor, e.target or "", e.outcome, e.request_id, dict(e.details or {}))
        for e in store.iter_audit()
        if e.action == action
    ]


# -- apply, read, list, delete ---------------------------------------------------------------------


def test_put_creates_then_reapplying_changes_nothing_then_a_change_raises_the_generation(
    app: ControlPlaneApp, admin: dict[str, str]
) -> None:
    created = call(app, "PUT", "/v1/deployments/fraud-a", admin, json=doc())
    assert created.status_code == 200, created.text
    (first,) = created.json()["applied"]
    assert first["name"] == "fraud-a" and first["generation"] == 1
    assert first["created"] is True and first["changed"] is True
    assert 'metadata.name: (absent) -> "fraud-a"' in first["changes"]

    again = call(app, "PUT", "/v1/deployments/fraud-a", admin, json=doc()).json()["applied"]
    assert again == [
        {"name": "fraud-a", "generation": 1, "created": False, "changed": False, "changes": []}
    ]

    changed = call(app, "PUT", "/v1/deployments/fraud-a", admin, json=doc("fraud-a", 60, 40))
    (third,) = changed.json()["applied"]
    assert (third["generation"], third["changed"], third["created"]) == (2, True, False)
    assert "spec.variants[0].weight: 100.0 -> 60.0" in third["changes"]
    assert "spec.variants.length: 1 -> 2" in third["changes"]


@pytest.mark.parametrize("media", ["application/yaml", "text/yaml", "text/yaml; charset=utf-8"])
def test_put_takes_yaml(app: ControlPlaneApp, admin: dict[str, str], media: str) -> None:
    reply = put_yaml(
        app, "fraud-a", YAML.format(name="fraud-a", current=90, candidate=10), admin, media
    )
    assert reply.status_code == 200, reply.text
    shown = call(app, "GET", "/v1/deployments/fraud-a", admin).json()
    assert [v["model"] for v in shown["document"]["spec"]["variants"]] == [
        "fraud@1",
        "fraud@latest",
    ]


def test_post_applies_a_yaml_stream_and_a_json_list(
    app: ControlPlaneApp, admin: dict[str, str]
) -> None:
    stream = (
        YAML.format(name="one", current=50, candidate=50)
        + "---\n"
        + YAML.format(name="two", current=100, candidate=0)
    )
    reply = call(
        app,
        "POST",
        "/v1/deployments",
        {**admin, "content-type": "application/yaml"},
        content=stream,
    )
    assert reply.status_code == 200, reply.text
    assert [(a["name"], a["generation"]) for a in reply.json()["applied"]] == [
        ("one", 1),
        ("two", 1),
    ]
    listed = call(app, "POST", "/v1/deployments", admin, json=[doc("three"), doc("one", 50, 50)])
    assert [(a["name"], a["changed"]) for a in listed.json()["applied"]] == [
        ("three", True),
        ("one", True),
    ]
    single = call(app, "POST", "/v1/deployments", admin, json=doc("four"))
    assert single.json()["applied"][0]["name"] == "four"
    assert names(app, admin) == ["four", "one", "three", "two"]


def test_get_list_and_delete(app: ControlPlaneApp, admin: dict[str, str]) -> None:
    call(app, "PUT", "/v1/deployments/fraud-a", admin, json=doc())
    shown = call(app, "GET", "/v1/deployments/fraud-a", admin)
    assert shown.status_code == 200
    body = shown.json()
    assert set(body) == {
        "name",
        "generation",
        "createdAt",
        "createdBy",
        "updatedAt",
        "updatedBy",
        "document",
    }
    assert body["generation"] == 1 and body["createdBy"].startswith("key:")
    assert body["document"]["spec"]["variants"][0]["model"] == "fraud@1"
    assert call(app, "GET", "/v1/deployments", admin).json()["deployments"] == [body]
    removed = call(app, "DELETE", "/v1/deployments/fraud-a", admin)
    assert removed.status_code == 200 and removed.json() == body
    missing = call(app, "GET", "/v1/deployments/fraud-a", admin)
    assert (missing.status_code, missing.json()) == (404, {"error": "no deployment 'fraud-a'"})
    again = call(app, "DELETE", "/v1/deployments/fraud-a", admin)
    assert again.status_code == 404
    assert names(app, admin) == []


# -- bad input: a clear 4xx, nothing written ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "media", "status", "message"),
    [
        (
            "kind: Deployment\nspec: [\n",
            "application/yaml",
            400,
            "not valid YAML at line 3, column 1",
        ),
        ("{not json", "application/json", 400, "request body: not valid JSON"),
        ("[]", "application/json", 400, "an empty list"),
        ('"text"', "application/json", 400, "document 1 is a string"),
        ("", "application/yaml", 400, "no document"),
        ("- 1\n", "application/yaml", 400, "document 1 is a list"),
        ("apiVersion: v1\n", "text/yaml", 400, "document 1 has no kind"),
        (json.dumps(doc(colour="red")), "application/json", 400, "spec.colour: unknown field"),
        (
            json.dumps(doc("fraud-a", 90, 5)),
            "application/json",
            400,
            "weights of the variants must add up to 100, got 95",
        ),
        (
            json.dumps(doc(model="ghost@1")),
            "application/json",
            404,
            "spec.variants[0] (v0): unknown model 'ghost'",
        ),
        (json.dumps(doc(model="fraud@7")), "application/json", 404, "spec.variants[0] (v0)"),
        (
            json.dumps(doc("other")),
            "application/json",
            400,
            "metadata.name 'other' does not match the name in the path, 'fraud-a'",
        ),
        (json.dumps([doc(), doc()]), "application/json", 400, "takes one document, got 2"),
        (json.dumps(doc()), "text/plain", 400, "Content-Type 'text/plain' is not accepted here"),
        (b"\xff\xfe".decode("latin-1"), "application/yaml", 400, "not UTF-8 text"),
        ("x" * (MAX_BODY + 1), "application/yaml", 413, f"exceeds the limit of {MAX_BODY} bytes"),
    ],
)
def test_bad_bodies_are_refused_and_nothing_is_written(
    app: ControlPlaneApp, admin: dict[str, str], body: str, media: str, status: int, message: str
) -> None:
    content = body.encode("latin-1") if "not UTF-8" in message else body.encode()
    reply = call(
        app, "PUT", "/v1/deployments/fraud-a", {**admin, "content-type": media}, content=content
    )
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"], reply.json()
    assert names(app, admin) == []


def test_a_post_with_one_bad_document_writes_none(
    app: ControlPlaneApp, admin: dict[str, str]
) -> None:
    reply = call(
        app, "POST", "/v1/deployments", admin, json=[doc("good"), doc("bad", model="fraud@9")]
    )
    assert reply.status_code == 404 and "deployment 'bad'" in reply.json()["error"]
    repeated = call(app, "POST", "/v1/deployments", admin, json=[doc("same"), doc("same")])
    assert repeated.status_code == 400 and "given more than once" in repeated.json()["error"]
    assert names(app, admin) == []


def test_unknown_paths_and_methods(app: ControlPlaneApp, admin: dict[str, str]) -> None:
    assert call(app, "GET", "/v1/nothing", admin).status_code == 404
    assert call(app, "GET", "/v2/models/fraud", admin).status_code == 404
    wrong = call(app, "POST", "/v1/deployments/fraud-a", admin)
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "DELETE, GET, HEAD, PUT")
    listing = call(app, "DELETE", "/v1/deployments", admin)
    assert (listing.status_code, listing.headers["allow"]) == (405, "GET, HEAD, POST")


# -- authorisation and audit -------------------------------------------------------------------------


def test_no_key_is_401_and_the_predictor_role_is_403(
    app: ControlPlaneApp, store: SecurityStore
) -> None:
    for method, path in (
        ("GET", "/v1/deployments"),
        ("PUT", "/v1/deployments/fraud-a"),
        ("POST", "/v1/deployments"),
        ("DELETE", "/v1/deployments/fraud-a"),
    ):
        anonymous = call(app, method, path, json=doc())
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["www-authenticate"] == 'Bearer realm="modelport"'
    predictor = key(store, "predictor")
    for method, path in (
        ("PUT", "/v1/deployments/fraud-a"),
        ("POST", "/v1/deployments"),
        ("DELETE", "/v1/deployments/fraud-a"),
    ):
        refused = call(app, method, path, predictor, json=doc())
        assert refused.status_code == 403, (method, path, refused.text)
        assert "needs deployer" in refused.json()["error"]
    assert call(app, "GET", "/v1/deployments", predictor).status_code == 200  # reading needs viewer
    denials = [e for e in store.iter_audit() if e.action == "deny.manage"]
    assert denials and all(e.outcome == "denied" for e in denials)


def test_scoped_keys_see_and_change_only_their_names(
    app: ControlPlaneApp, store: SecurityStore, admin: dict[str, str]
) -> None:
    for name in ("fraud-a", "credit-a"):
        call(app, "PUT", f"/v1/deployments/{name}", admin, json=doc(name))
    fraud_viewer = key(store, "viewer:fraud-*")
    assert names(app, fraud_viewer) == ["fraud-a"]
    assert call(app, "GET", "/v1/deployments/credit-a", fraud_viewer).status_code == 403
    assert call(app, "PUT", "/v1/deployments/fraud-a", fraud_viewer, json=doc()).status_code == 403

    fraud_deployer = key(store, "deployer:fraud-*")
    assert (
        call(app, "PUT", "/v1/deployments/fraud-b", fraud_deployer, json=doc("fraud-b")).status_code
        == 200
    )
    assert (
        call(
            app, "PUT", "/v1/deployments/credit-b", fraud_deployer, json=doc("credit-b")
        ).status_code
        == 403
    )
    # A POST is authorised document by document, before any is validated or written.
    mixed = call(
        app, "POST", "/v1/deployments", fraud_deployer, json=[doc("fraud-c"), doc("credit-c")]
    )
    assert mixed.status_code == 403 and "credit-c" in mixed.json()["error"]
    assert call(app, "DELETE", "/v1/deployments/credit-a", fraud_deployer).status_code == 403
    assert names(app, admin) == ["credit-a", "fraud-a", "fraud-b"]


def test_every_change_is_audited_with_the_actor_the_request_id_and_the_diff(
    app: ControlPlaneApp, store: SecurityStore
) -> None:
    record, token = store.create_key("ci", parse_grants(["deployer"]), None, "tests")
    deployer = {"authorization": f"Bearer {token}"}
    call(app, "PUT", "/v1/deployments/fraud-a", {**deployer, "x-request-id": "req-1"}, json=doc())
    call(
        app,
        "PUT",
        "/v1/deployments/fraud-a",
        {**deployer, "x-request-id": "req-2"},
        json=doc("fraud-a", 60, 40),
    )
    call(app, "DELETE", "/v1/deployments/fraud-a", {**deployer, "x-request-id": "req-3"})
    actor = f"key:{record.key_id}"
    applies = audit(store, "deployment.apply")
    assert [(a, t, o, r) for a, t, o, r, _ in applies] == [
        (actor, "fraud-a", "started", "req-1"),
        (actor, "fraud-a", "ok", "req-1"),
        (actor, "fraud-a", "started", "req-2"),
        (actor, "fraud-a", "ok", "req-2"),
    ]
    assert (
        applies[3][4]["generation"] == 2
        and "spec.variants[0].weight: 100.0 -> 60.0" in applies[3][4]["changes"]
    )
    assert [(a, o, r, d) for a, _, o, r, d in audit(store, "deployment.delete")] == [
        (actor, "started", "req-3", {}),
        (actor, "ok", "req-3", {"generation": 2}),
    ]


def test_without_authentication_the_actor_is_anonymous(
    service: DeploymentService, experiments: ExperimentService, store: SecurityStore
) -> None:
    app = ControlPlaneApp(AccessControl(None), service, experiments, MAX_BODY)
    assert call(app, "PUT", "/v1/deployments/fraud-a", json=doc()).status_code == 200
    assert {e[0] for e in audit(store, "deployment.apply")} == {"anonymous"}


# -- replicas ---------------------------------------------------------------------------------------------


def test_replicas_that_do_not_answer_refuse_the_apply(
    app: ControlPlaneApp, admin: dict[str, str], probe: FakeProbe
) -> None:
    probe.failing = {
        "http://10.0.0.6:8080": "GET http://10.0.0.6:8080/v2/health/live: cannot connect (refused)"
    }
    urls = {"replicas": {"urls": ["http://10.0.0.5:8080", "http://10.0.0.6:8080"]}}
    refused = call(app, "PUT", "/v1/deployments/fraud-a", admin, json=doc(**urls))
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert "nothing was applied" in error
    assert (
        "deployment 'fraud-a', spec.replicas.urls[1] http://10.0.0.6:8080: GET http://10.0.0.6:8080/v2/health/live: cannot connect"
        in error
    )
    assert "10.0.0.5" not in error
    assert probe.calls == [(["http://10.0.0.5:8080", "http://10.0.0.6:8080"], [])]
    assert names(app, admin) == []

    probe.failing = {}
    assert call(app, "PUT", "/v1/deployments/fraud-a", admin, json=doc(**urls)).status_code == 200
    dns = call(
        app,
        "POST",
        "/v1/deployments",
        admin,
        json=[doc("fraud-b", replicas={"dns": "fraud.svc:8080"}), doc("fraud-c")],
    )
    assert dns.status_code == 200
    assert probe.calls[-1] == ([], ["fraud.svc:8080"])


def test_no_replicas_no_probe(
    app: ControlPlaneApp, admin: dict[str, str], probe: FakeProbe
) -> None:
    assert call(app, "PUT", "/v1/deployments/fraud-a", admin, json=doc()).status_code == 200
    assert probe.calls == []


# -- health and the OpenAPI document --------------------------------------------------------------------


def test_health_probes_need_no_key(app: ControlPlaneApp) -> None:
    assert call(app, "GET", "/v1/health/live").json() == {"live": True}
    ready = call(app, "GET", "/v1/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


def test_not_ready_when_the_database_does_not_answer(
    access: AccessControl, experiments: ExperimentService
) -> None:
    broken = DeploymentService(_Broken(), None, None)  # type: ignore[arg-type]
    app = ControlPlaneApp(access, broken, experiments, MAX_BODY)
    ready = call(app, "GET", "/v1/health/ready")
    assert (ready.status_code, ready.json()) == (503, {"ready": False})


class _Broken:
    def generations(self) -> dict[str, int]:
        raise OSError("database is gone")


def test_openapi_document_is_valid_and_served(app: ControlPlaneApp, admin: dict[str, str]) -> None:
    document = control_openapi_document()
    schemathesis.openapi.from_dict(document).validate()
    served = call(app, "GET", "/v1/openapi.json", admin)
    assert served.status_code == 200 and served.json() == document
    assert document["info"]["title"] == "modelport control plane"
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert operations == {(r.method, r.path) for r in CONTROL_ROUTES}
    text = json.dumps(document)
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', text))
    assert refs == set(document["components"]["schemas"])
    possible = {200} | set(STATUS_BY_KIND.values())
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert {int(s) for s in operation["responses"]} <= possible, (method, path)
    put = document["paths"]["/v1/deployments/{name}"]["put"]
    assert put["parameters"][0]["name"] == "name"
    assert set(put["requestBody"]["content"]) == {
        "application/json",
        "application/yaml",
        "text/yaml",
    }
    assert document["paths"]["/v1/health/live"]["get"]["security"] == []


def test_metrics_need_a_viewer_over_everything_and_404_when_off(
    access: AccessControl,
    service: DeploymentService,
    experiments: ExperimentService,
    store: SecurityStore,
    app: ControlPlaneApp,
    admin: dict[str, str],
) -> None:
    off = call(app, "GET", "/metrics", admin)
    assert off.status_code == 404 and "not enabled" in off.json()["error"]
    exposition = Exposition(multiprocess=False)
    ControlPlaneMetrics(exposition).evaluated([("fraud-v4", "fraud", 1.7e9)])
    served = ControlPlaneApp(access, service, experiments, MAX_BODY, metrics=exposition.render)
    assert call(served, "GET", "/metrics").status_code == 401
    assert call(served, "GET", "/metrics", key(store, "viewer:fraud-*")).status_code == 403
    reply = call(served, "GET", "/metrics", key(store, "viewer"))
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    assert 'experiment="fraud-v4"' in reply.text
    assert 'modelport_process_cpu_seconds_total{worker="0"}' in reply.text


def test_every_route_is_under_v1_and_routed_to_itself(app: ControlPlaneApp) -> None:
    router = Router(CONTROL_ROUTES)
    for route in CONTROL_ROUTES:
        # /metrics is Prometheus's path; under `up` the gateway's answers it, with everything.
        assert route.path.startswith("/v1/") or route.path == "/metrics", route.path
        assert callable(getattr(app, route.endpoint, None)), route.endpoint
        match = router.match(route.path.replace("{name}", "some-name"))
        assert match is not None and match.routes[route.method] is route
        if "{name}" in route.path:
            assert (match.model, match.args) == ("some-name", ("some-name",))
        else:
            assert (match.model, match.args) == (None, ())


# -- body parsing ---------------------------------------------------------------------------------------


def test_parse_documents_by_content_type() -> None:
    body = json.dumps(doc()).encode()
    assert parse_documents(body, "application/json") == [doc()]
    assert parse_documents(body, "Application/JSON; charset=utf-8") == [doc()]
    assert parse_documents(body, None) == [doc()]  # no Content-Type: YAML, which JSON is part of
    assert parse_documents(b"a: 1\n---\nb: 2\n", "text/yaml") == [{"a": 1}, {"b": 2}]
    with pytest.raises(Exception, match="application/xml"):
        parse_documents(body, "application/xml")


def test_the_deployment_schema_is_generated_from_the_model_in_openapi_3_0_form() -> None:
    import json
    import re

    from modelport.server.controlplane.routes import control_openapi_document

    document = control_openapi_document()
    text = json.dumps(document)
    schemas = document["components"]["schemas"]
    # Every reference resolves, and no JSON Schema 2020-12 construct is left for 3.0.3.
    for name in re.findall(r'"#/components/schemas/(\w+)"', text):
        assert name in schemas, name
    # (anyOf itself is OpenAPI 3.0; only its null member is not: it becomes nullable.)
    assert not re.search(r'"(const|\$defs)"|"type": "null"', text)
    assert schemas["Guardrail"]["properties"]["tolerance"]["anyOf"] == [
        {"type": "number"},
        {"type": "string"},
    ]
    variant = schemas["VariantSpec"]["properties"]
    assert variant["weight"]["maximum"] == 100  # constraints come from the model itself
    assert schemas["Deployment"]["properties"]["apiVersion"]["enum"] == ["modelport.io/v1"]
    replicas = schemas["DeploymentSpec"]["properties"]["replicas"]
    assert replicas["nullable"] is True
    assert schemas["CacheSpec"]["properties"]["ttlSeconds"]["exclusiveMinimum"] is True


# -- experiments ------------------------------------------------------------------------------------


def experiment(name: str = "exp", deployment: str = "fraud-a", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "deployment": deployment,
            "control": "v0",
            "treatment": "v1",
            "primary": {"metric": "accuracy"},
            **spec,
        },
    }


def test_experiments_start_show_act_and_end(app: ControlPlaneApp, admin: dict[str, str]) -> None:
    assert call(app, "PUT", "/v1/deployments/fraud-a", admin, json=doc("fraud-a", 50, 50))
    started = call(app, "PUT", "/v1/experiments/exp", admin, json=experiment())
    assert started.status_code == 200, started.text
    assert started.json()["applied"] == [
        {"name": "exp", "status": "running", "generation": 1, "created": True, "changed": True}
    ]
    shown = call(app, "GET", "/v1/experiments/exp", admin).json()
    assert (shown["deployment"], shown["status"], shown["decisions"]) == ("fraud-a", "running", [])
    evaluated = call(app, "POST", "/v1/experiments/exp/evaluate", admin)
    assert evaluated.status_code == 200, evaluated.text
    [decision] = evaluated.json()["decisions"]
    assert decision["decision"] == "not_enough_data"  # nothing was served yet
    paused = call(app, "POST", "/v1/experiments/exp/pause", admin).json()
    assert paused["status"] == "paused"
    again = call(app, "POST", "/v1/experiments/exp/pause", admin)
    assert again.status_code == 409 and "pause needs it running or blocked" in again.text
    assert call(app, "POST", "/v1/experiments/exp/resume", admin).json()["status"] == "running"
    refused = call(app, "DELETE", "/v1/experiments/exp", admin)
    assert refused.status_code == 409 and "end it first" in refused.text
    promoted = call(app, "POST", "/v1/experiments/exp/promote", admin).json()
    assert promoted["status"] == "promoted"
    weights = call(app, "GET", "/v1/deployments/fraud-a", admin).json()["document"]["spec"]
    assert [v["weight"] for v in weights["variants"]] == [0.0, 100.0]
    listed = call(app, "GET", "/v1/experiments", admin).json()["experiments"]
    assert [(e["name"], e["status"]) for e in listed] == [("exp", "promoted")]
    assert call(app, "DELETE", "/v1/experiments/exp", admin).status_code == 200
    assert call(app, "GET", "/v1/experiments/exp", admin).status_code == 404


def test_bad_experiments_get_a_4xx_and_nothing_changes(
    app: ControlPlaneApp, admin: dict[str, str]
) -> None:
    assert call(app, "PUT", "/v1/deployments/fraud-a", admin, json=doc("fraud-a", 100))
    cases = [
        (experiment(deployment="ghost"), 404, "no deployment 'ghost'"),
        (experiment(), 400, "has no variant 'v1'"),  # a deployment without a treatment
        (experiment(primary={"metric": "f1"}), 400, "f1 is reported, not tested"),
        (experiment(alpha=2), 400, "spec.alpha"),
        (experiment() | {"metadata": {"name": "other"}}, 400, "does not match the name"),
    ]
    for body, status, message in cases:
        reply = call(app, "PUT", "/v1/experiments/exp", admin, json=body)
        assert (reply.status_code, message in reply.text) == (status, True), reply.text
    no_control = doc("two-treatments", 50, 50)
    no_control["spec"]["variants"][0]["role"] = "treatment"
    assert call(app, "PUT", "/v1/deployments/two-treatments", admin, json=no_control)
    refused = call(
        app, "PUT", "/v1/experiments/exp", admin, json=experiment(deployment="two-treatments")
    )
    assert refused.status_code == 400
    assert "an experiment needs a variant with role 'control'" in refused.text
    assert call(app, "GET", "/v1/experiments", admin).json() == {"experiments": []}
    for verb in ("pause", "resume", "abort", "promote", "acknowledge", "evaluate"):
        missing = call(app, "POST", f"/v1/experiments/ghost/{verb}", admin)
        assert missing.status_code == 404 and "no experiment 'ghost'" in missing.text


def test_experiments_are_authorised_on_their_deployment(
    app: ControlPlaneApp, admin: dict[str, str], store: SecurityStore
) -> None:
    assert call(app, "PUT", "/v1/deployments/fraud-a", admin, json=doc("fraud-a", 50, 50))
    assert call(app, "PUT", "/v1/deployments/other", admin, json=doc("other", 50, 50))
    assert call(app, "PUT", "/v1/experiments/exp", admin, json=experiment()).status_code == 200
    theirs = key(store, "deployer:other")
    assert call(app, "GET", "/v1/experiments", theirs).json() == {"experiments": []}
    assert call(app, "GET", "/v1/experiments/exp", theirs).status_code == 403
    assert call(app, "POST", "/v1/experiments/exp/abort", theirs).status_code == 403
    mine = experiment("mine", deployment="other")
    assert call(app, "PUT", "/v1/experiments/mine", theirs, json=mine).status_code == 200
    stolen = experiment("stolen")
    assert call(app, "POST", "/v1/experiments", theirs, json=[stolen]).status_code == 403
    viewer = key(store, "viewer:fraud-a")
    assert call(app, "GET", "/v1/experiments/exp", viewer).status_code == 200
    assert call(app, "POST", "/v1/experiments/exp/pause", viewer).status_code == 403
    assert call(app, "GET", "/v1/experiments/exp", admin).json()["status"] == "running"
