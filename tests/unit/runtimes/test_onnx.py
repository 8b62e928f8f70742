from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import (
    DependencyMissing,
    InferenceFailed,
    IntegrityError,
    InvalidInput,
    ModelNotReady,
)
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes.base import RuntimeConfig
from modelport.runtimes.onnx import OnnxRuntime, onnx_datatype, providers_for

from .conftest import Trained


def loaded(
    path: Path,
    *,
    device: Literal["cpu", "gpu"] = "cpu",
    threads: int = 0,
    signature: Signature | None = None,
) -> OnnxRuntime:
    config = RuntimeConfig(artifact=path, device=device, threads=threads, signature=signature)
    runtime = OnnxRuntime(config)
    runtime.load()
    return runtime


def test_signature_from_session(onnx_classifier: Trained) -> None:
    meta = loaded(onnx_classifier.path).metadata()
    assert meta.platform == "onnxruntime_onnx"
    assert meta.signature == Signature(
        inputs=(TensorSpec("X", Datatype.FP32, (-1, 4)),),
        outputs=(
            TensorSpec("label", Datatype.INT64, (-1,)),
            TensorSpec("probabilities", Datatype.FP32, (-1, 3)),
        ),
    )


def test_predict_matches_sklearn(onnx_classifier: Trained) -> None:
    X = onnx_classifier.X[:10]
    out = loaded(onnx_classifier.path, threads=1).predict({"X": X}, ["label", "probabilities"])
    np.testing.assert_array_equal(out["label"], onnx_classifier.model.predict(X))
    np.testing.assert_allclose(
        out["probabilities"], onnx_classifier.model.predict_proba(X), atol=1e-5
    )


def test_only_requested_outputs_are_run(onnx_classifier: Trained) -> None:
    runtime = loaded(onnx_classifier.path)
    native = runtime._direct_run
    assert native is not None  # this onnxruntime build exposes the native session's run
    asked: list[list[str]] = []

    def spy(names: list[str], feeds: dict[str, np.ndarray], options: object) -> object:
        asked.append(names)
        return native(names, feeds, options)

    runtime._direct_run = spy
    out = runtime.predict({"X": onnx_classifier.X[:2]}, ["probabilities"])
    assert set(out) == {"probabilities"}
    assert asked == [["probabilities"]]


def test_native_and_public_runs_agree(onnx_classifier: Trained) -> None:
    direct = loaded(onnx_classifier.path)
    public = loaded(onnx_classifier.path)
    public._direct_run = None  # as on a build without the native entry point
    X = onnx_classifier.X[:5]
    a, b = direct.predict({"X": X}, []), public.predict({"X": X}, [])
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_a_failing_native_run_is_answered_by_the_public_api(onnx_classifier: Trained) -> None:
    runtime = loaded(onnx_classifier.path)
    calls = 0

    def broken(names: list[str], feeds: dict[str, np.ndarray], options: object) -> object:
        nonlocal calls
        calls += 1
        raise RuntimeError("native run failed")

    runtime._direct_run = broken
    out = runtime.predict({"X": onnx_classifier.X[:2]}, ["label"])
    np.testing.assert_array_equal(
        out["label"], onnx_classifier.model.predict(onnx_classifier.X[:2])
    )
    assert calls == 1
    # The public run succeeded, so the native entry point is taken again from the session.
    assert runtime._direct_run is not broken


def test_a_run_that_returns_the_wrong_number_of_outputs_fails_clearly(
    onnx_classifier: Trained,
) -> None:
    runtime = loaded(onnx_classifier.path)
    runtime._direct_run = lambda names, feeds, options: []  # no output for the one requested
    with pytest.raises(InferenceFailed, match="returned 0 outputs for the 1 requested"):
        runtime.predict({"X": onnx_classifier.X[:2]}, ["label"])


def test_float64_numbers_are_cast_to_the_graph_type(onnx_classifier: Trained) -> None:
    X = onnx_classifier.X[:3].astype(np.float64)
    out = loaded(onnx_classifier.path).predict({"X": X}, ["label"])
    np.testing.assert_array_equal(out["label"], onnx_classifier.model.predict(X))


def test_zipmap_output_is_left_out(onnx_zipmap: Path, onnx_classifier: Trained) -> None:
    runtime = loaded(onnx_zipmap)
    assert runtime.metadata().signature.output_names() == ("output_label",)
    out = runtime.predict({"X": onnx_classifier.X[:2]}, [])
    assert set(out) == {"output_label"}
    with pytest.raises(InvalidInput, match="output_probability"):
        runtime.predict({"X": onnx_classifier.X[:2]}, ["output_probability"])


