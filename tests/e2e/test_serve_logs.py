"""``modelport serve``'s logs: access lines, --log-format json, --log-level, start-up lines."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from modelport.testing import ServerProcess
from tests.e2e.test_serve_ports import iris_onnx

pytestmark = pytest.mark.slow

ACCESS_FIELDS = {
    "time",
    "level",
    "logger",
    "message",
    "method",
    "path",
    "status",
    "duration_ms",
    "model",
    "version",
    "request_id",
    "identity",
}
INFER = {"inputs": [{"name": "X", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return iris_onnx(tmp_path_factory.mktemp("logs"))


def _wait_for(server: ServerProcess, found: Callable[[list[str]], bool]) -> list[str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = list(server.output)
        if found(lines):
            return lines
        time.sleep(0.05)
    raise AssertionError("".join(server.output))


def _json_lines(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


def _serve(artifact: Path, tmp_path: Path, *args: str, **env: str) -> ServerProcess:
    return ServerProcess(
        [str(artifact), "--name", "iris", "--workers", "1", *args],
        env={"MODELPORT_HOME": str(tmp_path), **env},
    )


def test_json_lines_one_access_line_per_request(artifact: Path, tmp_path: Path) -> None:
    with _serve(artifact, tmp_path, "--log-format", "json") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(5):
                assert client.post("/v2/models/iris/infer", json=INFER).status_code == 200
            assert client.get("/v2/models/ghost").status_code == 404

        def access(lines: list[str]) -> list[dict[str, object]]:
            return [
                doc
                for doc in _json_lines(lines)
                if doc["logger"] == "modelport.access" and doc["path"] != "/v2/health/live"
            ]

        lines = _wait_for(server, lambda lines: len(access(lines)) >= 6)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGTERM)
        lines = _wait_for(server, lambda lines: any("stopped" in line for line in lines))
    every = _json_lines(lines)
    # Every log line is JSON: only the announcement for scripts ("serving on ...") is not.
    assert all(line.startswith("{") for line in lines if not line.startswith(("serving", "grpc")))
    entries = access(lines)
    assert len(entries) == 6
    for entry in entries:
        assert set(entry) == ACCESS_FIELDS
        assert entry["level"] == "info"
        assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(entry["time"]))
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/v2/models/iris/infer", 200)
    ] * 5 + [("GET", "/v2/models/ghost", 404)]
    started = [doc for doc in every if doc.get("event") == "worker_started"]
    assert started and started[0]["models"] == [
        {"name": "iris", "version": "1", "platform": "onnxruntime_onnx"}
    ]
    assert "iris@1" in str(started[0]["message"])
    serving = [doc for doc in every if doc.get("event") == "started"]
    assert serving[0]["models"] == [{"name": "iris", "version": "1"}]
    assert serving[0]["rest"] == server.url
    stopping = [doc for doc in every if doc.get("event") == "worker_stopping"]
    assert stopping and stopping[0]["models"] == ["iris@1"]


def test_text_lines_by_default(artifact: Path, tmp_path: Path) -> None:
    with _serve(artifact, tmp_path) as server:
        assert httpx.post(f"{server.url}/v2/models/iris/infer", json=INFER).status_code == 200
        pattern = re.compile(
            r"\S+Z INFO access POST /v2/models/iris/infer 200 \d+\.\d{3}ms model=\S+ "
            r"version=\S+ request_id=\S+ identity=\S+\n"
        )
        lines = _wait_for(server, lambda lines: any(pattern.fullmatch(x) for x in lines))
    assert any(re.search(r" INFO modelport.server worker \d+ loaded iris@1 ", x) for x in lines)


def test_log_level_warning_drops_info_lines(artifact: Path, tmp_path: Path) -> None:
    with _serve(artifact, tmp_path, "--log-level", "warning") as server:
        for _ in range(3):
            assert httpx.get(f"{server.url}/v2/models/iris").status_code == 200
        time.sleep(0.5)  # what the writer thread had queued is out by now
        lines = list(server.output)
    assert [x for x in lines if not x.startswith(("serving", "grpc on"))] == []


def test_access_log_off_by_setting(artifact: Path, tmp_path: Path) -> None:
    with _serve(artifact, tmp_path, MODELPORT_LOG__ACCESS="false") as server:
        assert httpx.get(f"{server.url}/v2/models/iris").status_code == 200
        lines = _wait_for(server, lambda lines: any(" serving iris@1 on " in x for x in lines))
        time.sleep(0.5)
        lines = list(server.output)
    assert not [x for x in lines if " access " in x]
    assert any(" loaded iris@1 " in x for x in lines)


def test_bad_log_options_are_refused(artifact: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "modelport.cli", "serve", str(artifact), "--name", "iris"]
        + ["--no-auth", "--log-format", "xml"],
        env={**os.environ, "MODELPORT_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --log-format 'xml': expected one of text, json"


def test_rest_and_grpc_access_lines_name_the_model_version_request_and_caller(
    artifact: Path, tmp_path: Path
) -> None:
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from modelport.core.settings import Settings
    from modelport.security.identity import parse_grants
    from modelport.server.logs import identity_hash
    from modelport.service.wiring import open_security_store

    with open_security_store(Settings(home=tmp_path)) as store:
        record, token = store.create_key("logs", parse_grants(["predictor"]), None, "tests")
    args = [str(artifact), "--name", "iris", "--workers", "1", "--log-format", "json"]
    server = ServerProcess(args, env={"MODELPORT_HOME": str(tmp_path)}, auth=True)
    with server:
        headers = {"authorization": f"Bearer {token}", "x-request-id": "rest-1"}
        reply = httpx.post(f"{server.url}/v2/models/iris/infer", json=INFER, headers=headers)
        assert reply.status_code == 200
        client = grpcclient.InferenceServerClient(server.grpc_address)
        try:
            tensor = grpcclient.InferInput("X", [1, 4], "FP64")
            tensor.set_data_from_numpy(np.array([[1.0, 2, 3, 4]]))
            grpc_headers = {"authorization": f"Bearer {token}", "x-request-id": "grpc-1"}
            client.infer("iris", [tensor], headers=grpc_headers)
            with pytest.raises(InferenceServerException):
                client.infer("iris", [tensor], headers={"x-request-id": "grpc-2"})
        finally:
            client.close()

        def access(lines: list[str]) -> list[dict[str, object]]:
            return [
                doc
                for doc in _json_lines(lines)
                if doc["logger"] == "modelport.access" and doc["request_id"] is not None
            ]

        lines = _wait_for(server, lambda lines: len(access(lines)) >= 3)
    who = identity_hash(f"key:{record.key_id}")
    entries = {e["request_id"]: e for e in access(lines)}
    rest, grpc_ok, grpc_denied = entries["rest-1"], entries["grpc-1"], entries["grpc-2"]
    assert (rest["path"], rest["status"], rest["model"], rest["version"]) == (
        "/v2/models/iris/infer",
        200,
        "iris",
        "1",
    )
    assert rest["identity"] == grpc_ok["identity"] == who
    assert (grpc_ok["method"], grpc_ok["path"], grpc_ok["status"]) == (
        "GRPC",
        "/inference.GRPCInferenceService/ModelInfer",
        "OK",
    )
    assert (grpc_ok["model"], grpc_ok["version"]) == ("iris", "1")
    assert (grpc_denied["status"], grpc_denied["identity"]) == ("UNAUTHENTICATED", None)
    assert token not in "".join(lines)  # the credential itself is never logged
