"""Every REST endpoint over plain HTTP, and the bad-input cases with their statuses and messages."""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.conftest import MAX_BODY

pytestmark = pytest.mark.slow

ROW = [[5.1, 3.5, 1.4, 0.2]]


def _infer_body(**overrides: Any) -> bytes:
    tensor = {"name": "input", "datatype": "FP64", "shape": [1, 4], "data": ROW}
    tensor.update(overrides)
    return orjson.dumps({"inputs": [tensor]})


@pytest.fixture()
def http(url: str) -> httpx.Client:
    with httpx.Client(base_url=url, timeout=10) as client:
        yield client


@pytest.mark.parametrize("prefix", ["/v2/models/iris", "/v2/models/iris/versions/1"])
def test_model_endpoints_with_and_without_version(http: httpx.Client, prefix: str) -> None:
    assert http.get(f"{prefix}/ready").json()["ready"] is True
    meta = http.get(prefix).json()
    assert meta["name"] == "iris"
    assert set(meta["versions"]) == {"1", "2"}
    reply = http.post(
        f"{prefix}/infer", content=_infer_body(), headers={"content-type": "application/json"}
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "inference-header-content-length" not in reply.headers
    assert body["model_name"] == "iris"
    assert {o["name"] for o in body["outputs"]} == {"predict", "predict_proba"}
    assert body["outputs"][0]["shape"][0] == 1


def test_server_endpoints(http: httpx.Client) -> None:
    assert http.get("/v2").json()["name"] == "modelport"
    assert http.get("/v2/health/live").status_code == 200
    assert http.get("/v2/health/ready").status_code == 200
    index = http.post("/v2/repository/index", json={"ready": True}).json()
    assert all(set(m) == {"name", "version", "state", "reason"} for m in index)


def test_flat_data_and_parameters_and_id(http: httpx.Client) -> None:
    body = {
        "id": "abc",
        "parameters": {"note": "x", "n": 3, "flag": True},
        "inputs": [
            {
                "name": "input",
                "datatype": "FP64",
                "shape": [2, 4],
                "data": ROW[0] * 2,
                "parameters": {"content_type": "np"},
            }
        ],
        "outputs": [{"name": "predict"}],
    }
    reply = http.post("/v2/models/iris/infer", json=body).json()
    assert reply["id"] == "abc"
    assert [o["name"] for o in reply["outputs"]] == ["predict"]
    assert reply["outputs"][0]["shape"] == [2]


def test_binary_request_and_response_by_hand(http: httpx.Client) -> None:
    raw = struct.pack("<4d", *ROW[0])
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP64",
                    "shape": [1, 4],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    reply = http.post(
        "/v2/models/iris/infer",
        content=header + raw,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert reply.status_code == 200, reply.text
    length = int(reply.headers["inference-header-content-length"])
    meta = orjson.loads(reply.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in meta["outputs"]]
    assert sum(sizes) == len(reply.content) - length


def test_raw_single_input_with_zero_header_length(http: httpx.Client) -> None:
    raw = struct.pack("<4d", *ROW[0])
    reply = http.post(
        "/v2/models/iris/infer", content=raw, headers={"Inference-Header-Content-Length": "0"}
    )
    assert reply.status_code == 200, reply.text


BAD: list[tuple[str, str, str, bytes | None, dict[str, str], int, str]] = [
    # (case id, method, path, body, headers, status, message fragment)
    ("bad-json", "POST", "/v2/models/iris/infer", b"{not json", {}, 400, "JSON"),
    ("json-not-object", "POST", "/v2/models/iris/infer", b"[1, 2]", {}, 400, "object"),
    ("no-inputs", "POST", "/v2/models/iris/infer", b"{}", {}, 400, "inputs"),
    ("inputs-empty", "POST", "/v2/models/iris/infer", b'{"inputs": []}', {}, 400, "inputs"),
    (
        "unknown-input",
        "POST",
        "/v2/models/iris/infer",
        _infer_body(name="features"),
        {},
        400,
        "unknown input 'features'",
    ),
    (
        "wrong-datatype",
        "POST",
        "/v2/models/iris/infer",
        _infer_body(datatype="INT64", data=[[1, 2, 3, 4]]),
        {},
        400,
        "expects FP64",
    ),
    (
        "unknown-datatype",
        "POST",
        "/v2/models/iris/infer",
        _infer_body(datatype="FLOAT"),
        {},
        400,
        "datatype",
    ),
    ("shape-mismatch", "POST", "/v2/models/iris/infer", _infer_body(shape=[1, 5]), {}, 400, "5"),
    (
        "wrong-feature-count",
        "POST",
        "/v2/models/iris/infer",
        _infer_body(shape=[1, 3], data=[[1.0, 2.0, 3.0]]),
        {},
        400,
        "[-1, 4]",
    ),
    ("negative-dim", "POST", "/v2/models/iris/infer", _infer_body(shape=[-1, 4]), {}, 400, "shape"),
    ("shape-not-list", "POST", "/v2/models/iris/infer", _infer_body(shape="1x4"), {}, 400, "shape"),
    (
        "ragged-data",
        "POST",
        "/v2/models/iris/infer",
        _infer_body(shape=[2, 4], data=[[1.0, 2.0, 3.0, 4.0], [1.0]]),
        {},
        400,
        "input",
    ),
    (
        "string-in-fp64",
        "POST",
        "/v2/models/iris/infer",
        _infer_body(data=[["a", "b", "c", "d"]]),
        {},
        400,
        "FP64",
    ),
    (
        "bool-in-fp64",
        "POST",
        "/v2/models/iris/infer",
        _infer_body(data=[[True, False, True, False]]),
        {},
        400,
        "FP64",
    ),
    (
        "missing-data",
        "POST",
        "/v2/models/iris/infer",
        orjson.dumps({"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4]}]}),
        {},
        400,
        "data",
    ),
    (
        "missing-name",
        "POST",
        "/v2/models/iris/infer",
        orjson.dumps({"inputs": [{"datatype": "FP64", "shape": [1, 4], "data": ROW}]}),
        {},
        400,
        "name",
    ),
    (
        "duplicate-input",
        "POST",
        "/v2/models/iris/infer",
        orjson.dumps({"inputs": [orjson.loads(_infer_body())["inputs"][0]] * 2}),
        {},
        400,
        "more than once",
    ),
    (
        "unknown-output",
        "POST",
        "/v2/models/iris/infer",
        orjson.dumps({**orjson.loads(_infer_body()), "outputs": [{"name": "score"}]}),
        {},
        400,
        "unknown output 'score'",
    ),
    (
        "id-not-string",
        "POST",
        "/v2/models/iris/infer",
        orjson.dumps({**orjson.loads(_infer_body()), "id": 5}),
        {},
        400,
        "id",
    ),
    (
        "parameters-not-object",
        "POST",
        "/v2/models/iris/infer",
        orjson.dumps({**orjson.loads(_infer_body()), "parameters": [1]}),
        {},
        400,
        "parameters",
    ),
    (
        "parameter-value-object",
        "POST",
        "/v2/models/iris/infer",
        orjson.dumps({**orjson.loads(_infer_body()), "parameters": {"a": {"b": 1}}}),
        {},
        400,
        "parameter",
    ),
    (
        "header-length-not-int",
        "POST",
        "/v2/models/iris/infer",
        _infer_body(),
        {"Inference-Header-Content-Length": "ten"},
        400,
        "Inference-Header-Content-Length",
    ),
    (
        "header-length-too-big",
        "POST",
        "/v2/models/iris/infer",
        _infer_body(),
        {"Inference-Header-Content-Length": "100000"},
        400,
        "Inference-Header-Content-Length",
    ),
    (
        "binary-too-short",
        "POST",
        "/v2/models/iris/infer",
        orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP64",
                        "shape": [1, 4],
                        "parameters": {"binary_data_size": 32},
                    }
                ]
            }
        )
        + b"\x00" * 8,
        {
            "Inference-Header-Content-Length": str(
                len(
                    orjson.dumps(
                        {
                            "inputs": [
                                {
                                    "name": "input",
                                    "datatype": "FP64",
                                    "shape": [1, 4],
                                    "parameters": {"binary_data_size": 32},
                                }
                            ]
                        }
                    )
                )
            )
        },
        400,
        "binary",
    ),
    (
        "binary-size-wrong-for-shape",
        "POST",
        "/v2/models/iris/infer",
        orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP64",
                        "shape": [1, 4],
                        "parameters": {"binary_data_size": 16},
                    }
                ]
            }
        )
        + b"\x00" * 16,
        {
            "Inference-Header-Content-Length": str(
                len(
                    orjson.dumps(
                        {
                            "inputs": [
                                {
                                    "name": "input",
                                    "datatype": "FP64",
                                    "shape": [1, 4],
                                    "parameters": {"binary_data_size": 16},
                                }
                            ]
                        }
                    )
                )
            )
        },
        400,
        "32",
    ),
    (
        "raw-body-wrong-size",
        "POST",
        "/v2/models/iris/infer",
        b"\x00" * 7,
        {"Inference-Header-Content-Length": "0"},
        400,
        "input",
    ),
    (
        "raw-body-multi-input-model",
        "POST",
        "/v2/models/echo-json/infer",
        b"\x00" * 8,
        {"Inference-Header-Content-Length": "0"},
        400,
        "inputs",
    ),
    (
        "bf16-in-json",
        "POST",
        "/v2/models/echo-binary/infer",
        orjson.dumps(
            {"inputs": [{"name": "bf16", "datatype": "BF16", "shape": [1], "data": [1.0]}]}
        ),
        {},
        400,
        "BF16",
    ),
    (
        "int-out-of-range",
        "POST",
        "/v2/models/echo-json/infer",
        orjson.dumps(
            {"inputs": [{"name": "uint8", "datatype": "UINT8", "shape": [1, 1], "data": [300]}]}
        ),
        {},
        400,
        "UINT8",
    ),
    (
        "missing-inputs-of-model",
        "POST",
        "/v2/models/echo-json/infer",
        orjson.dumps(
            {"inputs": [{"name": "int32", "datatype": "INT32", "shape": [1, 1], "data": [3]}]}
        ),
        {},
        400,
        "missing input",
    ),
    (
        "unknown-model",
        "POST",
        "/v2/models/nope/infer",
        _infer_body(),
        {},
        404,
        "unknown model 'nope'",
    ),
    (
        "unknown-version",
        "POST",
        "/v2/models/iris/versions/9/infer",
        _infer_body(),
        {},
        404,
        "no version '9'",
    ),
    ("unknown-model-metadata", "GET", "/v2/models/nope", None, {}, 404, "unknown model"),
    ("unknown-model-ready", "GET", "/v2/models/nope/ready", None, {}, 404, "unknown model"),
    ("unknown-endpoint", "GET", "/v2/nothing/here", None, {}, 404, "no such endpoint"),
    ("wrong-method", "GET", "/v2/models/iris/infer", None, {}, 405, "not allowed"),
    ("body-too-large", "POST", "/v2/models/iris/infer", b"x" * (MAX_BODY + 1), {}, 413, "limit"),
    ("load-unknown-model", "POST", "/v2/repository/models/nope/load", b"", {}, 404, "nope"),
    ("unload-unknown-model", "POST", "/v2/repository/models/nope/unload", b"", {}, 404, "nope"),
    ("load-bad-json", "POST", "/v2/repository/models/iris/load", b"{", {}, 400, "JSON"),
    (
        "load-parameters-not-object",
        "POST",
        "/v2/repository/models/iris/load",
        b'{"parameters": 3}',
        {},
        400,
        "parameters",
    ),
    ("index-ready-not-bool", "POST", "/v2/repository/index", b'{"ready": "yes"}', {}, 400, "ready"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "fragment"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_input(
    http: httpx.Client,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    reply = http.request(method, path, content=body, headers=headers)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    message = reply.json()["error"]
    assert fragment in message, message


def test_body_too_large_streamed_without_length(http: httpx.Client) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"x" * 65536

    reply = http.post("/v2/models/iris/infer", content=chunks())
    assert reply.status_code == 413
    assert "limit" in reply.json()["error"]


def test_server_still_healthy_after_bad_input(http: httpx.Client) -> None:
    assert http.get("/v2/health/ready").status_code == 200
    assert http.post("/v2/models/iris/infer", content=_infer_body()).status_code == 200


def test_repository_changes_reach_every_worker(url: str) -> None:
    # A fresh connection per call lands on either worker (they share one accept queue).
    def ready_states() -> set[int]:
        return {
            httpx.get(f"{url}/v2/models/echo-json/ready", timeout=5).status_code for _ in range(24)
        }

    assert ready_states() == {200}
    assert httpx.post(f"{url}/v2/repository/models/echo-json/unload", timeout=30).status_code == 200
    assert ready_states() == {503}
    assert httpx.post(f"{url}/v2/repository/models/echo-json/load", timeout=30).status_code == 200
    assert ready_states() == {200}


def test_metrics_add_up_across_workers(url: str) -> None:
    def ok_count() -> float:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(
                'modelport_inference_requests_total{model="iris",outcome="ok",version="1"}'
            ):
                return float(line.split()[-1])
        return 0.0

    before = ok_count()
    for _ in range(20):  # fresh connections: both workers take some of them
        assert (
            httpx.post(
                f"{url}/v2/models/iris/versions/1/infer", content=_infer_body(), timeout=10
            ).status_code
            == 200
        )
    # Each worker moves its tallies into the shared metrics once a second.
    deadline = time.monotonic() + 5
    while ok_count() < before + 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ok_count() == before + 20


def test_statistics_add_up_across_workers(url: str) -> None:
    def successes() -> int:
        stats = httpx.get(f"{url}/v2/models/iris/versions/2/stats", timeout=10).json()[
            "model_stats"
        ]
        return int(stats[0]["inference_stats"]["success"]["count"])

    before = successes()
    for _ in range(20):  # fresh connections: both workers answer some of these
        assert (
            httpx.post(
                f"{url}/v2/models/iris/versions/2/infer", content=_infer_body(), timeout=10
            ).status_code
            == 200
        )
    # Whichever worker answers, the figure covers both.
    assert {successes() for _ in range(10)} == {before + 20}


def _raw_exchange(url: str, request: bytes, *, then: bytes = b"") -> list[bytes]:
    """Send ``request`` on a fresh connection; return what arrives, one ``recv`` per item.

    ``then`` is sent after the first reply arrives (the body after ``100 Continue``).
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = [sock.recv(65536)]
        if then:
            sock.sendall(then)
            received.append(sock.recv(65536))
        return received


def test_a_response_head_and_body_arrive_together(url: str) -> None:
    # The server writes the head and the body in one send, so the first recv holds both.
    body = _infer_body()
    request = (
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    (reply,) = _raw_exchange(url, request)
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert len(payload) == length and orjson.loads(payload)["model_name"] == "iris"


def test_head_request_gets_the_headers_and_no_body(url: str) -> None:
    (reply,) = _raw_exchange(url, b"HEAD /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"\r\n\r\n")
    assert b"content-length: 13" in reply.lower()  # what GET would send: {"live":true}


def test_expect_100_continue_is_answered_before_the_body(url: str) -> None:
    body = _infer_body()
    head = (
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    interim, final = _raw_exchange(url, head, then=body)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200") and b'"model_name":"iris"' in final


def test_malformed_request_line_gets_400_and_the_connection_closes(url: str) -> None:
    (reply,) = _raw_exchange(url, b"NOT HTTP AT ALL\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")