def test_wrong_feature_count_is_invalid_input(onnx_classifier: Trained) -> None:
    with pytest.raises(
        InvalidInput,
        match=re.escape(
            "the model rejected the input ('X' FP32 [2, 3]); it expects 'X' FP32 [-1, 4]"
        ),
    ):
        loaded(onnx_classifier.path).predict({"X": onnx_classifier.X[:2, :3]}, ["label"])


def test_wrong_rank_is_invalid_input(onnx_classifier: Trained) -> None:
    with pytest.raises(
        InvalidInput,
        match=re.escape("the model rejected the input ('X' FP32 [4]); it expects 'X' FP32 [-1, 4]"),
    ):
        loaded(onnx_classifier.path).predict({"X": onnx_classifier.X[0]}, ["label"])


def test_missing_input_is_invalid_input(onnx_classifier: Trained) -> None:
    with pytest.raises(
        InvalidInput,
        match=re.escape(
            "the model rejected the input ('Y' FP32 [2, 4]); it expects 'X' FP32 [-1, 4]"
        ),
    ):
        loaded(onnx_classifier.path).predict({"Y": onnx_classifier.X[:2]}, ["label"])


def test_string_tensors_travel_as_bytes(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["text"], ["same"])
    graph = helper.make_graph(
        [node],
        "echo",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["batch"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "echo.onnx"
    onnx.save(model, str(path))
    runtime = loaded(path)
    assert runtime.metadata().signature.inputs == (TensorSpec("text", Datatype.BYTES, (-1,)),)
    data = np.array([b"caf\xc3\xa9", b"tea"], dtype=object)
    out = runtime.predict({"text": data}, ["same"])["same"]
    assert out.dtype == object
    assert list(out) == [b"caf\xc3\xa9", b"tea"]


def test_registered_signature_overrides(onnx_classifier: Trained) -> None:
    signature = Signature(
        inputs=(TensorSpec("X", Datatype.FP32, (-1, 4)),),
        outputs=(TensorSpec("label", Datatype.INT64, (-1,)),),
    )
    runtime = loaded(onnx_classifier.path, signature=signature)
    assert runtime.metadata().signature == signature
    assert set(runtime.predict({"X": onnx_classifier.X[:1]}, [])) == {"label"}


def test_corrupt_file_is_integrity_error(corrupt: Callable[[str], Path]) -> None:
    with pytest.raises(IntegrityError, match="model.onnx"):
        loaded(corrupt("model.onnx"))


def test_gpu_without_cuda_is_dependency_missing(onnx_classifier: Trained) -> None:
    import onnxruntime as ort

    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()):
        pytest.skip("this onnxruntime has a GPU provider")
    with pytest.raises(DependencyMissing, match=r"pip install 'modelport\[gpu\]'"):
        loaded(onnx_classifier.path, device="gpu")


def test_provider_choice() -> None:
    assert providers_for("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CPUExecutionProvider"
    ]
    assert providers_for(
        "gpu", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    ) == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("gpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    with pytest.raises(DependencyMissing, match="onnxruntime-gpu"):
        providers_for("gpu", ["CPUExecutionProvider"])


@pytest.mark.parametrize(
    ("onnx_type", "datatype"),
    [
        ("tensor(float)", Datatype.FP32),
        ("tensor(double)", Datatype.FP64),
        ("tensor(int64)", Datatype.INT64),
        ("tensor(string)", Datatype.BYTES),
        ("tensor(bool)", Datatype.BOOL),
        ("seq(map(int64,tensor(float)))", None),
    ],
)
def test_onnx_datatype(onnx_type: str, datatype: Datatype | None) -> None:
    assert onnx_datatype(onnx_type) is datatype


def test_lifecycle(onnx_classifier: Trained) -> None:
    runtime = OnnxRuntime(RuntimeConfig(artifact=onnx_classifier.path))
    with pytest.raises(ModelNotReady):
        runtime.metadata()
    with pytest.raises(ModelNotReady):
        runtime.predict({"X": onnx_classifier.X[:1]}, ["label"])
    runtime.load()
    session = runtime._session
    runtime.load()
    assert runtime._session is session
    runtime.unload()
    with pytest.raises(ModelNotReady):
        runtime.predict({"X": onnx_classifier.X[:1]}, ["label"])
