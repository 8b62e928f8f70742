"""Non-finite input: every runtime refuses NaN and inf alike, unless the model takes NaN.

The bug this guards: the ONNX copy compiled from a scikit-learn model answered a NaN row with
null probabilities where the original refused it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier

from modelport.core.errors import InvalidInput
from modelport.runtimes.base import ModelRuntime, RuntimeConfig
from modelport.runtimes.compile import _check, _Refused, compile_sklearn
from modelport.runtimes.onnx import ALLOW_NAN_PROPERTY, OnnxRuntime
from modelport.runtimes.python import PythonRuntime
from modelport.runtimes.sklearn import SklearnRuntime

from .conftest import Trained

REFUSED_NAN = (
    "input 'input' contains NaN; the model does not accept non-finite values (NaN, inf): send "
    "finite numbers, or impute missing values before sending"
)
REFUSED_INF = REFUSED_NAN.replace("NaN;", "inf;")
NAN_BUT_NO_INF = "the model takes NaN as a missing value but no infinite values"


def both(path: Path, X: np.ndarray, folder: Path) -> tuple[SklearnRuntime, OnnxRuntime]:
    """Load ``path`` and its compiled ONNX copy (compiled on ``X``) with the same signature."""
    original = SklearnRuntime(RuntimeConfig(artifact=path))
    original.load()
    signature = original.metadata().signature
    out = folder / "copy.onnx"
    result = compile_sklearn(path, {"input": X}, signature, out)
    assert result.compiled, result.reason
    copy = OnnxRuntime(RuntimeConfig(artifact=out, signature=signature))
    copy.load()
    return original, copy


def with_value(X: np.ndarray, value: float) -> dict[str, np.ndarray]:
    rows = X[:3].copy()
    rows[1, 2] = value
    return {"input": rows}


def outcome(runtime: ModelRuntime, inputs: dict[str, np.ndarray]) -> Any:
    try:
        return runtime.predict(inputs, ())
    except InvalidInput as exc:
        return str(exc)


def test_the_onnx_copy_refuses_nan_and_inf_as_the_original_does(
    sk_classifier: Trained, tmp_path: Path
) -> None:
    original, copy = both(sk_classifier.path, sk_classifier.X, tmp_path)
    assert not original.allow_nan and not copy.allow_nan
    assert not copy.metadata().allow_nan
    for runtime in (original, copy):
        with pytest.raises(InvalidInput) as nan:
            runtime.predict(with_value(sk_classifier.X, np.nan), ())
        assert str(nan.value) == REFUSED_NAN
        for value in (np.inf, -np.inf):
            with pytest.raises(InvalidInput) as inf:
                runtime.predict(with_value(sk_classifier.X, value), ())
            assert str(inf.value) == REFUSED_INF
    np.testing.assert_array_equal(
        original.predict({"input": sk_classifier.X}, ["predict"])["predict"],
        copy.predict({"input": sk_classifier.X}, ["predict"])["predict"],
    )


def nan_model(kind: str, X: np.ndarray, y: np.ndarray) -> Any:
    """A model that takes NaN: learned from data with NaN, or trees trained without any."""
    X = X.copy()
    if kind in ("histgradientboosting", "imputer pipeline"):
        X[::7, 1] = np.nan
    return {
        "histgradientboosting": lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0),
        "imputer pipeline": lambda: make_pipeline(
            SimpleImputer(), LogisticRegression(max_iter=500)
        ),
        "random forest": lambda: RandomForestClassifier(n_estimators=10, random_state=0),
        "decision tree": lambda: DecisionTreeClassifier(max_depth=4, random_state=0),
    }[kind]().fit(X, y), X


@pytest.mark.parametrize(
    "kind", ["histgradientboosting", "imputer pipeline", "random forest", "decision tree"]
)
def test_a_model_that_takes_nan_gets_it_in_both_runtimes(
    kind: str, iris: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model, X = nan_model(kind, *iris)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    original, copy = both(path, X[:40], tmp_path)
    assert original.allow_nan and copy.allow_nan and copy.metadata().allow_nan
    for column in range(X.shape[1]):  # NaN in each feature: every tree's routing of it
        rows = X[:40].copy()
        rows[:, column] = np.nan
        got, expected = copy.predict({"input": rows}, ()), original.predict({"input": rows}, ())
        np.testing.assert_array_equal(got["predict"], expected["predict"])
        np.testing.assert_allclose(got["predict_proba"], expected["predict_proba"], atol=1e-5)
    for runtime in (original, copy):
        with pytest.raises(InvalidInput, match=NAN_BUT_NO_INF):
            runtime.predict(with_value(X, np.inf), ())


def test_the_compile_check_refuses_a_copy_that_answers_nan_the_original_refuses(
    sk_classifier: Trained, tmp_path: Path
) -> None:
    import onnx

    original, _ = both(sk_classifier.path, sk_classifier.X, tmp_path)
    signature = original.metadata().signature
    model = onnx.load(tmp_path / "copy.onnx")
    onnx.helper.set_model_props(model, {ALLOW_NAN_PROPERTY: "true"})  # a copy that lets NaN in
    lying = tmp_path / "lying.onnx"
    onnx.save(model, lying)
    feeds = {"input": sk_classifier.X}
    with pytest.raises(
        _Refused,
        match="not equivalent on non-finite input: the scikit-learn "
        "model refuses a row with NaN that the ONNX model answers",
    ):
        _check(sk_classifier.path, lying, signature, feeds, 1e-5, classifier=True)
    # The same check passes the honest copy: only the non-finite probe tells them apart.
    assert _check(sk_classifier.path, tmp_path / "copy.onnx", signature, feeds, 1e-5, True) < 1e-5


MODEL = """
import numpy as np

