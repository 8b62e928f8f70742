from __future__ import annotations

import json
import subprocess
import sys

import pytest

import modelport.runtimes
from modelport.core.errors import ConfigError, DependencyMissing
from modelport.runtimes import catalog
from modelport.runtimes.base import ModelRuntime
from modelport.runtimes.catalog import PLATFORMS, RUNTIMES, detect_framework, runtime_class

FRAMEWORKS = (
    "sklearn",
    "onnxruntime",
    "xgboost",
    "lightgbm",
    "joblib",
    "torch",
    "skl2onnx",
    "onnx",
)


def test_importing_runtimes_loads_no_framework() -> None:
    code = (
        "import json, sys\n"
        "import modelport, modelport.runtimes\n"
        "from modelport.runtimes import catalog, sample_signature, base\n"
        f"print(json.dumps([m for m in {list(FRAMEWORKS)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_every_runtime_resolves(name: str) -> None:
    cls = runtime_class(name)
    assert issubclass(cls, ModelRuntime)
    assert cls.framework == name
    assert cls.platform == PLATFORMS[name]


def test_unknown_runtime_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="unknown runtime 'torchscript'.*lightgbm, onnx, python"):
        runtime_class("torchscript")


def test_missing_framework_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RUNTIMES, "xgboost", "modelport_absent_backend_xyz:XGBoostRuntime")
    with pytest.raises(DependencyMissing, match=r"pip install 'modelport\[xgboost\]'"):
        runtime_class("xgboost")


def test_catalogue_entry_that_is_not_a_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RUNTIMES, "python", "modelport.runtimes.catalog:RUNTIMES")
    with pytest.raises(ConfigError, match="not a ModelRuntime"):
        runtime_class("python")


@pytest.mark.parametrize(
    ("artifact", "framework"),
    [
        ("model.onnx", "onnx"),
        ("/srv/models/Model.ONNX", "onnx"),
        ("model.joblib", "sklearn"),
        ("model.pkl", "sklearn"),
        ("model.pickle", "sklearn"),
        ("model.json", "xgboost"),
        ("model.ubj", "xgboost"),
        ("model.txt", "lightgbm"),
        ("model.py", "python"),
        ("models/model.py:Summer", "python"),
        ("package.module:Model", "python"),
        ("C:\\models\\m.onnx", "onnx"),
    ],
)
def test_detect_framework(artifact: str, framework: str) -> None:
    assert detect_framework(artifact) == framework


@pytest.mark.parametrize("artifact", ["model.bin", "model", "weights.pt", "dir.d/x:1bad"])
def test_detect_framework_rejects_unknown(artifact: str) -> None:
    with pytest.raises(ConfigError, match=r"\.onnx.*\.joblib.*\.txt"):
        detect_framework(artifact)


def test_catalogues_agree() -> None:
    assert set(PLATFORMS) == set(RUNTIMES) == set(catalog.EXTENSIONS.values())


def test_exported_names() -> None:
    assert set(modelport.runtimes.__all__) == {
        "EXTENSIONS",
        "PLATFORMS",
        "RUNTIMES",
        "SAMPLE_FORMATS",
        "ModelRuntime",
        "RuntimeConfig",
        "RuntimeMetadata",
        "signature_from_sample",
        "detect_framework",
        "load_sample",
        "runtime_class",
    }
    for name in modelport.runtimes.__all__:
        assert hasattr(modelport.runtimes, name)
