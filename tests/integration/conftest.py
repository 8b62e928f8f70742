"""A registry with real models and a ``modelport serve`` process hosting them, for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.core.clock import SystemClock
from modelport.core.settings import Settings
from modelport.service.registration import RegistrationRequest
from modelport.service.wiring import open_registrar
from modelport.testing import ServerProcess

ECHO = Path(__file__).with_name("echo_model.py")
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="session")
def iris_models(iris: tuple[np.ndarray, np.ndarray]) -> dict[str, LogisticRegression]:
    """The fitted models behind iris@1, iris@2 and iris-onnx@1, to compare predictions with."""
    X, y = iris
    return {
        "iris@1": LogisticRegression(C=0.05, max_iter=500).fit(X, y),
        "iris@2": LogisticRegression(C=1.0, max_iter=500).fit(X, y),
        "iris-onnx@1": LogisticRegression(max_iter=500).fit(X, y),
    }


@pytest.fixture(scope="session")
def model_home(
    tmp_path_factory: pytest.TempPathFactory,
    iris: tuple[np.ndarray, np.ndarray],
    iris_models: dict[str, LogisticRegression],
) -> Path:
    """A MODELPORT_HOME holding iris@1, iris@2 (sklearn), iris-onnx@1 and two echo models."""
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("artifacts")
    X, y = iris
    registrar = open_registrar(Settings(home=home), SystemClock())
    np.save(work / "sample.npy", X[:5])
    for version, c in ((1, 0.05), (2, 1.0)):
        model = iris_models[f"iris@{version}"]
        path = work / f"iris-{c}.joblib"
        joblib.dump(model, path)
        registrar.register(
            RegistrationRequest(
                name="iris", artifact=str(path), registered_by="tests", sample=work / "sample.npy"
            )
        )
    registrar.store.set_alias("iris", "champion", 2, "tests")
    model = iris_models["iris-onnx@1"]
    onnx_model = to_onnx(model, X[:1].astype(np.float32), options={id(model): {"zipmap": False}})
    (work / "iris.onnx").write_bytes(onnx_model.SerializeToString())
    registrar.register(
        RegistrationRequest(
            name="iris-onnx", artifact=str(work / "iris.onnx"), registered_by="tests"
        )
    )
    for name, cls in (("echo-json", "EchoJson"), ("echo-binary", "EchoBinary")):
        registrar.register(
            RegistrationRequest(name=name, artifact=f"{ECHO}:{cls}", registered_by="tests")
        )
    registrar.store.close()
    return home


@pytest.fixture(scope="session")
def server(model_home: Path) -> Iterator[ServerProcess]:
    """``modelport serve`` with two workers hosting every model of :func:`model_home`, with a
    1 MiB body limit."""
    env = {"MODELPORT_HOME": str(model_home), "MODELPORT_SERVER__MAX_BODY_BYTES": str(MAX_BODY)}
    models = ["iris@1", "iris@2", "iris-onnx", "echo-json", "echo-binary", "--workers", "2"]
    with ServerProcess(models, env=env) as process:
        yield process


@pytest.fixture(scope="session")
def url(server: ServerProcess) -> str:
    return server.url
