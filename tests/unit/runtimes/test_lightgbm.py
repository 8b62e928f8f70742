from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import IntegrityError, InvalidInput, ModelNotReady
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes.base import RuntimeConfig
from modelport.runtimes.lightgbm import LightGBMRuntime

from .conftest import Trained

_PARAMS = {"verbose": -1, "num_threads": 1, "num_leaves": 4, "min_data_in_leaf": 5}


@pytest.fixture(scope="session")
def multiclass(
    iris: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    X, y = iris
    params = {**_PARAMS, "objective": "multiclass", "num_class": 3}
    booster = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=3)
    path = tmp_path_factory.mktemp("lgb") / "model.txt"
    booster.save_model(path)
    return Trained(booster, path, X, y)


@pytest.fixture(scope="session")
def regression(
    iris: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    X, _ = iris
    features, target = np.ascontiguousarray(X[:, :3]), X[:, 3]
    params = {**_PARAMS, "objective": "regression"}
    booster = lgb.train(params, lgb.Dataset(features, label=target), num_boost_round=3)
    path = tmp_path_factory.mktemp("lgb") / "reg.txt"
    booster.save_model(path)
    return Trained(booster, path, features, target)


def loaded(path: Path, threads: int = 1) -> LightGBMRuntime:
    runtime = LightGBMRuntime(RuntimeConfig(artifact=path, threads=threads))
    runtime.load()
    return runtime


def test_multiclass_signature(multiclass: Trained) -> None:
    meta = loaded(multiclass.path).metadata()
    assert meta.platform == "lightgbm"
    assert meta.signature == Signature(
        inputs=(TensorSpec("input", Datatype.FP64, (-1, 4)),),
        outputs=(TensorSpec("predict", Datatype.FP64, (-1, 3)),),
    )


def test_regression_signature(regression: Trained) -> None:
    signature = loaded(regression.path).metadata().signature
    assert signature.inputs == (TensorSpec("input", Datatype.FP64, (-1, 3)),)
    assert signature.outputs == (TensorSpec("predict", Datatype.FP64, (-1,)),)


def test_predict_matches_lightgbm(multiclass: Trained) -> None:
    X = multiclass.X[:6]
    out = loaded(multiclass.path).predict({"input": X}, ["predict"])
    np.testing.assert_allclose(out["predict"], multiclass.model.predict(X))


def test_regression_predict_matches_lightgbm(regression: Trained) -> None:
    X = regression.X[:6].astype(np.float32)  # numbers are cast to FP64
    out = loaded(regression.path, threads=0).predict({"input": X}, [])
    np.testing.assert_allclose(out["predict"], regression.model.predict(X.astype(np.float64)))


def test_unknown_output_is_invalid_input(regression: Trained) -> None:
    with pytest.raises(InvalidInput, match="unknown output"):
        loaded(regression.path).predict({"input": regression.X[:1]}, ["leaves"])


def test_wrong_feature_count_is_invalid_input(multiclass: Trained) -> None:
    with pytest.raises(
        InvalidInput,
        match=re.escape(
            "the model rejected the input ('input' FP64 [2, 3]); it expects 'input' FP64 [-1, 4]"
        ),
    ):
        loaded(multiclass.path).predict({"input": multiclass.X[:2, :3]}, ["predict"])


def test_corrupt_file_is_integrity_error(corrupt: Callable[[str], Path]) -> None:
    with pytest.raises(IntegrityError, match="model.txt"):
        loaded(corrupt("model.txt"))


def test_lifecycle(regression: Trained) -> None:
    runtime = LightGBMRuntime(RuntimeConfig(artifact=regression.path))
    with pytest.raises(ModelNotReady):
        runtime.metadata()
    runtime.load()
    booster = runtime._booster
    runtime.load()
    assert runtime._booster is booster
    runtime.unload()
    with pytest.raises(ModelNotReady):
        runtime.predict({"input": regression.X[:1]}, ["predict"])
