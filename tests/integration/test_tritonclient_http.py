"""The server driven by tritonclient's HTTP client, with its defaults (binary) and with JSON."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import tritonclient.http as httpclient
from sklearn.linear_model import LogisticRegression
from tritonclient.utils import InferenceServerException

from tests.integration.echo_model import TYPES

pytestmark = pytest.mark.slow


@pytest.fixture()
def client(url: str) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(url.removeprefix("http://"))


def _values(datatype: str, rng: np.random.Generator, binary: bool = True) -> np.ndarray:
    if datatype == "BYTES":
        odd = b"\x00\xff" if binary else b"tab\there"  # JSON carries UTF-8 text only
        return np.array([["héllo".encode(), b""], [odd, "日本".encode()]], dtype=object)
    if datatype == "BOOL":
        return np.array([[True, False], [False, True]])
    if datatype == "BF16":
        return np.array([[1.0, 2.0], [-1.5, 0.0]], dtype=ml_dtypes.bfloat16)
    dtype = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}.get(datatype)
    if dtype is not None:
        return rng.normal(size=(2, 2)).astype(dtype)
    info = np.iinfo(np.dtype(datatype.replace("UINT", "uint").replace("INT", "int").lower()))
    return np.array([[info.min, info.max], [0, 1]], dtype=info.dtype)


def test_server_health_and_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "modelport"
    assert {"binary_tensor_data", "model_repository"} <= set(meta["extensions"])
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    model = client.get_model_metadata("iris", "2")
    assert model["platform"] in ("sklearn", "onnxruntime_onnx")  # compiled to ONNX at registration
    assert model["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    assert {o["name"] for o in model["outputs"]} == {"predict", "predict_proba"}
    onnx = client.get_model_metadata("iris-onnx")
    assert onnx["platform"] == "onnxruntime_onnx"
    assert onnx["inputs"][0]["datatype"] == "FP32"
    assert onnx["inputs"][0]["shape"] == [-1, 4]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_sklearn_infer(
    client: httpclient.InferenceServerClient,
    iris: tuple[np.ndarray, np.ndarray],
    iris_models: dict[str, LogisticRegression],
    binary: bool,
) -> None:
    X, y = iris
    rows = X[::30]
    inp = httpclient.InferInput("input", list(rows.shape), "FP64")
    inp.set_data_from_numpy(rows, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("predict_proba", binary_data=binary)]
    result = client.infer("iris", [inp], model_version="2", outputs=outputs, request_id="r-7")
    proba = result.as_numpy("predict_proba")
    assert proba.shape == (len(rows), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert result.as_numpy("predict") is None  # only the requested output comes back
    response = result.get_response()
    assert response["id"] == "r-7"
    assert response["model_name"] == "iris"
    assert response["model_version"] == "2"
    # The served copy (ONNX, compiled at registration) answers as the trained model does.
    np.testing.assert_allclose(proba, iris_models["iris@2"].predict_proba(rows), atol=1e-5)
    assert list(proba.argmax(axis=1)) == list(y[::30])


def test_default_call_returns_every_output(
    client: httpclient.InferenceServerClient,
    iris: tuple[np.ndarray, np.ndarray],
    iris_models: dict[str, LogisticRegression],
) -> None:
    X, _ = iris
    rows = X[48:51]  # rows of two classes
    inp = httpclient.InferInput("input", [3, 4], "FP64")
    inp.set_data_from_numpy(rows)
    result = client.infer("iris", [inp])  # no version: the first one served, iris@1
    model = iris_models["iris@1"]
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(rows))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), model.predict_proba(rows), atol=1e-5
    )


def test_onnx_infer_fp32(
    client: httpclient.InferenceServerClient,
    iris: tuple[np.ndarray, np.ndarray],
    iris_models: dict[str, LogisticRegression],
) -> None:
    X, _ = iris
    rows = X[::25].astype(np.float32)
    meta = client.get_model_metadata("iris-onnx")
    inp = httpclient.InferInput(meta["inputs"][0]["name"], list(rows.shape), "FP32")
    inp.set_data_from_numpy(rows)
    result = client.infer("iris-onnx", [inp])
    labels = result.as_numpy(meta["outputs"][0]["name"])
    np.testing.assert_array_equal(labels, iris_models["iris-onnx@1"].predict(rows))


def test_model_config(client: httpclient.InferenceServerClient) -> None:
    config = client.get_model_config("iris-onnx")
    assert config["name"] == "iris-onnx"
    assert config["max_batch_size"] == 0
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    assert config["input"][0]["dims"] == [-1, 4]
    assert config == client.get_model_config("iris-onnx", "1")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_every_datatype_round_trips(client: httpclient.InferenceServerClient, binary: bool) -> None:
    rng = np.random.default_rng(7)
    types = [*TYPES, "BF16"] if binary else TYPES
    model = "echo-binary" if binary else "echo-json"
    inputs, outputs, sent = [], [], {}
    for datatype in types:
        values = _values(datatype, rng, binary)
        sent[datatype] = values
        inp = httpclient.InferInput(datatype.lower(), list(values.shape), datatype)
        inp.set_data_from_numpy(values, binary_data=binary)
        inputs.append(inp)
        outputs.append(
            httpclient.InferRequestedOutput(f"{datatype.lower()}_out", binary_data=binary)
        )
    result = client.infer(model, inputs, outputs=outputs)
    for datatype in types:
        got = result.get_output(f"{datatype.lower()}_out")
        assert got["datatype"] == datatype
        assert got["shape"] == [2, 2]
        values = result.as_numpy(f"{datatype.lower()}_out")
        if datatype == "BYTES":
            expected = sent[datatype].tolist()
            if not binary:  # tritonclient hands JSON strings back as str
                expected = [[b.decode() for b in row] for row in expected]
            assert values.tolist() == expected
        else:
            np.testing.assert_array_equal(values, sent[datatype])


def test_empty_batch(client: httpclient.InferenceServerClient) -> None:
    # Outputs of known width: an empty answer of that shape, the model not called.
    empty = httpclient.InferInput("input", [0, 4], "FP64")
    empty.set_data_from_numpy(np.zeros((0, 4)))
    result = client.infer("iris", [empty])
    assert result.as_numpy("predict").shape == (0,)
    assert result.as_numpy("predict_proba").shape == (0, 3)
    # Outputs of unknown width ([-1, -1]) cannot be answered without a row.
    inputs = []
    for datatype in TYPES:
        inp = httpclient.InferInput(datatype.lower(), [0, 3], datatype)
        arr = np.zeros((0, 3), dtype=_values(datatype, np.random.default_rng(0)).dtype)
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    with pytest.raises(InferenceServerException, match="at least one row"):
        client.infer("echo-json", inputs)


def test_errors_surface_with_messages(client: httpclient.InferenceServerClient) -> None:
    inp = httpclient.InferInput("input", [1, 3], "FP64")
    inp.set_data_from_numpy(np.zeros((1, 3)))
    with pytest.raises(InferenceServerException, match=r"shape \[1, 3\].*\[-1, 4\]"):
        client.infer("iris", [inp])
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.infer("nope", [inp])
    wrong = httpclient.InferInput("input", [1, 4], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 4), np.float32))
    with pytest.raises(InferenceServerException, match="datatype FP32.*expects FP64"):
        client.infer("iris", [wrong])


def test_repository_extension(client: httpclient.InferenceServerClient) -> None:
    index = client.get_model_repository_index()
    assert {(m["name"], m["version"]) for m in index} >= {
        ("iris", "1"),
        ("iris", "2"),
        ("iris-onnx", "1"),
    }
    client.unload_model("iris-onnx")
    assert not client.is_model_ready("iris-onnx")
    states = {m["name"]: m["state"] for m in client.get_model_repository_index()}
    assert states["iris-onnx"] == "UNAVAILABLE"
    with pytest.raises(InferenceServerException, match="not ready"):
        inp = httpclient.InferInput("X", [1, 4], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 4), np.float32))
        client.infer("iris-onnx", [inp])
    client.load_model("iris-onnx")
    assert client.is_model_ready("iris-onnx")
    assert client.is_server_ready()


def test_statistics_extension(
    client: httpclient.InferenceServerClient, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    X, _ = iris
    before = client.get_inference_statistics("iris", "1")["model_stats"][0]
    inp = httpclient.InferInput("input", [5, 4], "FP64")
    inp.set_data_from_numpy(X[:5])
    client.infer("iris", [inp], model_version="1")
    bad = httpclient.InferInput("input", [1, 3], "FP64")
    bad.set_data_from_numpy(np.zeros((1, 3)))
    with pytest.raises(InferenceServerException):
        client.infer("iris", [bad], model_version="1")
    # Two workers keep their own counters; the same keep-alive connection hits the same one.
    after = client.get_inference_statistics("iris", "1")["model_stats"][0]
    assert after["name"] == "iris" and after["version"] == "1"
    assert (
        after["inference_stats"]["success"]["count"]
        == before["inference_stats"]["success"]["count"] + 1
    )
    assert (
        after["inference_stats"]["fail"]["count"] == before["inference_stats"]["fail"]["count"] + 1
    )
    assert after["inference_count"] == before["inference_count"] + 5
    every = client.get_inference_statistics()["model_stats"]
    assert {(s["name"], s["version"]) for s in every} >= {
        ("iris", "1"),
        ("iris", "2"),
        ("echo-json", "1"),
    }
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_inference_statistics("nope")
