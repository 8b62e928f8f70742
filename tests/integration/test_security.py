"""Authentication, authorisation, limits and audit through real server processes (REST and gRPC).

One server with authentication on (the default) and two workers hosts the session's models; keys
are created in its metadata database the way ``modelport keys create`` does. Every rule is
checked from the outside: status codes, gRPC status codes and messages, and the audit log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from modelport.core.settings import Settings
from modelport.protocol.grpc_gen import inference_pb2 as pb
from modelport.protocol.grpc_gen import inference_pb2_grpc as pb_grpc
from modelport.security.identity import parse_grants
from modelport.security.store import SecurityStore
from modelport.service.wiring import open_security_store
from modelport.testing import ServerProcess

ROW = [[5.1, 3.5, 1.4, 0.2]]


def infer_body(rows: list[list[float]] = ROW) -> dict[str, Any]:
    return {
        "inputs": [{"name": "input", "datatype": "FP64", "shape": [len(rows), 4], "data": rows}]
    }


@pytest.fixture(scope="module")
def store(model_home: Path) -> Iterator[SecurityStore]:
    with open_security_store(Settings(home=model_home)) as opened:
        yield opened


class Keys:
    """Creates keys in the server's database."""

    def __init__(self, store: SecurityStore) -> None:
        self.store = store

    def __call__(self, *grants: str, expires_at: datetime | None = None) -> str:
        _, token = self.store.create_key("test", parse_grants(list(grants)), expires_at, "tests")
        return token


@pytest.fixture(scope="module")
def keys(store: SecurityStore) -> Keys:
    return Keys(store)


@pytest.fixture(scope="module")
def secured(model_home: Path) -> Iterator[ServerProcess]:
    env = {
        "MODELPORT_HOME": str(model_home),
        # Short, so revocation is seen quickly; the default is 5 s.
        "MODELPORT_SECURITY__AUTH__CACHE_TTL_S": "0.3",
        "MODELPORT_SECURITY__LIMITS__MAX_ROWS": "100",
    }
    models = ["iris@1", "iris-onnx", "echo-json", "--workers", "2"]
    with ServerProcess(models, env=env, auth=True) as process:
        yield process


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: httpx.Response) -> str:
    message = response.json()["error"]
    assert isinstance(message, str)
    return message


# --- authentication -------------------------------------------------------------------------


def test_a_call_without_credentials_is_refused_with_401(secured: ServerProcess) -> None:
    reply = httpx.post(f"{secured.url}/v2/models/iris/infer", json=infer_body())
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in error_of(reply)


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Token abc",
        "Bearer mpk_",
        "Bearer mpk_short_secret",
        "Bearer not.a.jwt",
        "Bearer " + "x" * 10_000,
    ],
)
def test_malformed_credentials_are_refused_with_401(secured: ServerProcess, header: str) -> None:
    reply = httpx.get(f"{secured.url}/v2/models/iris", headers={"Authorization": header})
    assert reply.status_code == 401, reply.text
    assert header[7:30] not in error_of(reply) or len(header) < 12  # never echoes the secret


def test_an_unknown_key_and_a_wrong_secret_read_the_same(
    secured: ServerProcess, keys: Keys
) -> None:
    good = keys("viewer")
    prefix, key_id, _secret = good.split("_", 2)
    forged = f"{prefix}_{key_id}_{'A' * 43}"
    unknown = f"{prefix}_{'0' * 12}_{'A' * 43}"
    a = httpx.get(f"{secured.url}/v2/models/iris", headers=bearer(forged))
    b = httpx.get(f"{secured.url}/v2/models/iris", headers=bearer(unknown))
    assert (a.status_code, b.status_code) == (401, 401)
    assert error_of(a) == error_of(b)


def test_health_probes_stay_open_but_nothing_else(secured: ServerProcess) -> None:
    assert httpx.get(f"{secured.url}/v2/health/live").status_code == 200
    assert httpx.get(f"{secured.url}/v2/health/ready").status_code == 200
    for path in ("/v2", "/v2/models/iris", "/v2/models/iris/ready", "/metrics", "/v2/models/stats"):
        assert httpx.get(f"{secured.url}{path}").status_code == 401, path


