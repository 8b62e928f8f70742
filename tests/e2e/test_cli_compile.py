"""``modelport register`` compiles scikit-learn models to ONNX; serving uses the compiled copy."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelport.testing import ServerProcess
from tests.e2e.test_cli import fails, ok

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("compile")
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    joblib.dump(model, work / "iris.joblib")
    np.save(work / "sample.npy", X)
    rows = X[::10]
    (work / "rows.json").write_text(json.dumps(rows.tolist()))
    (work / "expected.json").write_text(json.dumps(model.predict(rows).tolist()))
    return work


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, work: Path) -> Path:
    home = tmp_path_factory.mktemp("home")
    model, sample = str(work / "iris.joblib"), str(work / "sample.npy")
    out = ok(home, "register", "iris", model, "--sample", sample)
    assert "registered iris@1 (sklearn, served as onnx, max |Δp| " in out
    out = ok(home, "register", "iris", model, "--sample", sample, "--no-compile")
    assert "registered iris@2 (sklearn, not compiled: compilation turned off" in out
    out = ok(home, "register", "iris", model)
    assert "registered iris@3 (sklearn, not compiled: no sample to check equivalence)" in out
    return home


def test_models_show_says_what_is_served(home: Path) -> None:
    first = json.loads(ok(home, "models", "show", "iris@1"))
    assert first["framework"] == "sklearn"
    assert first["serving"]["framework"] == "onnx"
    assert first["serving"]["digest"].startswith("sha256:")
    assert first["serving"]["digest"] != first["artifact"]["digest"]
    assert first["serving"]["size"] > 0
    report = first["compile_report"]
    assert report["compiled"] is True and report["reason"] is None
    assert 0 <= report["max_abs_diff"] <= report["atol"] == 1e-5
    assert report["rows"] == 150
    second = json.loads(ok(home, "models", "show", "iris@2"))
    assert second["serving"] is None
    assert second["compile_report"]["compiled"] is False
    assert "--no-compile" in second["compile_report"]["reason"]
    assert json.loads(ok(home, "models", "show", "iris@3"))["serving"] is None


def test_the_compiled_version_answers_like_the_original(home: Path, work: Path) -> None:
    expected = json.loads((work / "expected.json").read_text())
    rows = json.loads((work / "rows.json").read_text())
    body = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP64",
                "shape": [len(rows), 4],
                "data": [v for row in rows for v in row],
            }
        ]
    }
    names = ("compiled", "original")
    env = {"MODELPORT_HOME": str(home)}
    with ServerProcess(["compiled=iris@1", "original=iris@2"], env=env) as server:
        meta = {n: httpx.get(f"{server.url}/v2/models/{n}", timeout=10).json() for n in names}
        raw = {
            n: httpx.post(f"{server.url}/v2/models/{n}/infer", json=body, timeout=10).json()
            for n in names
        }
        cli = {
            n: json.loads(
                ok(home, "predict", n, "--url", server.url, "--data", f"@{work / 'rows.json'}")
            )
            for n in names
        }
    assert meta["compiled"]["platform"] == "onnxruntime_onnx"
    assert meta["original"]["platform"] == "sklearn"
    for key in ("inputs", "outputs"):
        assert meta["compiled"][key] == meta["original"][key]
    shapes = {n: [(o["name"], o["datatype"], o["shape"]) for o in raw[n]["outputs"]] for n in names}
    assert shapes["compiled"] == shapes["original"]
    for n in names:
        assert cli[n]["outputs"]["predict"] == expected
    np.testing.assert_allclose(
        cli["compiled"]["outputs"]["predict_proba"],
        cli["original"]["outputs"]["predict_proba"],
        atol=1e-5,
    )


def test_a_corrupt_compiled_artifact_fails_closed(tmp_path: Path, work: Path) -> None:
    home = tmp_path / "home"
    ok(home, "register", "iris", str(work / "iris.joblib"), "--sample", str(work / "sample.npy"))
    digest = json.loads(ok(home, "models", "show", "iris@1"))["serving"]["digest"]
    hexdigest = digest.removeprefix("sha256:")
    stored = home / "artifacts" / "models" / "iris" / "1" / f"{hexdigest}.sealed"
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes()[:-10])
    # The original is intact, yet serving refuses instead of silently switching to it.
    fails(home, 6, "serving artifact (onnx)", "serve", "iris", "--port", "0")
