"""The gRPC server driven by tritonclient's gRPC clients (sync, streaming and asyncio)."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from modelport.core.errors import (
    Conflict,
    DeadlineExceeded,
    DependencyMissing,
    InferenceFailed,
    IntegrityError,
    InvalidInput,
    ModelNotReady,
    ModelportError,
    NotFound,
    Overloaded,
)
from modelport.core.inference import InferenceRequest, InferenceResponse
from modelport.core.settings import RuntimeSettings
from modelport.protocol.grpc_gen import inference_pb2 as pb
from modelport.protocol.grpc_gen import inference_pb2_grpc as pb_grpc
from modelport.service.dataplane import DataPlane
from modelport.service.models import ModelRepository
from tests.integration.echo_model import TYPES
from tests.integration.grpc_fixtures import MAX_MESSAGE, hosted_dataplane, serve_grpc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def target(model_home: Path) -> Iterator[str]:
    with hosted_dataplane(model_home) as dataplane, serve_grpc(dataplane) as address:
        yield address


@pytest.fixture()
def client(target: str) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(target) as c:
        yield c


def _values(datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([["héllo".encode(), b""], [b"\x00\xff", "日本".encode()]], dtype=object)
    if datatype == "BOOL":
        return np.array([[True, False], [False, True]])
    if datatype == "BF16":
        return np.array([[1.0, 2.0], [-1.5, 0.0]], dtype=ml_dtypes.bfloat16)
    if datatype.startswith("FP"):
        dtype = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}[datatype]
        return np.array([[0.5, -1.25], [3.0, -0.0]], dtype=dtype)
    info = np.iinfo(np.dtype(datatype.lower()))
    return np.array([[info.min, info.max], [0, 1]], dtype=info.dtype)


def _iris_input(rows: np.ndarray, datatype: str = "FP64") -> grpcclient.InferInput:
    inp = grpcclient.InferInput("input", list(rows.shape), datatype)
    inp.set_data_from_numpy(rows)
    return inp


def _status(exc: InferenceServerException) -> str:
    return str(exc.status())


def test_health_metadata_and_config(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "modelport"
    assert {"binary_tensor_data", "model_repository"} <= set(meta["extensions"])
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    model = client.get_model_metadata("iris", "2")
    assert (model.name, sorted(model.versions)) == ("iris", ["1", "2"])
    assert model.platform == client.get_model_config("iris", "2").config.platform != ""
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [
        ("input", "FP64", [-1, 4])
    ]
    assert {o.name for o in model.outputs} == {"predict", "predict_proba"}
    config = client.get_model_config("iris-onnx").config
    assert config.name == "iris-onnx" and config.max_batch_size == 0
    assert config.platform == "onnxruntime_onnx"
    assert [(i.data_type, list(i.dims)) for i in config.input] == [(11, [-1, 4])]  # TYPE_FP32
    as_json = client.get_model_config("echo-binary", as_json=True)["config"]
    types = {i["name"]: i["data_type"] for i in as_json["input"]}
    assert types["bytes"] == "TYPE_STRING" and types["bf16"] == "TYPE_BF16"


def test_sklearn_infer_with_requested_output_and_id(
    client: grpcclient.InferenceServerClient, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = iris
    rows = X[::30]
    result = client.infer(
        "iris",
        [_iris_input(rows)],
        model_version="2",
        outputs=[grpcclient.InferRequestedOutput("predict_proba")],
        request_id="r-7",
    )
    proba = result.as_numpy("predict_proba")
    assert proba.shape == (len(rows), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert list(proba.argmax(axis=1)) == list(y[::30])
    assert result.as_numpy("predict") is None  # only the requested output comes back
    response = result.get_response()
    assert (response.id, response.model_name, response.model_version) == ("r-7", "iris", "2")
    every = client.infer("iris", [_iris_input(X[:3])], timeout=10_000_000, client_timeout=30)
    assert every.as_numpy("predict").shape == (3,)
    assert every.as_numpy("predict_proba").shape == (3, 3)


def test_every_datatype_round_trips(client: grpcclient.InferenceServerClient) -> None:
    types = [*TYPES, "BF16"]
    inputs, sent = [], {}
    for datatype in types:
        sent[datatype] = _values(datatype)
        inp = grpcclient.InferInput(datatype.lower(), [2, 2], datatype)
        inp.set_data_from_numpy(sent[datatype])
        inputs.append(inp)
    outputs = [grpcclient.InferRequestedOutput(f"{t.lower()}_out") for t in types]
    result = client.infer("echo-binary", inputs, outputs=outputs)
    for datatype in types:
        got = result.as_numpy(f"{datatype.lower()}_out")
        assert result.get_output(f"{datatype.lower()}_out").datatype == datatype
        if datatype == "BYTES":
            assert got.tolist() == sent[datatype].tolist()
        elif datatype == "BF16":
            assert got.dtype == ml_dtypes.bfloat16
            np.testing.assert_array_equal(got.view(np.uint16), sent[datatype].view(np.uint16))
        else:
            assert got.dtype == sent[datatype].dtype
            np.testing.assert_array_equal(got, sent[datatype])


def test_empty_batch(client: grpcclient.InferenceServerClient) -> None:
    # Outputs of known width: an empty answer of that shape, the model not called.
    result = client.infer("iris", [_iris_input(np.zeros((0, 4)))])
    assert result.as_numpy("predict").shape == (0,)
    assert result.as_numpy("predict_proba").shape == (0, 3)
    # Outputs of unknown width ([-1, -1]) cannot be answered without a row.
    inputs = []
    for datatype in TYPES:
        inp = grpcclient.InferInput(datatype.lower(), [0, 3], datatype)
        inp.set_data_from_numpy(np.zeros((0, 3), dtype=_values(datatype).dtype))
        inputs.append(inp)
    with pytest.raises(InferenceServerException, match="at least one row") as info:
        client.infer("echo-json", inputs)
    assert _status(info.value) == "StatusCode.INVALID_ARGUMENT"


def test_errors_carry_status_and_message(client: grpcclient.InferenceServerClient) -> None:
    bad_shape = _iris_input(np.zeros((1, 3)))
    with pytest.raises(InferenceServerException, match=r"shape \[1, 3\].*\[-1, 4\]") as info:
        client.infer("iris", [bad_shape])
    assert _status(info.value) == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException, match="unknown model 'nope'") as info:
        client.infer("nope", [_iris_input(np.zeros((1, 4)))])
    assert _status(info.value) == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException, match="has no version '9'") as info:
        client.get_model_metadata("iris", "9")
    assert _status(info.value) == "StatusCode.NOT_FOUND"
    wrong = _iris_input(np.zeros((1, 4), np.float32), "FP32")
    with pytest.raises(InferenceServerException, match="datatype FP32.*expects FP64") as info:
        client.infer("iris", [wrong])
    assert _status(info.value) == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException, match="unknown output 'nope'"):
        client.infer(
            "iris",
            [_iris_input(np.zeros((1, 4)))],
            outputs=[grpcclient.InferRequestedOutput("nope")],
        )


def test_stream_answers_every_request_and_survives_a_bad_one(
    client: grpcclient.InferenceServerClient, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    X, _ = iris
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for i in range(3):
            client.async_stream_infer("iris", [_iris_input(X[i : i + 2])], request_id=f"ok-{i}")
        client.async_stream_infer("iris", [_iris_input(np.zeros((1, 3)))], request_id="bad")
        client.async_stream_infer("iris", [_iris_input(X[:1])], request_id="after")
        got = [answers.get(timeout=30) for _ in range(5)]
    finally:
        client.stop_stream()
    results = {r.get_response().id: r for r, e in got if e is None}
    errors = [e for r, e in got if e is not None]
    assert set(results) == {"ok-0", "ok-1", "ok-2", "after"}
    assert results["ok-1"].as_numpy("predict_proba").shape == (2, 3)
    (error,) = errors
    assert "shape [1, 3]" in error.message() and "[-1, 4]" in error.message()


def test_statistics_count_requests_and_rows(
    client: grpcclient.InferenceServerClient, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    X, _ = iris
    before = client.get_inference_statistics("iris", "1").model_stats[0]
    client.infer("iris", [_iris_input(X[:5])], model_version="1")
    with pytest.raises(InferenceServerException):
        client.infer("iris", [_iris_input(np.zeros((1, 3)))], model_version="1")
    (after,) = client.get_inference_statistics("iris", "1").model_stats
    assert (after.name, after.version) == ("iris", "1")
    assert after.inference_stats.success.count == before.inference_stats.success.count + 1
    assert after.inference_stats.success.ns > before.inference_stats.success.ns
    assert after.inference_stats.fail.count == before.inference_stats.fail.count + 1
    assert after.inference_count == before.inference_count + 5
    assert after.execution_count == before.execution_count + 1
    assert after.last_inference >= before.last_inference > 0
    every = client.get_inference_statistics().model_stats
    assert {(s.name, s.version) for s in every} >= {
        ("iris", "1"),
        ("iris", "2"),
        ("echo-json", "1"),
    }
    assert {s.version for s in client.get_inference_statistics("iris").model_stats} == {"1", "2"}
    with pytest.raises(InferenceServerException, match="unknown model 'nope'") as info:
        client.get_inference_statistics("nope")
    assert _status(info.value) == "StatusCode.NOT_FOUND"


def test_asyncio_client(target: str, iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = iris

    async def session() -> np.ndarray:
        async with aioclient.InferenceServerClient(target) as c:
            assert await c.is_server_live()
            assert await c.is_model_ready("iris")
            inp = aioclient.InferInput("input", [4, 4], "FP64")
            inp.set_data_from_numpy(X[:4])
            results = await asyncio.gather(*(c.infer("iris", [inp]) for _ in range(3)))
            return np.stack([r.as_numpy("predict") for r in results])

    predictions = asyncio.run(session())
    assert predictions.shape == (3, 4) and (predictions == predictions[0]).all()


def test_repository_index_unload_and_load(client: grpcclient.InferenceServerClient) -> None:
    index = client.get_model_repository_index()
    assert {(m.name, m.version) for m in index.models} >= {("iris", "1"), ("iris-onnx", "1")}
    client.unload_model("iris-onnx")
    try:
        assert not client.is_model_ready("iris-onnx")
        states = {m.name: m.state for m in client.get_model_repository_index().models}
        assert states["iris-onnx"] == "UNAVAILABLE"
        inp = grpcclient.InferInput("X", [1, 4], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 4), np.float32))
        with pytest.raises(InferenceServerException, match="not ready") as info:
            client.infer("iris-onnx", [inp])
        assert _status(info.value) == "StatusCode.UNAVAILABLE"
    finally:
        client.load_model("iris-onnx")
    assert client.is_model_ready("iris-onnx")
    assert client.is_server_ready()
    with pytest.raises(InferenceServerException, match="unknown model 'nope'") as info:
        client.unload_model("nope")
    assert _status(info.value) == "StatusCode.NOT_FOUND"


# ---------------------------------------------------------------- status codes and deadlines


class _Failing(DataPlane):
    """A data plane whose inference raises ``error`` and remembers the deadline it got."""

    def __init__(self, error: Exception) -> None:
        super().__init__(ModelRepository(RuntimeSettings()))
        self.error = error
        self.deadlines: list[float | None] = []

    async def infer(
        self,
        name: str,
        version: str | None,
        request: InferenceRequest,
        deadline: float | None = None,
    ) -> InferenceResponse:
        self.deadlines.append(deadline)
        raise self.error


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (NotFound("gone"), grpc.StatusCode.NOT_FOUND),
        (ModelNotReady("loading"), grpc.StatusCode.UNAVAILABLE),
        (Overloaded("full", retry_after=2.5), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (DeadlineExceeded("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (Conflict("state"), grpc.StatusCode.FAILED_PRECONDITION),
        (IntegrityError("tampered"), grpc.StatusCode.DATA_LOSS),
        (DependencyMissing("no torch"), grpc.StatusCode.UNIMPLEMENTED),
        (InferenceFailed("model broke"), grpc.StatusCode.INTERNAL),
        (ZeroDivisionError("bug"), grpc.StatusCode.INTERNAL),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "",
)
def test_error_kinds_map_to_status_codes(error: Exception, code: grpc.StatusCode) -> None:
    dataplane = _Failing(error)
    request = pb.ModelInferRequest(model_name="m", id="x")
    request.inputs.add(name="a", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    request.parameters["timeout"].int64_param = 50_000_000  # 50 s, looser than the call's 20 s
    with serve_grpc(dataplane) as address, grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=20)
        (stream_answer,) = stub.ModelStreamInfer(iter([request]), timeout=20)
    assert info.value.code() == code
    expected = (
        str(error) if isinstance(error, ModelportError) else "internal error: ZeroDivisionError"
    )
    assert info.value.details() == expected
    assert stream_answer.error_message == expected
    assert stream_answer.infer_response.id == "x"
    trailers = dict(info.value.trailing_metadata() or ())
    if isinstance(error, Overloaded):
        assert trailers["grpc-retry-pushback-ms"] == "2500"
    # The call's own deadline (20 s) is the tighter one, and it reaches the data plane.
    assert len(dataplane.deadlines) == 2
    # (gRPC may round the propagated deadline up a little; 50 s would mean the parameter won.)
    assert all(d is not None and 0 < d - time.monotonic() < 25 for d in dataplane.deadlines)


def test_timeout_parameter_tighter_than_the_call_deadline_wins() -> None:
    dataplane = _Failing(InvalidInput("bad"))
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="a", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    request.parameters["timeout"].int64_param = 2_000_000  # 2 s
    with serve_grpc(dataplane) as address, grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError):
            stub.ModelInfer(request, timeout=20)
        request.parameters["timeout"].int64_param = -5
        with pytest.raises(grpc.RpcError, match="'timeout' must be a non-negative") as info:
            stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (deadline,) = dataplane.deadlines
    assert deadline is not None and 0 < deadline - time.monotonic() <= 2


def test_port_is_shared_and_oversized_messages_are_refused() -> None:
    dataplane = _Failing(InvalidInput("bad"))
    with serve_grpc(dataplane) as address:
        host, port = address.rsplit(":", 1)
        # so_reuseport: a second worker's server binds the same port.
        with serve_grpc(dataplane, port=int(port)) as second:
            assert second == address
        request = pb.ModelInferRequest(model_name="m")
        request.inputs.add(name="a", datatype="UINT8", shape=[MAX_MESSAGE + 1])
        request.raw_input_contents.append(bytes(MAX_MESSAGE + 1))
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(request, timeout=20)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dataplane.deadlines == []