def test_an_expired_key_is_refused(secured: ServerProcess, keys: Keys) -> None:
    token = keys("viewer", expires_at=datetime.now(UTC) + timedelta(seconds=1.5))
    assert httpx.get(f"{secured.url}/v2/models/iris", headers=bearer(token)).status_code == 200
    time.sleep(1.7)
    reply = httpx.get(f"{secured.url}/v2/models/iris", headers=bearer(token))
    assert reply.status_code == 401
    assert "expired" in error_of(reply)


def test_a_revoked_key_is_refused_within_the_cache_ttl(
    secured: ServerProcess, keys: Keys, store: SecurityStore
) -> None:
    token = keys("predictor")
    url = f"{secured.url}/v2/models/iris/infer"
    assert httpx.post(url, json=infer_body(), headers=bearer(token)).status_code == 200
    store.revoke_key(token.split("_")[1], "tests")
    time.sleep(0.5)
    # Several calls: each connection may land on either worker, and both must refuse.
    for _ in range(4):
        with httpx.Client() as client:
            reply = client.post(url, json=infer_body(), headers=bearer(token))
        assert reply.status_code == 401
        assert "revoked" in error_of(reply)


# --- authorisation --------------------------------------------------------------------------


def test_roles_are_ordered_viewer_predictor_deployer(secured: ServerProcess, keys: Keys) -> None:
    url = secured.url
    viewer, predictor, deployer = keys("viewer"), keys("predictor"), keys("deployer")
    assert httpx.get(f"{url}/v2/models/iris", headers=bearer(viewer)).status_code == 200
    denied = httpx.post(f"{url}/v2/models/iris/infer", json=infer_body(), headers=bearer(viewer))
    assert denied.status_code == 403
    assert "may not infer on model 'iris'" in error_of(denied)
    ok = httpx.post(f"{url}/v2/models/iris/infer", json=infer_body(), headers=bearer(predictor))
    assert ok.status_code == 200
    load = f"{url}/v2/repository/models/echo-json/load"
    assert httpx.post(load, json={}, headers=bearer(predictor)).status_code == 403
    assert httpx.post(load, json={}, headers=bearer(deployer)).status_code == 200
    # A deployer may infer too (roles include the ones below them).
    ok = httpx.post(f"{url}/v2/models/iris/infer", json=infer_body(), headers=bearer(deployer))
    assert ok.status_code == 200


def test_a_scoped_key_cannot_reach_other_models_nor_learn_they_exist(
    secured: ServerProcess, keys: Keys
) -> None:
    token = keys("predictor:iris-*")
    url = secured.url
    onnx_body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": ROW}]}
    own = httpx.post(f"{url}/v2/models/iris-onnx/infer", json=onnx_body, headers=bearer(token))
    assert own.status_code == 200
    existing = httpx.post(f"{url}/v2/models/iris/infer", json=infer_body(), headers=bearer(token))
    ghost = httpx.post(f"{url}/v2/models/ghost/infer", json=infer_body(), headers=bearer(token))
    assert (existing.status_code, ghost.status_code) == (403, 403)
    assert error_of(existing).replace("'iris'", "X") == error_of(ghost).replace("'ghost'", "X")
    for path in ("/v2/models/iris", "/v2/models/ghost", "/v2/models/iris/versions/1/ready"):
        assert httpx.get(f"{url}{path}", headers=bearer(token)).status_code == 403, path


def test_listings_show_only_what_the_caller_may_see(secured: ServerProcess, keys: Keys) -> None:
    scoped, everything = keys("deployer:iris*"), keys("deployer")
    index = f"{secured.url}/v2/repository/index"
    names = {m["name"] for m in httpx.post(index, json={}, headers=bearer(scoped)).json()}
    assert names == {"iris", "iris-onnx"}
    names = {m["name"] for m in httpx.post(index, json={}, headers=bearer(everything)).json()}
    assert names == {"iris", "iris-onnx", "echo-json"}
    stats = httpx.get(f"{secured.url}/v2/models/stats", headers=bearer(scoped)).json()
    assert {s["name"] for s in stats["model_stats"]} <= {"iris", "iris-onnx"}


def test_metrics_need_a_viewer_over_every_model(secured: ServerProcess, keys: Keys) -> None:
    metrics = f"{secured.url}/metrics"
    assert httpx.get(metrics, headers=bearer(keys("viewer:iris"))).status_code == 403
    assert httpx.get(metrics, headers=bearer(keys("viewer"))).status_code == 200


