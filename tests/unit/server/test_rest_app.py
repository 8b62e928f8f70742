"""The REST app in-process, through an ASGI transport: routing from the route table, 404/405,
authentication and authorisation, error mapping, the repository routes and their audit entries.

The app runs with a real data plane (a Python model) and a real security store (SQLite in a
temporary data directory), without starting a server process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.inference import InferenceRequest, Tensor
from modelport.core.settings import ServerSettings
from modelport.protocol.rest import encode_infer_request
from modelport.security.identity import parse_grants
from modelport.security.store import SecurityStore
from modelport.server.rest.app import RestApp, create_app
from modelport.service.access import AccessControl
from modelport.service.dataplane import DataPlane

BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}


@pytest.fixture()
def app(dataplane: DataPlane, access: AccessControl) -> RestApp:
    return create_app(ServerSettings(), dataplane, access)


def key(store: SecurityStore, *grants: str) -> dict[str, str]:
    _, token = store.create_key("test", parse_grants(list(grants)), None, "tests")
    return {"authorization": f"Bearer {token}"}


def call(
    app: RestApp,
    method: str,
    path: str,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, headers=headers, **kwargs)

    return asyncio.run(go())


def audit(store: SecurityStore) -> list[tuple[str, str, str, str | None]]:
    return [(e.action, e.target or "", e.outcome, e.request_id) for e in store.iter_audit()]


# -- routing -------------------------------------------------------------------------------------


def test_every_model_route_answers_with_and_without_a_version(
    app: RestApp, store: SecurityStore
) -> None:
    admin = key(store, "admin")
    for base in ("/v2/models/fraud-a", "/v2/models/fraud-a/versions/1"):
        assert call(app, "GET", base, admin).json()["name"] == "fraud-a"
        assert call(app, "GET", base + "/ready", admin).json() == {"name": "fraud-a", "ready": True}
        assert call(app, "GET", base + "/stats", admin).status_code == 200
        answer = call(app, "POST", base + "/infer", admin, json=BODY).json()
        assert answer["outputs"][0]["data"] == [2, 4]


def test_model_config_is_tritons_form(app: RestApp, store: SecurityStore) -> None:
    config = call(app, "GET", "/v2/models/fraud-a/config", key(store, "viewer")).json()
    assert config == {
        "name": "fraud-a",
        "platform": "python",
        "max_batch_size": 0,
        "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 2]}],
        "output": [{"name": "double", "data_type": "TYPE_FP32", "dims": [-1, 2]}],
    }


def test_a_trailing_slash_is_ignored(app: RestApp, store: SecurityStore) -> None:
    viewer = key(store, "viewer")
    assert call(app, "GET", "/v2/", viewer).json()["name"] == "modelport"
    assert call(app, "GET", "/v2/models/fraud-a/", viewer).json()["name"] == "fraud-a"
    assert call(app, "GET", "/v2//models", viewer).status_code == 404


def test_an_encoded_slash_is_never_a_separator(app: RestApp, store: SecurityStore) -> None:
    admin = key(store, "admin")
    sneaky = call(app, "POST", "/v2%2Frepository%2Fmodels%2Ffraud-a%2Funload", admin, json={})
    assert sneaky.status_code == 404
    # Inside a model segment it is part of the name (a name no model has).
    missing = call(app, "GET", "/v2/models/fraud-a%2Fready", admin)
    assert missing.status_code == 404
    assert call(app, "GET", "/v2/models/fraud-a/ready", admin).status_code == 200  # still loaded


def test_unknown_paths_are_404_and_wrong_methods_405_with_allow(
    app: RestApp, store: SecurityStore
) -> None:
    viewer = key(store, "viewer")
    missing = call(app, "GET", "/v2/nothing/here", viewer)
    assert missing.status_code == 404
    assert missing.json() == {"error": "no such endpoint: GET /v2/nothing/here"}
    wrong = call(app, "POST", "/v2/models/fraud-a", viewer)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD"
    assert "allowed: GET, HEAD" in wrong.json()["error"]
    infer = call(app, "GET", "/v2/models/fraud-a/infer", viewer)
    assert (infer.status_code, infer.headers["allow"]) == (405, "POST")
    assert call(app, "HEAD", "/v2/models/fraud-a", viewer).status_code == 200


# -- authentication and authorisation ------------------------------------------------------------


def test_no_credential_is_401_and_health_probes_are_open(app: RestApp) -> None:
    denied = call(app, "GET", "/v2/models/fraud-a")
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Bearer")
    assert call(app, "GET", "/v2/health/live").status_code == 200
    assert call(app, "GET", "/metrics").status_code == 401


def test_two_authorization_headers_are_refused(app: RestApp, store: SecurityStore) -> None:
    good, other = key(store, "admin"), key(store, "viewer")
    both = [("authorization", good["authorization"]), ("authorization", other["authorization"])]
    answer = call(app, "GET", "/v2/models/fraud-a", both)
    assert answer.status_code == 400
    assert "Authorization was sent more than once" in answer.json()["error"]


def test_out_of_scope_reads_the_same_for_existing_and_missing_models(
    app: RestApp, store: SecurityStore
) -> None:
    scoped = key(store, "predictor:fraud-*")
    existing = call(app, "POST", "/v2/models/credit-a/infer", scoped, json=BODY)
    missing = call(app, "POST", "/v2/models/credit-zz/infer", scoped, json=BODY)
    assert existing.status_code == missing.status_code == 403
    assert "is outside the scope of key:" in existing.json()["error"]
    assert existing.json()["error"].replace("credit-a", "X") == missing.json()["error"].replace(
        "credit-zz", "X"
    )


def test_a_missing_model_in_scope_names_no_other_model(app: RestApp, store: SecurityStore) -> None:
    scoped = key(store, "predictor:fraud-*")
    answer = call(app, "POST", "/v2/models/fraud-x/infer", scoped, json=BODY)
    assert answer.status_code == 404
    assert "credit-a" not in answer.json()["error"]


def test_listings_show_only_what_the_key_may_see(app: RestApp, store: SecurityStore) -> None:
    scoped = key(store, "deployer:fraud-*")
    index = call(app, "POST", "/v2/repository/index", scoped, json={}).json()
    assert [m["name"] for m in index] == ["fraud-a"]
    stats = call(app, "GET", "/v2/models/stats", scoped).json()["model_stats"]
    assert {s["name"] for s in stats} == {"fraud-a"}


def test_bad_request_ids_are_refused_before_anything_happens(
    app: RestApp, store: SecurityStore
) -> None:
    admin = key(store, "admin")
    for bad in ("   ", "a\x01b", "x" * 129):
        answer = call(
            app, "POST", "/v2/repository/models/fraud-a/unload", {**admin, "x-request-id": bad}
        )
        assert answer.status_code == 400
        assert "x-request-id must be" in answer.json()["error"]
    assert call(app, "GET", "/v2/models/fraud-a/ready", admin).status_code == 200  # not unloaded
    assert not [e for e in audit(store) if e[0].startswith("model.")]


# -- the repository and its audit entries --------------------------------------------------------


def test_unload_is_audited_before_and_after_with_the_request_id(
    app: RestApp, store: SecurityStore
) -> None:
    admin = {**key(store, "admin"), "x-request-id": "req-42"}
    assert call(app, "POST", "/v2/repository/models/fraud-a/unload", admin).json() == {}
    entries = [e for e in audit(store) if e[0] == "model.unload"]
    assert entries == [
        ("model.unload", "fraud-a", "started", "req-42"),
        ("model.unload", "fraud-a", "ok", "req-42"),
    ]


def test_repository_requests_refuse_unknown_fields(app: RestApp, store: SecurityStore) -> None:
    admin = key(store, "admin")
    answer = call(
        app, "POST", "/v2/repository/models/fraud-a/load", admin, json={"alias": "champion"}
    )
    assert answer.status_code == 400
    assert "unknown key 'alias'" in answer.json()["error"]
    assert not [e for e in audit(store) if e[0] == "model.load"]  # refused before acting


def test_an_unwritable_audit_log_refuses_the_action(app: RestApp, store: SecurityStore) -> None:
    admin = key(store, "admin")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    store.append_audit = broken  # type: ignore[method-assign]
    answer = call(app, "POST", "/v2/repository/models/fraud-a/unload", admin)
    assert answer.status_code == 503
    assert "audit log cannot be written" in answer.json()["error"]
    assert call(app, "GET", "/v2/models/fraud-a/ready", admin).status_code == 200  # still served


# -- error mapping -------------------------------------------------------------------------------


def test_errors_map_to_statuses_with_messages(app: RestApp, store: SecurityStore) -> None:
    predictor = key(store, "predictor")
    assert call(app, "POST", "/v2/models/fraud-a/infer", predictor, content=b"{").status_code == 400
    empty = call(app, "POST", "/v2/models/fraud-a/infer", predictor, json={"inputs": []})
    assert empty.status_code == 400
    assert "input" in empty.json()["error"]
    unknown_version = call(app, "GET", "/v2/models/fraud-a/versions/9", predictor)
    assert unknown_version.status_code == 404
    assert call(app, "POST", "/v2/repository/index", predictor, json={}).status_code == 403


# -- large bodies --------------------------------------------------------------------------------


def test_json_over_its_limit_is_413_with_the_binary_hint(
    dataplane: DataPlane, access: AccessControl, store: SecurityStore
) -> None:
    app = create_app(ServerSettings(max_json_bytes=4096), dataplane, access)
    predictor = key(store, "predictor")
    rows = np.ones((1000, 2), dtype=np.float32)
    data = rows.ravel().tolist()
    big = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1000, 2], "data": data}]}
    refused = call(app, "POST", "/v2/models/fraud-a/infer", predictor, json=big)
    assert refused.status_code == 413
    assert "server.max_json_bytes" in refused.json()["error"]
    assert "binary form" in refused.json()["error"]
    # The same tensor in binary form: a small JSON header, then 8,000 bytes of raw data.
    request = InferenceRequest([Tensor("x", Datatype.FP32, (1000, 2), rows)])
    body, header_length = encode_infer_request(request, binary_inputs=True)
    headers = {**predictor, "inference-header-content-length": str(header_length)}
    answer = call(app, "POST", "/v2/models/fraud-a/infer", headers, content=body)
    assert answer.status_code == 200, answer.text
    # A JSON header over the limit is refused even in a binary request.
    padded = {**predictor, "inference-header-content-length": "5000"}
    header_too_big = call(app, "POST", "/v2/models/fraud-a/infer", padded, content=b" " * 6000)
    assert header_too_big.status_code == 413
    assert "JSON header of 5000 bytes" in header_too_big.json()["error"]


def test_metrics_open_by_configuration_need_no_key(
    dataplane: DataPlane, store: SecurityStore
) -> None:
    from modelport.core.clock import SystemClock
    from modelport.core.settings import AuthSettings, SecuritySettings
    from modelport.monitoring import ServingMetrics
    from modelport.service.access import build_access_control

    with_metrics = DataPlane(dataplane.repository, metrics=ServingMetrics())
    settings = SecuritySettings(auth=AuthSettings(open_metrics=True))
    access = build_access_control(settings, store, store, SystemClock())
    try:
        app = create_app(ServerSettings(), with_metrics, access)
        predictor = key(store, "predictor")
        assert call(app, "POST", "/v2/models/fraud-a/infer", predictor, json=BODY).is_success
        reply = call(app, "GET", "/metrics")
        assert reply.status_code == 200
        assert b'modelport_inference_requests_total{model="fraud-a"' in reply.content
        assert call(app, "GET", "/v2/models/fraud-a").status_code == 401  # nothing else opens
    finally:
        access.close()
