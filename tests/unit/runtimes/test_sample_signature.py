from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import ConfigError, ModelNotReady
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes.base import RuntimeConfig
from modelport.runtimes.onnx import OnnxRuntime
from modelport.runtimes.python import PythonRuntime
from modelport.runtimes.sample_signature import load_sample, signature_from_sample
from modelport.runtimes.sklearn import SklearnRuntime

from .conftest import Trained


def test_signature_from_sample_sklearn_classifier(sk_classifier: Trained, tmp_path: Path) -> None:
    sample_file = tmp_path / "rows.json"
    sample_file.write_text(json.dumps(sk_classifier.X[:3].tolist()))
    runtime = SklearnRuntime(RuntimeConfig(artifact=sk_classifier.path))
    runtime.load()
    assert signature_from_sample(runtime, load_sample(sample_file)) == Signature(
        inputs=(TensorSpec("input", Datatype.FP64, (-1, 4)),),
        outputs=(
            TensorSpec("predict", Datatype.INT64, (-1,)),
            TensorSpec("predict_proba", Datatype.FP64, (-1, 3)),
        ),
    )


def test_signature_from_sample_renames_a_single_input_and_keeps_the_model_datatype(
    onnx_classifier: Trained,
) -> None:
    runtime = OnnxRuntime(RuntimeConfig(artifact=onnx_classifier.path))
    runtime.load()
    signature = signature_from_sample(runtime, {"input": onnx_classifier.X[:2].astype(np.float64)})
    assert signature.inputs == (TensorSpec("X", Datatype.FP32, (-1, 4)),)
    assert signature.output_names() == ("label", "probabilities")


def test_signature_from_sample_python_model_without_signature(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "class Model:\n"
        "    def predict(self, inputs):\n"
        "        return {'y': inputs['a'][:, :1] * 2, 'name': ['x'] * len(inputs['a'])}\n"
    )
    runtime = PythonRuntime(RuntimeConfig(artifact=path, entrypoint="Model"))
    runtime.load()
    signature = signature_from_sample(
        runtime, {"a": np.ones((2, 5), dtype=np.float32), "b": np.zeros((2,), np.int64)}
    )
    assert signature == Signature(
        inputs=(
            TensorSpec("a", Datatype.FP32, (-1, 5)),
            TensorSpec("b", Datatype.INT64, (-1,)),
        ),
        outputs=(
            TensorSpec("y", Datatype.FP32, (-1, 1)),
            TensorSpec("name", Datatype.BYTES, (-1,)),
        ),
    )


def test_signature_from_sample_needs_a_loaded_runtime_and_a_sample(sk_classifier: Trained) -> None:
    runtime = SklearnRuntime(RuntimeConfig(artifact=sk_classifier.path))
    with pytest.raises(ModelNotReady):
        signature_from_sample(runtime, {"input": sk_classifier.X[:1]})
    runtime.load()
    with pytest.raises(ConfigError, match="no inputs"):
        signature_from_sample(runtime, {})


def test_load_npy(tmp_path: Path) -> None:
    path = tmp_path / "s.npy"
    np.save(path, np.arange(6, dtype=np.int32).reshape(2, 3))
    sample = load_sample(path)
    assert list(sample) == ["input"]
    assert sample["input"].dtype == np.int32


def test_load_npz(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    np.savez(path, a=np.ones((2, 2)), b=np.zeros(2, dtype=np.int64))
    sample = load_sample(path)
    assert set(sample) == {"a", "b"}
    assert sample["b"].dtype == np.int64


def test_load_json_list_and_object(tmp_path: Path) -> None:
    as_list = tmp_path / "l.json"
    as_list.write_text("[[1, 2], [3, 4]]")
    sample = load_sample(as_list)
    assert sample["input"].dtype == np.float64
    assert sample["input"].shape == (2, 2)
    as_object = tmp_path / "o.json"
    as_object.write_text(json.dumps({"x": [[1.5, 2]], "text": ["héllo", "b"], "flag": [True]}))
    sample = load_sample(as_object)
    assert sample["x"].dtype == np.float64
    assert sample["text"].dtype == object
    assert list(sample["text"]) == ["héllo".encode(), b"b"]
    assert sample["flag"].dtype == np.bool_


def test_load_csv(tmp_path: Path) -> None:
    with_header = tmp_path / "h.csv"
    with_header.write_text("a,b,c\n1,2,3\n4,5,6.5\n\n")
    np.testing.assert_array_equal(load_sample(with_header)["input"], [[1, 2, 3], [4, 5, 6.5]])
    without = tmp_path / "n.csv"
    without.write_text("1,2\n3,4\n")
    assert load_sample(without)["input"].shape == (2, 2)


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("s.txt", "1,2", "unsupported extension"),
        ("s.json", "{not json", "JSONDecodeError"),
        ("s.json", "42", "not a list or object"),
        ("s.json", '{"x": [[1, 2], [3]]}', "ValueError"),
        ("s.json", '{"x": [1, null]}', "null"),
        ("s.csv", "a,b\n1,2\n3\n", "data row 2"),
        ("s.csv", "a,b\n", "no data rows"),
        ("s.csv", "a,b\n1,x\n", "data row 1"),
        ("s.npy", "not numpy", "ValueError"),
    ],
)
def test_bad_samples(tmp_path: Path, name: str, content: str, why: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError, match=why) as info:
        load_sample(path)
    assert name in str(info.value)
    assert ".npz" in str(info.value)


def test_missing_sample(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_sample(tmp_path / "absent.json")


def test_pickled_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ConfigError, match="obj.npy"):
        load_sample(path)
