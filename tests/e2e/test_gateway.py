"""``modelport gateway`` in front of two ``modelport serve`` replicas: real processes, real clients.

Authentication is on everywhere: the replicas accept the gateway's own key
(``MODELPORT_GATEWAY__UPSTREAM_KEY``), callers present theirs to the gateway.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families
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
metadata: {{name: iris}}
spec:
  variants:
    - {{name: current, model: iris@1, weight: 50}}
    - {{name: candidate, model: iris@2, weight: 50, role: treatment}}
    - {{name: missing, model: iris@3, role: shadow, mirror: 100}}
  traffic: {{stickyKey: {{header: X-User-Id}}}}
  replicas: {{urls: [{urls}]}}
"""


def run(home: Path, *args: str) -> str:
    done = modelport(home, *args)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def key(home: Path, role: str) -> str:
    out = run(home, "keys", "create", "--role", role, "--scope", "iris", "--json")
    return str(json.loads(out)["key"])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    X, y = load_iris(return_X_y=True)
    for c in (1.0, 0.01, 0.5):
        path = home / f"iris-{c}.joblib"
        joblib.dump(LogisticRegression(C=c, max_iter=500).fit(X, y), path)
        run(home, "register", "iris", str(path), "--no-compile")
    return home


@pytest.fixture(scope="module")
def keys(home: Path) -> dict[str, str]:
    return {role: key(home, role) for role in ("predictor", "deployer")}


def replica(home: Path, port: int = 0) -> ServerProcess:
    # Version 3 is registered but served by no replica: the shadow that always fails.
    args = ["iris@1", "iris@2", "--workers", "1", "--no-grpc"]
    return ServerProcess(args, {"MODELPORT_HOME": str(home)}, auth=True, port=port)


@pytest.fixture(scope="module")
def replicas(home: Path) -> Iterator[list[ServerProcess]]:
    servers = [replica(home), replica(home)]
    for server in servers:
        server.start()
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def gateway(
    home: Path, replicas: list[ServerProcess], keys: dict[str, str]
) -> Iterator[ServerProcess]:
    urls = ", ".join(f"'{server.url}'" for server in replicas)
    path = home / "iris.yaml"
    path.write_text(DEPLOYMENT.format(urls=urls))
    run(home, "apply", "-f", str(path))
    upstream = key(home, "predictor")
    env = {
        "MODELPORT_HOME": str(home),
        "MODELPORT_GATEWAY__UPSTREAM_KEY": upstream,
        "MODELPORT_GATEWAY__HEALTH_INTERVAL_S": "0.2",
        "MODELPORT_GATEWAY__BREAKER_OPEN_S": "0.5",
        "MODELPORT_GATEWAY__POLL_INTERVAL_S": "0.2",
        "MODELPORT_SECURITY__AUTH__OPEN_METRICS": "true",
    }
    with ServerProcess(["--workers", "1"], env, auth=True, command="gateway") as server:
        deadline = time.monotonic() + 20
        while httpx.get(f"{server.url}/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "".join(server.output)
            time.sleep(0.1)
        yield server


def auth(keys: dict[str, str], role: str = "predictor") -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[role]}"}


def test_stock_clients_reach_both_versions_through_the_gateway(
    gateway: ServerProcess, keys: dict[str, str]
) -> None:
    data = np.array(ROW, dtype=np.float64)
    http = httpclient.InferenceServerClient(gateway.url.removeprefix("http://"))
    grpc = grpcclient.InferenceServerClient(gateway.grpc_address)
    versions = set()
    for n in range(20):
        tensor = httpclient.InferInput("input", [1, 4], "FP64")
        tensor.set_data_from_numpy(data, binary_data=True)
        result = http.infer("iris", [tensor], headers={**auth(keys), "X-User-Id": f"u{n}"})
        assert result.get_response()["model_name"] == "iris"
        versions.add(result.get_response()["model_version"])
    assert versions == {"1", "2"}
    tensor = grpcclient.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(data)
    headers = {"authorization": auth(keys)["Authorization"], "x-user-id": "u1"}
    answer = grpc.infer("iris", [tensor], headers=headers).get_response()
    assert answer.model_name == "iris" and answer.model_version in ("1", "2")
    assert grpc.get_model_metadata("iris", headers=headers).name == "iris"


def test_a_failing_shadow_costs_the_caller_nothing(
    gateway: ServerProcess, keys: dict[str, str]
) -> None:
    with httpx.Client(timeout=10, headers=auth(keys)) as client:
        for n in range(20):
            reply = client.post(
                f"{gateway.url}/v2/models/iris/infer", json=BODY, headers={"X-User-Id": f"s{n}"}
            )
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-modelport-variant"] in ("current", "candidate")
        time.sleep(0.3)
        metrics = client.get(f"{gateway.url}/metrics").text
    failures = sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "modelport_gateway_shadow_failures_total"
        and sample.labels == {"deployment": "iris", "variant": "missing"}
    )
    assert failures >= 20