# --- limits ---------------------------------------------------------------------------------


def test_too_many_rows_are_refused_with_413(secured: ServerProcess, keys: Keys) -> None:
    token = keys("predictor")
    rows = [[1.0, 2.0, 3.0, 4.0]] * 101
    reply = httpx.post(
        f"{secured.url}/v2/models/iris/infer", json=infer_body(rows), headers=bearer(token)
    )
    assert reply.status_code == 413
    assert "max_rows" in error_of(reply)


def test_rate_limit_answers_429_with_retry_after(model_home: Path, keys: Keys) -> None:
    env = {
        "MODELPORT_HOME": str(model_home),
        "MODELPORT_SECURITY__LIMITS__RATE_PER_S": "0.5",
        "MODELPORT_SECURITY__LIMITS__BURST": "2",
    }
    token, other = keys("viewer"), keys("viewer")
    with ServerProcess(["iris@1", "--workers", "1", "--no-grpc"], env=env, auth=True) as server:
        url = f"{server.url}/v2/models/iris"
        codes = [httpx.get(url, headers=bearer(token)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = httpx.get(url, headers=bearer(token))
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        # The limit is per identity: another key is unaffected.
        assert httpx.get(url, headers=bearer(other)).status_code == 200


# --- audit ----------------------------------------------------------------------------------


def test_denials_and_control_actions_reach_the_audit_log(
    secured: ServerProcess, keys: Keys, store: SecurityStore
) -> None:
    deployer, viewer = keys("deployer"), keys("viewer")
    deployer_id, viewer_id = deployer.split("_")[1], viewer.split("_")[1]
    request_id = f"audit-{time.monotonic_ns()}"
    headers = {**bearer(deployer), "x-request-id": request_id}
    load = f"{secured.url}/v2/repository/models/echo-json/load"
    assert httpx.post(load, json={}, headers=headers).status_code == 200
    denied = httpx.post(
        f"{secured.url}/v2/models/iris/infer", json=infer_body(), headers=bearer(viewer)
    )
    assert denied.status_code == 403
    deadline = time.monotonic() + 10
    while True:  # denials are written off the request path
        entries = store.list_audit(limit=None)
        loads = [e for e in entries if e.actor == f"key:{deployer_id}" and e.action == "model.load"]
        denials = [e for e in entries if e.actor == f"key:{viewer_id}"]
        if (len(loads) == 2 and denials) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # A control action is written before it runs, then with its outcome.
    assert [(e.target, e.outcome, e.request_id) for e in loads] == [
        ("echo-json", "started", request_id),
        ("echo-json", "ok", request_id),
    ]
    assert denials and denials[0].action == "deny.infer" and denials[0].outcome == "denied"
    assert store.verify_audit().intact


# --- gRPC -----------------------------------------------------------------------------------


def grpc_infer(address: str, model: str, headers: dict[str, str] | None) -> Any:
    client = grpcclient.InferenceServerClient(address)
    data = np.array(ROW, dtype=np.float64)
    tensor = grpcclient.InferInput("input", list(data.shape), "FP64")
    tensor.set_data_from_numpy(data)
    try:
        return client.infer(model, [tensor], headers=headers)
    finally:
        client.close()


def grpc_status(address: str, model: str, headers: dict[str, str] | None) -> str:
    with pytest.raises(InferenceServerException) as caught:
        grpc_infer(address, model, headers)
    return str(caught.value.status())


def test_grpc_needs_a_credential_and_the_right_role(secured: ServerProcess, keys: Keys) -> None:
    address = secured.grpc_address
    assert "UNAUTHENTICATED" in grpc_status(address, "iris", None)
    assert "UNAUTHENTICATED" in grpc_status(address, "iris", {"authorization": "Bearer nope"})
    viewer = {"authorization": f"Bearer {keys('viewer')}"}
    assert "PERMISSION_DENIED" in grpc_status(address, "iris", viewer)
    scoped = {"authorization": f"Bearer {keys('predictor:iris-onnx')}"}
    assert "PERMISSION_DENIED" in grpc_status(address, "iris", scoped)
    predictor = {"authorization": f"Bearer {keys('predictor')}"}
    result = grpc_infer(address, "iris", predictor)
    assert result.as_numpy("predict_proba").shape == (1, 3)


def test_grpc_probes_stay_open_and_management_needs_a_deployer(
    secured: ServerProcess, keys: Keys
) -> None:
    client = grpcclient.InferenceServerClient(secured.grpc_address)
    try:
        assert client.is_server_live() and client.is_server_ready()
        predictor = {"authorization": f"Bearer {keys('predictor')}"}
        with pytest.raises(InferenceServerException) as caught:
            client.load_model("echo-json", headers=predictor)
        assert "PERMISSION_DENIED" in str(caught.value.status())
        deployer = {"authorization": f"Bearer {keys('deployer')}"}
        client.load_model("echo-json", headers=deployer)
        index = client.get_model_repository_index(headers=deployer, as_json=True)
        assert {m["name"] for m in index["models"]} == {"iris", "iris-onnx", "echo-json"}
    finally:
        client.close()


# --- floods, encoded slashes, duplicate credentials (a server process of their own) ---------


@pytest.fixture(scope="module")
def flooded(model_home: Path) -> Iterator[ServerProcess]:
    """One worker with a small limit on authentication attempts per client address."""
    env = {
        "MODELPORT_HOME": str(model_home),
        "MODELPORT_SECURITY__LIMITS__PEER_RATE_PER_S": "20",
        "MODELPORT_SECURITY__LIMITS__PEER_BURST": "50",
    }
    with ServerProcess(["iris@1", "--workers", "1"], env=env, auth=True) as process:
        yield process


def test_an_anonymous_flood_is_limited_and_counted_not_written_call_by_call(
    flooded: ServerProcess, store: SecurityStore
) -> None:
    before = store.audit_head()
    assert before is not None
    statuses: list[int] = []
    started = time.monotonic()
    with httpx.Client(base_url=flooded.url) as client:
        for i in range(600):
            headers = {"Authorization": "Bearer mpk_000000000000_guess", "x-request-id": f"f{i}"}
            statuses.append(client.post("/v2/models/iris/infer", headers=headers).status_code)
    elapsed = time.monotonic() - started
    assert set(statuses) <= {401, 429}
    # Checked: the burst of 50 and what 20/s refilled meanwhile; the rest refused unchecked.
    assert statuses.count(401) <= 50 + 20 * elapsed + 1
    assert statuses.count(429) >= 600 - (50 + 20 * elapsed + 1)
    flooded.stop()  # a graceful stop writes the counts still open
    entries = [e for e in store.list_audit(limit=None) if e.seq > before.seq]
    # Only this flood's entries: the other test server shares the audit log, and the counted
    # repeats of its own denials are written when their window ends, maybe during this test.
    ids = {f"f{i}" for i in range(600)}
    flood = [e for e in entries if e.actor == "unauthenticated" and e.request_id in ids]
    assert 2 <= len(flood) <= 10, [(e.action, e.details) for e in flood]
    # The first of each run is written as it happens; its repeats come as one counted entry.
    counted = sum(int(e.details.get("repeated", 1)) for e in flood)
    assert counted == 600
    assert all(e.details["client"] == "127.0.0.1" for e in flood)
    assert store.verify_audit().intact


def test_an_encoded_slash_never_reaches_the_repository(secured: ServerProcess, keys: Keys) -> None:
    admin = bearer(keys("admin"))
    sneaky = httpx.post(
        f"{secured.url}/v2%2Frepository%2Fmodels%2Firis%2Funload", headers=admin, json={}
    )
    assert sneaky.status_code == 404
    assert httpx.get(f"{secured.url}/v2/models/iris/ready", headers=admin).status_code == 200


def test_two_authorization_headers_are_refused(secured: ServerProcess, keys: Keys) -> None:
    headers = [("Authorization", f"Bearer {keys('viewer')}"), ("Authorization", "Bearer mpk_x")]
    reply = httpx.get(f"{secured.url}/v2/models/iris", headers=headers)
    assert reply.status_code == 400
    assert "Authorization was sent more than once" in error_of(reply)
    metadata = [("authorization", f"Bearer {keys('viewer')}"), ("authorization", "Bearer x")]
    with grpc.insecure_channel(secured.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelMetadata(pb.ModelMetadataRequest(name="iris"), metadata=metadata)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "more than once" in (caught.value.details() or "")
