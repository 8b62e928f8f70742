"""OpenTelemetry tracing through real processes, exported to a real OTLP/HTTP receiver.

A caller's W3C ``traceparent`` goes into ``modelport gateway``; the gateway's request span is its
child, the gateway's ``forward`` span carries the context to a ``modelport serve`` replica, whose
request span is the forward span's child, with ``parse``, ``queue`` and ``inference`` under it.
The same under ``modelport up`` (variants in-process: the stages are under the gateway's span),
over REST and gRPC. Every process exports over OTLP/HTTP protobuf to the receiver of
``tests/e2e/_otlp.py``, which decodes what it gets with opentelemetry-proto's messages.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.server.tracing import INSTALL_HINT
from modelport.testing import ServerProcess
from tests.e2e._cli import modelport
from tests.e2e._otlp import CLIENT, INTERNAL, SERVER, OtlpReceiver, ReceivedSpan
from tests.no_opentelemetry import BLOCK_OPENTELEMETRY

pytestmark = pytest.mark.slow

ROW = [[5.1, 3.5, 1.4, 0.2]]
BODY = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": ROW}]}
INFER_ROUTE = "/v2/models/{model_name}/infer"
REPLICA_ROUTE = "/v2/models/{model_name}/versions/{model_version}/infer"
GRPC_INFER = "inference.GRPCInferenceService/ModelInfer"

DEPLOYMENT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {{name: iris}}
spec:
  variants:
    - {{name: current, model: iris@1, weight: 100}}
{replicas}"""


