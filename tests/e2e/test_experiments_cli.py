"""`modelport apply` with an Experiment, and every `modelport experiments` command, on a data directory."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

FILE = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {name: fraud}
spec:
  variants:
    - {name: current, model: fraud@production, weight: 100, role: control}
    - {name: candidate, model: fraud@2, weight: 0, role: treatment}
---
apiVersion: modelport.io/v1
kind: Experiment
metadata: {name: fraud-v4}
spec:
  deployment: fraud
  control: current
  treatment: candidate
  primary: {metric: accuracy}
  steps: [{weight: 5, minDuration: 10m, minSamples: 200}, {weight: 50, minDuration: 1h}]
"""


def ok(home: Path, *args: str) -> str:
    done = modelport(home, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    X, y = load_iris(return_X_y=True)
    path = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), path)
    for _ in range(2):
        ok(tmp_path, "register", "fraud", str(path), "--no-compile")
    ok(tmp_path, "alias", "set", "fraud", "production", "1")
    (tmp_path / "fraud-v4.yaml").write_text(FILE)
    return tmp_path


def show(home: Path) -> dict[str, object]:
    return dict(json.loads(ok(home, "experiments", "show", "fraud-v4", "-o", "json")))


def test_every_command(home: Path) -> None:
    applied = ok(home, "apply", "-f", str(home / "fraud-v4.yaml"))
    assert "deployment/fraud created" in applied and "experiment/fraud-v4 started" in applied
    assert "unchanged" in ok(home, "apply", "-f", str(home / "fraud-v4.yaml"))
    shown = ok(home, "deployments", "show", "fraud")
    assert "weight: 5.0" in shown and "weight: 95.0" in shown  # the canary's first step
    listed = ok(home, "experiments", "list")
    assert "fraud-v4" in listed and "1 of 2" in listed and "running" in listed
    assert "not evaluated yet" in ok(home, "experiments", "show", "fraud-v4")
    evaluated = ok(home, "experiments", "evaluate", "fraud-v4")
    assert "experiment/fraud-v4: continue: step 1 of 2" in evaluated
    table = ok(home, "experiments", "show", "fraud-v4")
    assert "latest decision" in table and "sequential tests" in table
    assert show(home)["status"] == "running"
    assert "paused" in ok(home, "experiments", "pause", "fraud-v4")
    assert "running" in ok(home, "experiments", "resume", "fraud-v4")
    refused = modelport(home, "experiments", "acknowledge", "fraud-v4")
    assert refused.returncode == 4 and "needs it blocked" in refused.stderr
    assert "status promoted" in ok(home, "experiments", "promote", "fraud-v4")
    history = ok(home, "alias", "history", "fraud", "production")
    assert history.count("experiment:fraud-v4") == 0  # the person who promoted moved it
    assert "promoted" in ok(home, "experiments", "list")
    assert "deleted" in ok(home, "experiments", "delete", "fraud-v4")
    assert "no experiments yet" in ok(home, "experiments", "list")


def test_abort_and_refusals(home: Path) -> None:
    ok(home, "apply", "-f", str(home / "fraud-v4.yaml"))
    assert "aborted" in ok(home, "experiments", "abort", "fraud-v4")
    assert "weight: 100.0" in ok(home, "deployments", "show", "fraud")
    again = modelport(home, "experiments", "abort", "fraud-v4")
    assert again.returncode == 4 and "has ended" in again.stderr
    bad = home / "bad.yaml"
    bad.write_text(FILE.replace("metric: accuracy", "metric: f1"))
    refused = modelport(home, "apply", "-f", str(bad))
    assert refused.returncode == 2 and "f1 is reported, not tested" in refused.stderr
    missing = modelport(home, "experiments", "show", "ghost")
    assert missing.returncode == 3 and "no experiment 'ghost'" in missing.stderr
    wrong = modelport(home, "experiments", "list", "-o", "yaml")
    assert wrong.returncode == 2 and "expected table or json" in wrong.stderr
