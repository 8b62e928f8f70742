"""Reference profiles from the command line: at registration, and `modelport drift profile`."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.core.clock import SystemClock
from modelport.core.settings import Settings
from modelport.registry import MetadataStore
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow


def ok(home: Path, *args: str) -> str:
    done = modelport(home, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def stored(home: Path, version: int) -> dict[str, object] | None:
    url = Settings(home=home).resolved_database_url()
    with MetadataStore(url, SystemClock()) as store:
        found = store.get_profile("iris", version)
    return None if found is None else {"rows": found.rows, "source": found.source, **found.profile}


def test_profiles_at_registration_and_by_command(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    model = tmp_path / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), model)
    np.save(tmp_path / "sample.npy", X[:20])
    np.save(tmp_path / "reference.npy", X)
    ok(tmp_path, "register", "iris", str(model), "--sample", str(tmp_path / "sample.npy"))
    ok(tmp_path, "register", "iris", str(model), "--no-compile")  # no sample: no profile
    first = stored(tmp_path, 1)
    assert first is not None and (first["rows"], first["source"]) == (20, "sample")
    features = first["features"]
    assert isinstance(features, list)
    names = {feature["name"] for feature in features}
    assert {"input[0]", "input[3]", "output:predict", "output:predict_proba[2]"} <= names
    assert stored(tmp_path, 2) is None

    said = ok(
        tmp_path, "drift", "profile", "iris@2", "--reference", str(tmp_path / "reference.npy")
    )
    assert said.startswith("profiled iris@2:") and "from 150 rows" in said
    second = stored(tmp_path, 2)
    assert second is not None and second["rows"] == 150
    assert str(second["source"]).startswith("reference sha256:")
    audit = json.loads(ok(tmp_path, "audit", "list", "--action", "profile.set", "--json"))
    assert [e["outcome"] for e in audit] == ["started", "ok"]

    missing = modelport(
        tmp_path, "drift", "profile", "iris@9", "--reference", str(tmp_path / "reference.npy")
    )
    assert missing.returncode == 3 and "9" in missing.stderr
    np.save(tmp_path / "wrong.npy", X[:, :2])
    wrong = modelport(
        tmp_path, "drift", "profile", "iris@2", "--reference", str(tmp_path / "wrong.npy")
    )
    assert wrong.returncode != 0 and wrong.stderr.startswith("error:")
    assert stored(tmp_path, 2) == second  # unchanged
    absent = modelport(tmp_path, "drift", "profile", "iris@2", "--reference", "nope.npy")
    assert absent.returncode == 3 and "nope.npy" in absent.stderr