def run(home: Path, *args: str) -> str:
    done = modelport(home, *args)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    X, y = load_iris(return_X_y=True)
    path = home / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), path)
    run(home, "register", "iris", str(path), "--no-compile")
    return home


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def tracing_env(home: Path, receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    return {
        "MODELPORT_HOME": str(home),
        "MODELPORT_TRACING__ENABLED": "true",
        "MODELPORT_TRACING__ENDPOINT": receiver.endpoint,
        "MODELPORT_GATEWAY__POLL_INTERVAL_S": "0.2",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # the SDK's export interval (ms): spans arrive soon
        **extra,
    }


@pytest.fixture(scope="module")
def replica(home: Path, receiver: OtlpReceiver) -> Iterator[ServerProcess]:
    # Batching on: the queue span is the time the request waited in the batcher.
    env = tracing_env(home, receiver, MODELPORT_BATCHING__ENABLED="true")
    with ServerProcess(["iris@1", "--workers", "1"], env) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(home: Path, receiver: OtlpReceiver, replica: ServerProcess) -> Iterator[ServerProcess]:
    path = home / "iris.yaml"
    path.write_text(DEPLOYMENT.format(replicas=f"  replicas: {{urls: ['{replica.url}']}}\n"))
    run(home, "apply", "-f", str(path))
    with ServerProcess(
        ["--workers", "1"], tracing_env(home, receiver), command="gateway"
    ) as server:
        yield server


def caller_context() -> tuple[str, str, dict[str, str]]:
    """A caller's trace id, span id and the headers that carry them (sampled)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{span_id}-01", "tracestate": "caller=1"}
    return trace_id, span_id, headers


def one(spans: list[ReceivedSpan], **wanted: object) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in wanted.items())]
    assert len(found) == 1, (wanted, spans)
    return found[0]


def has(spans: list[ReceivedSpan], *names: str) -> bool:
    return all(any(s.name == name for s in spans) for name in names)


def assert_stages(spans: list[ReceivedSpan], parent: ReceivedSpan, version: str) -> None:
    """``parse``, ``queue`` and ``inference`` under ``parent``, in order, within it."""
    stages = {s.name: s for s in spans if s.parent_id == parent.span_id and s.kind == INTERNAL}
    assert set(stages) == {"parse", "queue", "inference"}, spans
    parse, queue, inference = stages["parse"], stages["queue"], stages["inference"]
    assert all(s.service == parent.service for s in stages.values())
    assert parent.start_ns <= parse.start_ns <= parse.end_ns <= queue.start_ns
    assert queue.start_ns <= queue.end_ns == inference.start_ns <= inference.end_ns
    assert inference.end_ns <= parent.end_ns
    assert inference.attributes == {"modelport.model": "iris", "modelport.model_version": version}


def test_a_callers_trace_goes_through_the_gateway_to_the_replica(
    gateway: ServerProcess, receiver: OtlpReceiver
) -> None:
    trace_id, caller, headers = caller_context()
    answer = httpx.post(f"{gateway.url}/v2/models/iris/infer", json=BODY, headers=headers)
    assert answer.status_code == 200, answer.text
    spans = receiver.wait_for(trace_id, lambda s: has(s, "inference", "forward") and len(s) >= 6)
    assert {s.trace_id for s in spans} == {trace_id}
    request = one(spans, service="modelport-gateway", kind=SERVER)
    assert request.parent_id == caller
    assert request.name == f"POST {INFER_ROUTE}"
    assert request.attributes == {
        "http.request.method": "POST",
        "url.path": "/v2/models/iris/infer",
        "http.route": INFER_ROUTE,
        "http.response.status_code": 200,
        "modelport.deployment": "iris",
        "modelport.variant": "current",
        "modelport.model_version": "1",
        "modelport.request_id": answer.headers["x-request-id"],
    }
    forward = one(spans, name="forward")
    assert (forward.service, forward.kind, forward.parent_id) == (
        "modelport-gateway",
        CLIENT,
        request.span_id,
    )
    assert forward.attributes == {
        "http.request.method": "POST",
        "modelport.model": "iris",
        "modelport.model_version": "1",
        "http.response.status_code": 200,
        "modelport.replica": forward.attributes["modelport.replica"],
    }
    assert request.start_ns <= forward.start_ns <= forward.end_ns <= request.end_ns
    # The forward span's context reached the replica: its request span is the forward's child.
    served = one(spans, service="modelport-server", kind=SERVER)
    assert served.parent_id == forward.span_id
    assert served.name == f"POST {REPLICA_ROUTE}"
    assert served.attributes["http.route"] == REPLICA_ROUTE
    assert served.attributes["modelport.model"] == "iris"
    assert served.attributes["modelport.model_version"] == "1"
    assert served.attributes["modelport.request_id"] == answer.headers["x-request-id"]
    assert_stages(spans, served, "1")
    assert len(spans) == 6
    assert receiver.content_types == {"application/x-protobuf"}


def test_grpc_carries_the_trace_through_the_gateway_and_into_a_replica(
    gateway: ServerProcess, replica: ServerProcess, receiver: OtlpReceiver
) -> None:
    tensor = grpcclient.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.array(ROW, dtype=np.float64))
    # Through the gateway: its gRPC span, then the REST hop to the replica.
    trace_id, caller, headers = caller_context()
    client = grpcclient.InferenceServerClient(gateway.grpc_address)
    assert client.infer("iris", [tensor], headers=headers).get_response().model_name == "iris"
    spans = receiver.wait_for(trace_id, lambda s: has(s, "inference", "forward") and len(s) >= 6)
    request = one(spans, service="modelport-gateway", kind=SERVER)
    assert (request.name, request.parent_id) == (GRPC_INFER, caller)
    assert request.attributes["rpc.system"] == "grpc"
    assert request.attributes["rpc.grpc.status_code"] == 0
    assert request.attributes["modelport.deployment"] == "iris"
    assert request.attributes["modelport.variant"] == "current"
    forward = one(spans, name="forward")
    assert forward.parent_id == request.span_id
    served = one(spans, service="modelport-server", kind=SERVER)
    assert served.parent_id == forward.span_id
    assert_stages(spans, served, "1")
    # Straight to the replica over gRPC: traceparent read from the call's metadata.
    trace_id, caller, headers = caller_context()
    direct = grpcclient.InferenceServerClient(replica.grpc_address)
    assert direct.infer("iris", [tensor], headers=headers).get_response().model_name == "iris"
    spans = receiver.wait_for(trace_id, lambda s: has(s, "inference") and len(s) >= 4)
    served = one(spans, service="modelport-server", kind=SERVER)
    assert (served.name, served.parent_id) == (GRPC_INFER, caller)
    assert served.attributes["modelport.model"] == "iris"
    assert_stages(spans, served, "1")


def test_a_request_without_traceparent_starts_a_trace_and_probes_make_none(
    gateway: ServerProcess, receiver: OtlpReceiver
) -> None:
    answer = httpx.post(f"{gateway.url}/v2/models/iris/infer", json=BODY)
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]

    def mine() -> list[ReceivedSpan]:
        return [s for s in receiver.spans if s.attributes.get("modelport.request_id") == request_id]

    receiver.wait_for("", lambda _: len(mine()) == 2)
    request = one(mine(), service="modelport-gateway")
    assert request.parent_id == ""  # a root: the gateway started the trace
    assert has(receiver.trace(request.trace_id), "forward", "parse", "queue", "inference")
    assert httpx.get(f"{gateway.url}/v2/health/ready").status_code == 200
    assert not [s for s in receiver.spans if "health" in str(s.attributes.get("url.path"))]


def test_every_forked_worker_traces_and_exports_when_stopped(
    home: Path, receiver: OtlpReceiver
) -> None:
    # Two workers: the supervisor forks them, and each starts its own tracer after the fork.
    env = tracing_env(home, receiver, OTEL_BSP_SCHEDULE_DELAY="60000")  # exported at stop only
    callers = [caller_context() for _ in range(8)]
    with ServerProcess(["iris@1", "--workers", "2"], env) as server:
        with httpx.Client() as client:  # a new connection each: the kernel spreads them
            for _, _, headers in callers:
                url = f"{server.url}/v2/models/iris/infer"
                answer = client.post(url, json=BODY, headers={**headers, "connection": "close"})
                assert answer.status_code == 200
        assert server.stop() == 0
    for trace_id, caller, _ in callers:
        spans = receiver.trace(trace_id)
        served = one(spans, service="modelport-server", kind=SERVER)
        assert served.parent_id == caller
        assert_stages(spans, served, "1")


def test_up_records_the_stages_under_the_gateways_span_and_flushes_when_stopped(
    tmp_path: Path, home: Path, receiver: OtlpReceiver
) -> None:
    # Its own data directory: a deployment without replicas, served in-process.
    own = tmp_path / "home"
    own.mkdir()
    run(own, "register", "iris", str(home / "iris.joblib"), "--no-compile")
    path = own / "iris.yaml"
    path.write_text(DEPLOYMENT.format(replicas=""))
    run(own, "apply", "-f", str(path))
    env = tracing_env(own, receiver, OTEL_BSP_SCHEDULE_DELAY="60000")  # exported at stop only
    trace_id, caller, headers = caller_context()
    grpc_trace, grpc_caller, grpc_headers = caller_context()
    with ServerProcess(["--workers", "1"], env, command="up") as up:
        answer = httpx.post(f"{up.url}/v2/models/iris/infer", json=BODY, headers=headers)
        assert answer.status_code == 200, answer.text
        tensor = grpcclient.InferInput("input", [1, 4], "FP64")
        tensor.set_data_from_numpy(np.array(ROW, dtype=np.float64))
        client = grpcclient.InferenceServerClient(up.grpc_address)
        assert client.infer("iris", [tensor], headers=grpc_headers).get_response().model_name
        assert receiver.trace(trace_id) == []  # queued in the process, not exported yet
        assert up.stop() == 0  # a graceful stop exports what is queued
    spans = receiver.trace(trace_id)
    request = one(spans, service="modelport-up", kind=SERVER)
    assert request.parent_id == caller
    assert request.attributes["modelport.deployment"] == "iris"
    assert request.attributes["modelport.variant"] == "current"
    assert request.attributes["http.response.status_code"] == 200
    assert not [s for s in spans if s.name == "forward"]  # no network hop in-process
    assert_stages(spans, request, "1")
    assert len(spans) == 4
    spans = receiver.trace(grpc_trace)
    request = one(spans, service="modelport-up", kind=SERVER)
    assert (request.name, request.parent_id) == (GRPC_INFER, grpc_caller)
    assert_stages(spans, request, "1")


SERVE_AND_LOOK = """
import os
import signal
import sys
import threading
import time

import httpx

port = int(sys.argv[1])


def look() -> None:
    # Once a request was answered: which OpenTelemetry modules did the process import?
    url = f"http://127.0.0.1:{port}/v2/models/iris/infer"
    body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4],
                        "data": [[5.1, 3.5, 1.4, 0.2]]}]}
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline and status != 200:
        try:
            status = httpx.post(url, json=body, headers={"traceparent": TRACEPARENT}).status_code
        except httpx.TransportError:
            time.sleep(0.05)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
    print(f"answered={status} opentelemetry={loaded}", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=look, daemon=True).start()
