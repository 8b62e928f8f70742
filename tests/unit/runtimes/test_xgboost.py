from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from modelport.core.datatypes import Datatype
from modelport.core.errors import IntegrityError, InvalidInput, ModelNotReady
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes.base import RuntimeConfig
from modelport.runtimes.xgboost import XGBoostRuntime

from .conftest import Trained


@pytest.fixture(scope="session", params=["json", "ubj"])
def multiclass(
    request: pytest.FixtureRequest,
    iris: tuple[np.ndarray, np.ndarray],
    tmp_path_factory: pytest.TempPathFactory,
) -> Trained:
    X, y = iris
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=4)
    path = tmp_path_factory.mktemp("xgb") / f"model.{request.param}"
    booster.save_model(path)
    return Trained(booster, path, X.astype(np.float32), y)


@pytest.fixture(scope="session")
def regression(
    iris: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    X, _ = iris
    target = X[:, 3]
    features = np.ascontiguousarray(X[:, :3])
    params = {"objective": "reg:squarederror", "max_depth": 2, "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(features, label=target), num_boost_round=4)
    path = tmp_path_factory.mktemp("xgb") / "reg.json"
    booster.save_model(path)
    return Trained(booster, path, features.astype(np.float32), target)


def loaded(path: Path, threads: int = 1) -> XGBoostRuntime:
    runtime = XGBoostRuntime(RuntimeConfig(artifact=path, threads=threads))
    runtime.load()
    return runtime


def test_multiclass_signature(multiclass: Trained) -> None:
    meta = loaded(multiclass.path).metadata()
    assert meta.platform == "xgboost"
    assert meta.signature == Signature(
        inputs=(TensorSpec("input", Datatype.FP32, (-1, 4)),),
        outputs=(TensorSpec("predict", Datatype.FP32, (-1, 3)),),
    )


def test_regression_signature(regression: Trained) -> None:
    signature = loaded(regression.path).metadata().signature
    assert signature.inputs == (TensorSpec("input", Datatype.FP32, (-1, 3)),)
    assert signature.outputs == (TensorSpec("predict", Datatype.FP32, (-1,)),)


def test_predict_matches_xgboost(multiclass: Trained) -> None:
    X = multiclass.X[:6]
    out = loaded(multiclass.path).predict({"input": X}, ["predict"])
    expected = multiclass.model.predict(xgb.DMatrix(X))
    np.testing.assert_allclose(out["predict"], expected, rtol=1e-6)
    assert out["predict"].dtype == np.float32


def test_regression_predict_matches_xgboost(regression: Trained) -> None:
    X = regression.X[:6].astype(np.float64)  # numbers are cast to FP32
    out = loaded(regression.path, threads=0).predict({"input": X}, [])
    np.testing.assert_allclose(
        out["predict"], regression.model.inplace_predict(X.astype(np.float32))
    )


def test_unknown_output_is_invalid_input(regression: Trained) -> None:
    with pytest.raises(InvalidInput, match="unknown output"):
        loaded(regression.path).predict({"input": regression.X[:1]}, ["predict_proba"])


def test_wrong_feature_count_is_invalid_input(multiclass: Trained) -> None:
    with pytest.raises(
        InvalidInput,
        match=re.escape(
            "the model rejected the input ('input' FP32 [2, 3]); it expects 'input' FP32 [-1, 4]"
        ),
    ):
        loaded(multiclass.path).predict({"input": multiclass.X[:2, :3]}, ["predict"])


def test_text_is_invalid_input(multiclass: Trained) -> None:
    text = np.array([[b"a"] * 4], dtype=object)
    with pytest.raises(InvalidInput):
        loaded(multiclass.path).predict({"input": text}, ["predict"])


@pytest.mark.parametrize("name", ["model.json", "model.ubj"])
def test_corrupt_file_is_integrity_error(corrupt: Callable[[str], Path], name: str) -> None:
    with pytest.raises(IntegrityError, match=name):
        loaded(corrupt(name))


def test_empty_json_object_is_integrity_error(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text("{}")
    with pytest.raises(IntegrityError, match="model.json"):
        loaded(path)


def test_artifact_without_suffix_loads_without_warning(multiclass: Trained, tmp_path: Path) -> None:
    path = tmp_path / "0123abcd"  # registry artifacts have no suffix; filterwarnings=error
    path.write_bytes(multiclass.path.read_bytes())
    assert loaded(path).metadata().signature.inputs[0].shape == (-1, 4)


def test_lifecycle(regression: Trained) -> None:
    runtime = XGBoostRuntime(RuntimeConfig(artifact=regression.path))
    with pytest.raises(ModelNotReady):
        runtime.metadata()
    runtime.load()
    booster = runtime._booster
    runtime.load()
    assert runtime._booster is booster
    runtime.unload()
    with pytest.raises(ModelNotReady):
        runtime.predict({"input": regression.X[:1]}, ["predict"])
