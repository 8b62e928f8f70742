"""``modelport up``: a two-variant deployment served in-process, called as a user calls it.

Real processes on loopback ports; tritonclient (HTTP and gRPC) and plain HTTP as clients.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.testing import ServerProcess
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

ROW = [[5.1, 3.5, 1.4, 0.2]]
BODY = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": ROW}]}

DEPLOYMENT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata:
  name: iris
spec:
  variants:
    - {{name: current, model: iris@1, weight: {current}}}
    - {{name: candidate, model: iris@latest, weight: {candidate}, role: treatment}}
  traffic:
    stickyKey:
      header: X-User-Id
"""


def run(home: Path, *args: str) -> str:
    done = modelport(home, *args)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def apply(home: Path, current: int, candidate: int) -> None:
    path = home / "iris.yaml"
    path.write_text(DEPLOYMENT.format(current=current, candidate=candidate))
    run(home, "apply", "-f", str(path))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    X, y = load_iris(return_X_y=True)
    for c in (1.0, 0.01):
        path = home / f"iris-{c}.joblib"
        joblib.dump(LogisticRegression(C=c, max_iter=500).fit(X, y), path)
        run(home, "register", "iris", str(path), "--no-compile")
    run(home, "alias", "set", "iris", "latest", "2")
    apply(home, 90, 10)
    return home


@pytest.fixture(scope="module")
def up(home: Path) -> ServerProcess:
    env = {"MODELPORT_HOME": str(home), "MODELPORT_GATEWAY__POLL_INTERVAL_S": "0.2"}
    with ServerProcess(["--workers", "1"], env, command="up") as server:
        yield server


def infer(url: str, user: str | None, client: httpx.Client) -> httpx.Response:
    headers = {} if user is None else {"X-User-Id": user}
    return client.post(f"{url}/v2/models/iris/infer", json=BODY, headers=headers)


def test_plain_http_names_the_deployment_version_and_variant(up: ServerProcess) -> None:
    with httpx.Client(timeout=10) as client:
        reply = infer(up.url, "user-1", client)
    assert reply.status_code == 200, reply.text
    assert len(reply.headers["x-request-id"]) >= 16  # made for it: what feedback names it by
    body = reply.json()
    assert body["model_name"] == "iris"
    variant = reply.headers["x-modelport-variant"]
    assert (variant, body["model_version"]) in {("current", "1"), ("candidate", "2")}


def test_a_unit_keeps_its_variant_and_the_split_follows_the_weights(up: ServerProcess) -> None:
    with httpx.Client(timeout=10) as client:
        for user in ("alice", "bob", "carol"):
            seen = {infer(up.url, user, client).headers["x-modelport-variant"] for _ in range(5)}
            assert len(seen) == 1, (user, seen)
        counts = Counter(
            infer(up.url, f"user-{n}", client).headers["x-modelport-variant"] for n in range(400)
        )
    # 10% of 400: mean 40, standard deviation 6; four deviations either side.
    assert 16 <= counts["candidate"] <= 64, counts


def test_tritonclient_http_and_grpc(up: ServerProcess) -> None:
    data = np.array(ROW, dtype=np.float64)
    http = httpclient.InferenceServerClient(up.url.removeprefix("http://"))
    tensor = httpclient.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(data, binary_data=True)
    result = http.infer("iris", [tensor], headers={"X-User-Id": "triton"})
    assert result.get_response()["model_name"] == "iris"
    assert result.as_numpy("predict").tolist() in ([0], [1], [2])

    grpc = grpcclient.InferenceServerClient(up.grpc_address)
    tensor = grpcclient.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(data)
    answer = grpc.infer("iris", [tensor], headers={"x-user-id": "triton"})
    response = answer.get_response()
    assert response.model_name == "iris"
    assert response.model_version in ("1", "2")
    assert grpc.is_model_ready("iris")
    assert grpc.get_model_metadata("iris").name == "iris"


def test_versioned_paths_and_unknown_deployments_are_refused(up: ServerProcess) -> None:
    with httpx.Client(timeout=10) as client:
        versioned = client.post(f"{up.url}/v2/models/iris/versions/1/infer", json=BODY)
        unknown = client.post(f"{up.url}/v2/models/nope/infer", json=BODY)
        bad = client.post(f"{up.url}/v2/models/iris/infer", content=b"{not json")
    assert versioned.status_code == 400
    assert "X-Modelport-Variant" in versioned.json()["error"]
    assert unknown.status_code == 404
    assert "no deployment named 'nope'" in unknown.json()["error"]
    assert bad.status_code == 400


