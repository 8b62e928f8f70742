"""Tiny models trained once per session from scikit-learn's bundled datasets; nothing is downloaded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@dataclass(frozen=True)
class Trained:
    """A fitted model, the file it was saved to and the data it was fitted on."""

    model: Any
    path: Path
    X: np.ndarray
    y: np.ndarray


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return np.ascontiguousarray(X, dtype=np.float64), y.astype(np.int64)


@pytest.fixture(scope="session")
def sk_classifier(
    iris: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    path = tmp_path_factory.mktemp("sk") / "classifier.joblib"
    joblib.dump(model, path)
    return Trained(model, path, X, y)


@pytest.fixture(scope="session")
def sk_string_classifier(
    iris: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    import joblib
    from sklearn.tree import DecisionTreeClassifier

    X, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, labels)
    path = tmp_path_factory.mktemp("sk") / "strings.pkl"
    joblib.dump(model, path)
    return Trained(model, path, X, labels)


@pytest.fixture(scope="session")
def sk_regressor(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    import joblib
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    model = Ridge().fit(X, y)
    path = tmp_path_factory.mktemp("sk") / "regressor.joblib"
    joblib.dump(model, path)
    return Trained(model, path, np.asarray(X, dtype=np.float64), y)


@pytest.fixture(scope="session")
def onnx_classifier(sk_classifier: Trained, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The iris pipeline converted without ZipMap: outputs ``label`` and ``probabilities``."""
    import skl2onnx

    model = sk_classifier.model
    X32 = sk_classifier.X.astype(np.float32)
    onx = skl2onnx.to_onnx(model, X32[:1], options={id(model): {"zipmap": False}})
    path = tmp_path_factory.mktemp("onnx") / "classifier.onnx"
    path.write_bytes(onx.SerializeToString())
    return Trained(model, path, X32, sk_classifier.y)


@pytest.fixture(scope="session")
def onnx_zipmap(sk_classifier: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same pipeline converted with ZipMap: ``output_probability`` is a seq(map)."""
    import skl2onnx

    onx = skl2onnx.to_onnx(sk_classifier.model, sk_classifier.X[:1].astype(np.float32))
    path = tmp_path_factory.mktemp("onnx") / "zipmap.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.fixture()
def corrupt(tmp_path: Path) -> Callable[[str], Path]:
    """Write a file of garbage with the given name."""

    def write(name: str) -> Path:
        path = tmp_path / name
        path.write_bytes(b"this is not a model \x00\x01\x02")
        return path

    return write