class Counter:
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]},
                   {"name": "n", "datatype": "INT64", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}],
    }

    def predict(self, inputs):
        return {"y": np.nan_to_num(inputs["x"]).astype(np.float64) + inputs["n"]}


class Lenient(Counter):
    allow_nan = True
"""


@pytest.mark.parametrize(("cls", "allow_nan"), [("Counter", False), ("Lenient", True)])
def test_python_models_refuse_nan_unless_they_declare_allow_nan(
    cls: str, allow_nan: bool, tmp_path: Path
) -> None:
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    runtime = PythonRuntime(RuntimeConfig(artifact=path, entrypoint=cls))
    runtime.load()
    assert runtime.metadata().allow_nan is allow_nan
    n = np.array([1, 2], np.int64)  # integers are never looked at
    nan = {"x": np.array([np.nan, 1.0], np.float32), "n": n}
    got = outcome(runtime, nan)
    if allow_nan:
        np.testing.assert_array_equal(got["y"], [1.0, 3.0])
    else:
        assert got == (
            "input 'x' contains NaN; the model does not accept non-finite values (NaN, inf): "
            "send finite numbers, or impute missing values before sending"
        )
    big = np.ones(1000, np.float32)  # past the small-input path: numpy looks at it
    big[700] = np.nan
    got_big = outcome(runtime, {"x": big, "n": np.ones(1000, np.int64)})
    assert isinstance(got_big, str) is not allow_nan
    inf = outcome(runtime, {"x": np.array([1.0, -np.inf], np.float32), "n": n})
    assert isinstance(inf, str)
    assert inf.startswith("input 'x' contains inf; the model ")


def test_huge_finite_values_are_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    runtime = PythonRuntime(RuntimeConfig(artifact=path, entrypoint="Counter"))
    runtime.load()
    big = np.full(4, np.finfo(np.float32).max, np.float32)
    got = runtime.predict({"x": big, "n": np.zeros(4, np.int64)}, ())
    assert np.isfinite(got["y"]).all()


@pytest.mark.parametrize("framework", ["xgboost", "lightgbm"])
def test_boosters_take_nan_as_missing_and_refuse_inf(
    framework: str, iris: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    if framework == "xgboost":
        import xgboost as xgb

        from modelport.runtimes.xgboost import XGBoostRuntime as cls

        path = tmp_path / "m.json"
        xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=y), 3).save_model(path)
    else:
        import lightgbm as lgb

        from modelport.runtimes.lightgbm import LightGBMRuntime as cls  # type: ignore[assignment]

        path = tmp_path / "m.txt"
        params = {"verbose": -1, "num_leaves": 4}
        lgb.train(params, lgb.Dataset(X, label=y), 3).save_model(path)
    runtime = cls(RuntimeConfig(artifact=path))
    runtime.load()
    assert runtime.metadata().allow_nan
    assert not isinstance(outcome(runtime, with_value(X, np.nan)), str)
    with pytest.raises(InvalidInput, match=NAN_BUT_NO_INF):
        runtime.predict(with_value(X.astype(np.float32), np.inf), ())


def test_values_whose_sum_overflows_are_not_refused() -> None:
    from modelport.runtimes._common import refuse_non_finite

    huge = np.full((1, 8), np.finfo(np.float64).max)  # their sum is inf; each value is finite
    refuse_non_finite({"x": huge}, allow_nan=False)
    with pytest.raises(InvalidInput, match="contains inf"):
        refuse_non_finite({"x": np.array([1.0, np.inf])}, allow_nan=True)
    with pytest.raises(InvalidInput, match="contains NaN"):
        refuse_non_finite({"x": np.array([np.nan, 1.0])}, allow_nan=False)
    refuse_non_finite({"x": np.array([np.nan, 1.0])}, allow_nan=True)