def test_a_weight_change_applies_within_seconds_without_errors(
    home: Path, up: ServerProcess
) -> None:
    failures: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not stop.is_set():
                reply = infer(up.url, f"load-{n}", client)
                n += 1
                if reply.status_code != 200:
                    failures.append(reply.text)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        apply(home, 0, 100)
        deadline = time.monotonic() + 5
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline:
                variants = {
                    infer(up.url, f"probe-{n}", client).headers["x-modelport-variant"]
                    for n in range(20)
                }
                if variants == {"candidate"}:
                    break
                time.sleep(0.1)
        assert variants == {"candidate"}
    finally:
        stop.set()
        worker.join()
        apply(home, 90, 10)
    assert not failures


def test_predictions_are_logged_and_flushed_on_a_graceful_stop(home: Path) -> None:
    env = {"MODELPORT_HOME": str(home), "MODELPORT_PREDICTIONS__FLUSH_INTERVAL_S": "60"}
    with ServerProcess(["--workers", "1", "--no-grpc"], env, command="up") as server:
        with httpx.Client(timeout=10) as client:
            ids = [f"logged-{n}" for n in range(25)]
            for rid in ids:
                reply = client.post(
                    f"{server.url}/v2/models/iris/infer", json=BODY, headers={"x-request-id": rid}
                )
                assert reply.status_code == 200
    # The flush interval is a minute: only the graceful stop wrote them.
    output = run(home, "logs", "query", "-d", "iris", "--since", "1h", "-o", "json")
    rows = [json.loads(line) for line in output.splitlines()]
    logged = {row["request_id"] for row in rows}
    assert set(ids) <= logged
    row = next(r for r in rows if r["request_id"] == ids[0])
    assert row["variant"] in ("current", "candidate")
    assert json.loads(row["inputs"]) == {"input": ROW}
    # Schema version 2: answered, and the model's CPU time measured in this process.
    assert (row["schema_version"], row["error"]) == (2, None)
    assert row["cpu_ms"] is not None and row["cpu_ms"] > 0.0


def test_after_kill_9_at_most_the_flush_interval_is_lost(home: Path) -> None:
    interval = 0.5
    env = {"MODELPORT_HOME": str(home), "MODELPORT_PREDICTIONS__FLUSH_INTERVAL_S": str(interval)}
    server = ServerProcess(["--workers", "1", "--no-grpc"], env, command="up")
    server.start()
    sent: list[tuple[str, float]] = []
    try:
        with httpx.Client(timeout=10) as client:
            started = time.monotonic()
            while time.monotonic() - started < 2.0:
                rid = f"kill-{len(sent)}"
                reply = client.post(
                    f"{server.url}/v2/models/iris/infer", json=BODY, headers={"x-request-id": rid}
                )
                assert reply.status_code == 200
                sent.append((rid, time.monotonic()))
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)  # one worker: it serves in this process
        killed = time.monotonic()
    finally:
        server.stop()
    output = run(home, "logs", "query", "-d", "iris", "--since", "1h", "-o", "json")
    logged = {json.loads(line)["request_id"] for line in output.splitlines()}
    lost = [at for rid, at in sent if rid not in logged]
    assert len(lost) < len(sent)  # earlier flushes were written
    window = killed - min(lost) if lost else 0.0
    # At most one flush interval of answers (plus the moment the kill took) is lost.
    print(f"kill -9: lost {len(lost)} of {len(sent)} answers, the last {window:.3f} s")
    assert window <= interval + 0.25, (window, len(lost), len(sent))


def test_grpc_names_the_variant_in_trailing_metadata(up: ServerProcess) -> None:
    import grpc

    from modelport.core.datatypes import Datatype
    from modelport.core.inference import InferenceRequest, Tensor
    from modelport.protocol.grpc_codec import encode_infer_request
    from modelport.protocol.grpc_gen import inference_pb2_grpc as pb_grpc

    tensor = Tensor("input", Datatype.FP64, (1, 4), np.array(ROW, dtype=np.float64))
    message = encode_infer_request(InferenceRequest(inputs=[tensor]), "iris")
    with grpc.insecure_channel(up.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for user in ("alice", "bob", "carol", "dave"):
            response, call = stub.ModelInfer.with_call(message, metadata=[("x-user-id", user)])
            variant = dict(call.trailing_metadata())["x-modelport-variant"]
            expected = {"current": "1", "candidate": "2"}[variant]
            assert (response.model_name, response.model_version) == ("iris", expected)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(message, metadata=[("x-modelport-variant", "nope")])
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "no variant 'nope'" in (refused.value.details() or "")
