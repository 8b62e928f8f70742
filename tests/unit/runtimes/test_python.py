from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import (
    ConfigError,
    InferenceFailed,
    IntegrityError,
    InvalidInput,
    ModelNotReady,
    NotFound,
)
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes.base import RuntimeConfig
from modelport.runtimes.python import PythonRuntime

MODEL_SOURCE = """
import numpy as np

from modelport.core.errors import InvalidInput


class Summer:
    signature = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 3]}],
        "outputs": [
            {"name": "total", "datatype": "FP64", "shape": [-1]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
    }

    def __init__(self):
        self.loaded = 0

    def load(self):
        self.loaded += 1
        self.offset = 1.0

    def predict(self, inputs):
        x = inputs["x"]
        if x.shape[-1] != 3:
            raise ValueError(f"expected 3 columns, got {x.shape[-1]}")
        if np.isnan(x).any():
            raise InvalidInput("NaN is not allowed")
        total = x.sum(axis=1) + self.offset
        return {"total": total, "label": ["big" if t > 10 else "small" for t in total]}


class NoSignature:
    def predict(self, inputs):
        return {"double": inputs["x"] * 2, "count": [len(inputs["x"])]}


class Broken:
    def predict(self, inputs):
        return self.kind(inputs)

    kind = None


class ReturnsList:
    def predict(self, inputs):
        return [1, 2, 3]


class ReturnsObjects:
    def predict(self, inputs):
        return {"bad": [{"a": 1}]}


class MethodSignature:
    def signature(self):
        return {"inputs": [], "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}]}

    def predict(self, inputs):
        return {"y": [1.0, 2.0]}


class FailsToLoad:
    def load(self):
        raise FileNotFoundError("weights.bin")

    def predict(self, inputs):
        return {}


class NoPredict:
    pass
"""


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(MODEL_SOURCE)
    return path


def loaded(path: Path | None, entrypoint: str, signature: Signature | None = None) -> PythonRuntime:
    runtime = PythonRuntime(
        RuntimeConfig(artifact=path, entrypoint=entrypoint, signature=signature)
    )
    runtime.load()
    return runtime


X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def test_from_file(model_file: Path) -> None:
    runtime = loaded(model_file, "Summer")
    meta = runtime.metadata()
    assert meta.platform == "python"
    assert meta.signature.inputs == (TensorSpec("x", Datatype.FP64, (-1, 3)),)
    assert meta.signature.output_names() == ("total", "label")
    out = runtime.predict({"x": X}, ["total", "label"])
    np.testing.assert_array_equal(out["total"], [7.0, 16.0])
    assert out["label"].dtype == object
    assert list(out["label"]) == [b"small", b"big"]


def test_output_selection(model_file: Path) -> None:
    runtime = loaded(model_file, "Summer")
    assert set(runtime.predict({"x": X}, ["total"])) == {"total"}
    assert set(runtime.predict({"x": X}, [])) == {"total", "label"}
    with pytest.raises(InvalidInput, match="unknown output"):
        runtime.predict({"x": X}, ["nope"])