sys.argv = ["modelport", *sys.argv[2:], "--port", str(port), "--no-grpc", "--no-auth"]
from modelport.cli.main import main

main()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_in_python(
    home: Path, code: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "MODELPORT_HOME": str(home), **env}
    full.pop("MODELPORT_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-c", code, str(free_port()), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "blocked"),
    [
        (("serve", "iris@1", "--workers", "1"), False),
        (("serve", "iris@1", "--workers", "1"), True),
        (("up", "--workers", "1"), False),
    ],
    ids=["serve", "serve-without-the-extra", "up"],
)
def test_tracing_off_imports_no_opentelemetry_in_a_serving_process(
    tmp_path: Path, home: Path, command: tuple[str, ...], blocked: bool
) -> None:
    own = tmp_path / "home"
    own.mkdir()
    run(own, "register", "iris", str(home / "iris.joblib"), "--no-compile")
    (own / "iris.yaml").write_text(DEPLOYMENT.format(replicas=""))
    run(own, "apply", "-f", str(own / "iris.yaml"))
    _, _, headers = caller_context()
    code = SERVE_AND_LOOK.replace("TRACEPARENT", repr(headers["traceparent"]))
    done = serve_in_python(own, (BLOCK_OPENTELEMETRY if blocked else "") + code, *command)
    assert "answered=200 opentelemetry=[]" in done.stdout, (done.stdout, done.stderr)


def test_tracing_on_without_the_extra_stops_the_start_with_the_install_hint(
    tmp_path: Path,
) -> None:
    done = serve_in_python(
        tmp_path,
        BLOCK_OPENTELEMETRY + "from modelport.cli.main import main\nmain(sys.argv[2:])\n",
        "gateway",
        "--no-auth",
        "--port",
        "0",
        MODELPORT_TRACING__ENABLED="true",
    )
    assert done.returncode == 2, (done.stdout, done.stderr)  # a configuration error
    assert done.stderr.strip().endswith(
        f"are not installed (opentelemetry is missing): {INSTALL_HINT}"
    )
    assert "Traceback" not in done.stderr