def test_only_a_deployer_may_name_the_variant(gateway: ServerProcess, keys: dict[str, str]) -> None:
    headers = {"X-Modelport-Variant": "candidate", "X-User-Id": "u1"}
    url = f"{gateway.url}/v2/models/iris/infer"
    refused = httpx.post(url, json=BODY, headers={**auth(keys), **headers})
    assert refused.status_code == 403, refused.text
    for _ in range(5):
        allowed = httpx.post(url, json=BODY, headers={**auth(keys, "deployer"), **headers})
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["x-modelport-variant"] == "candidate"
        assert allowed.json()["model_version"] == "2"
    unknown = httpx.post(
        url, json=BODY, headers={**auth(keys, "deployer"), "X-Modelport-Variant": "nope"}
    )
    assert unknown.status_code == 400 and "no variant 'nope'" in unknown.json()["error"]
    anonymous = httpx.post(url, json=BODY)
    assert anonymous.status_code == 401


def test_a_replica_killed_under_load_fails_only_its_requests_in_flight(
    home: Path, replicas: list[ServerProcess], gateway: ServerProcess, keys: dict[str, str]
) -> None:
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()
    threads = 4

    def traffic() -> None:
        with httpx.Client(timeout=10, headers=auth(keys)) as client:
            while not stop.is_set():
                reply = client.post(f"{gateway.url}/v2/models/iris/infer", json=BODY)
                if reply.status_code == 200:
                    answered[0] += 1
                else:
                    failures.append(reply.text)

    workers = [threading.Thread(target=traffic) for _ in range(threads)]
    for worker in workers:
        worker.start()
    victim = replicas[0]
    port = int(victim.url.rsplit(":", 1)[1])
    try:
        time.sleep(1.0)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)  # its single worker process serves in the parent
        victim.stop()
        time.sleep(1.5)
        before = answered[0]
        time.sleep(1.0)
        assert answered[0] > before  # traffic moved to the other replica
        # The replica comes back on its port: it gets traffic again once a health check passes.
        back = replica(home, port)
        back.start()
        replicas[0] = back
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if sum("POST /v2/models/iris/versions" in line for line in back.output) >= 10:
                break
            time.sleep(0.2)
        assert sum("POST /v2/models/iris/versions" in line for line in back.output) >= 10
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    # Only requests in flight on the killed replica may fail: at most one per client thread.
    assert len(failures) <= threads, failures
    log = "".join(gateway.output)
    assert f"replica {victim.url} of deployment 'iris'" in log, log[-2000:]
    assert "is up again" in log


def test_a_weight_change_reaches_the_gateway_within_seconds(
    home: Path, replicas: list[ServerProcess], gateway: ServerProcess, keys: dict[str, str]
) -> None:
    urls = ", ".join(f"'{server.url}'" for server in replicas)
    path = home / "iris.yaml"
    path.write_text(
        DEPLOYMENT.format(urls=urls)
        .replace("weight: 50}", "weight: 0}", 1)
        .replace("weight: 50, role: treatment", "weight: 100, role: treatment")
    )
    run(home, "apply", "-f", str(path))
    deadline = time.monotonic() + 5
    with httpx.Client(timeout=10, headers=auth(keys)) as client:
        while True:
            seen = {
                client.post(
                    f"{gateway.url}/v2/models/iris/infer", json=BODY, headers={"X-User-Id": f"w{n}"}
                ).headers["x-modelport-variant"]
                for n in range(20)
            }
            if seen == {"candidate"} or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert seen == {"candidate"}


def test_start_up_errors_and_a_graceful_stop(home: Path, gateway: ServerProcess) -> None:
    command = [sys.executable, "-m", "modelport.cli", "gateway", "--no-auth", "--no-grpc"]
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    port = gateway.url.rsplit(":", 1)[1]
    busy = subprocess.run(
        [*command, "--port", port], env=env, capture_output=True, text=True, timeout=60
    )
    assert busy.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in busy.stderr
    bad = subprocess.run(
        [*command, "--port", "0"],
        env={**env, "MODELPORT_GATEWAY__POLL_INTERVAL_S": "soon"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "gateway.poll_interval_s" in bad.stderr or "POLL_INTERVAL_S" in bad.stderr.upper()

    server = ServerProcess(
        ["--workers", "1", "--no-grpc"], {"MODELPORT_HOME": str(home)}, command="gateway"
    )
    server.start()
    assert server.stop() == 0
    assert any("stopped (exit status 0)" in line for line in server.output)