def test_from_module_entrypoint(model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = "modelport_test_user_models"
    (model_file.parent / f"{module}.py").write_text(MODEL_SOURCE)
    monkeypatch.syspath_prepend(str(model_file.parent))
    monkeypatch.delitem(sys.modules, module, raising=False)
    runtime = loaded(None, f"{module}:Summer")
    np.testing.assert_array_equal(runtime.predict({"x": X}, ["total"])["total"], [7.0, 16.0])
    monkeypatch.delitem(sys.modules, module)


def test_file_without_suffix(tmp_path: Path) -> None:
    path = tmp_path / "0123abcd"  # registry artifacts have no suffix
    path.write_text(MODEL_SOURCE)
    assert loaded(path, "Summer").metadata().signature.output_names() == ("total", "label")


def test_load_is_idempotent_and_unload_forgets_the_module(model_file: Path) -> None:
    runtime = loaded(model_file, "Summer")
    model = runtime._model
    runtime.load()
    assert runtime._model is model
    assert model.loaded == 1
    module_name = runtime._module_name
    assert module_name in sys.modules
    runtime.unload()
    assert module_name not in sys.modules
    with pytest.raises(ModelNotReady):
        runtime.predict({"x": X}, ["total"])
    with pytest.raises(ModelNotReady):
        runtime.metadata()


def test_not_loaded(model_file: Path) -> None:
    runtime = PythonRuntime(RuntimeConfig(artifact=model_file, entrypoint="Summer"))
    with pytest.raises(ModelNotReady):
        runtime.metadata()
    with pytest.raises(ModelNotReady):
        runtime.predict({"x": X}, [])


def test_model_errors(model_file: Path) -> None:
    runtime = loaded(model_file, "Summer")
    with pytest.raises(InvalidInput, match="expected 3 columns"):
        runtime.predict({"x": X[:, :2]}, ["total"])
    with pytest.raises(InvalidInput, match="NaN"):
        runtime.predict({"x": np.array([[np.nan, 1.0, 2.0]])}, ["total"])
    with pytest.raises(InferenceFailed, match="TypeError"):
        loaded(model_file, "Broken").predict({"x": X}, [])


def test_bad_return_values(model_file: Path) -> None:
    with pytest.raises(InferenceFailed, match="returned list"):
        loaded(model_file, "ReturnsList").predict({"x": X}, [])
    with pytest.raises(InferenceFailed, match="'bad' holds dict"):
        loaded(model_file, "ReturnsObjects").predict({"x": X}, [])


def test_without_signature(model_file: Path) -> None:
    runtime = loaded(model_file, "NoSignature")
    assert runtime.metadata().signature == Signature(inputs=(), outputs=())
    out = runtime.predict({"x": X}, [])
    assert set(out) == {"double", "count"}
    np.testing.assert_array_equal(out["count"], [2])
    assert set(runtime.predict({"x": X}, ["count"])) == {"count"}
    with pytest.raises(InferenceFailed, match="no output 'nope'"):
        runtime.predict({"x": X}, ["nope"])


def test_signature_method_and_output_cast(model_file: Path) -> None:
    runtime = loaded(model_file, "MethodSignature")
    assert runtime.metadata().signature.outputs == (TensorSpec("y", Datatype.INT64, (-1,)),)
    assert runtime.predict({}, ["y"])["y"].dtype == np.int64


def test_config_signature_wins(model_file: Path) -> None:
    signature = Signature(inputs=(), outputs=(TensorSpec("total", Datatype.FP32, (-1,)),))
    runtime = loaded(model_file, "Summer", signature)
    assert runtime.metadata().signature == signature
    assert runtime.predict({"x": X}, [])["total"].dtype == np.float32


def test_resolution_errors(model_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Missing"):
        loaded(model_file, "Missing")
    with pytest.raises(ConfigError, match="entrypoint"):
        loaded(model_file, "")
    with pytest.raises(ConfigError, match="predict"):
        loaded(model_file, "NoPredict")
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        loaded(None, "no_such_module_xyz:Model")
    with pytest.raises(ConfigError, match="module:Class"):
        loaded(None, "just_a_name")
    with pytest.raises(NotFound):
        loaded(tmp_path / "absent.py", "Model")


def test_import_and_load_errors(model_file: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import numpy as np\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(IntegrityError, match="no GPU here"):
        loaded(broken, "Model")
    assert not [
        m
        for m in sys.modules
        if m.startswith("_modelport_user_") and "broken" in str(sys.modules[m])
    ]
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def broken(:\n")
    with pytest.raises(IntegrityError, match="SyntaxError"):
        loaded(syntax, "Model")
    with pytest.raises(IntegrityError, match="weights.bin"):
        loaded(model_file, "FailsToLoad")


def test_malformed_class_signature(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        textwrap.dedent(
            """
            class Model:
                signature = {"inputs": [{"name": "x", "datatype": "FP99", "shape": [-1]}]}

                def predict(self, inputs):
                    return {}
            """
        )
    )
    with pytest.raises(ConfigError, match="FP99"):
        loaded(path, "Model")
