"""Experiments end to end: `modelport up` decides on its own from real traffic and feedback.

Two real versions of a breast-cancer classifier (scikit-learn's data set): version 1 trained on
the true labels, version 2 on shuffled ones. Four deployments in one `up` process, each with an
experiment, each driven the way a client drives it: predictions over REST with its own request
ids, then the true labels later through `POST /v2/feedback`. The evaluation job (every half
second here) must roll the worse treatment back, promote the better one (moving the alias),
refuse to decide on a biased split, and wait on too little traffic until the maximum duration.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelport.testing import ServerProcess
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

X, Y = load_breast_cancer(return_X_y=True)

DEPLOYMENT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  variants:
    - {{name: control, model: {control}, weight: 50, role: control}}
    - {{name: treatment, model: {treatment}, weight: 50, role: treatment}}
    - {{name: shadow, model: cancer@2, role: shadow, mirror: 100}}
---
apiVersion: modelport.io/v1
kind: Experiment
metadata: {{name: {name}-exp}}
spec:
  deployment: {name}
  control: control
  treatment: treatment
  output: predict
  primary: {{metric: accuracy}}
  guardrails: [{{metric: error_rate, tolerance: 0.01}}]
  minSamples: {min_samples}
  maxDuration: {max_duration}
  evaluateEvery: 1s
"""


def run(home: Path, *args: str) -> str:
    done = modelport(home, *args)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def declare(home: Path, name: str, control: str, treatment: str, **spec: Any) -> None:
    path = home / f"{name}.yaml"
    values = {"min_samples": 100, "max_duration": "1h"} | spec
    path.write_text(DEPLOYMENT.format(name=name, control=control, treatment=treatment, **values))
    run(home, "apply", "-f", str(path))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    shuffled = np.random.default_rng(0).permutation(Y)
    for labels in (Y, shuffled):  # version 1 learns, version 2 guesses
        path = home / f"cancer-{len(list(home.iterdir()))}.joblib"
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        joblib.dump(model.fit(X, labels), path)
        run(home, "register", "cancer", str(path), "--no-compile")
    run(home, "alias", "set", "cancer", "production", "2")
    declare(home, "worse", "cancer@1", "cancer@2")
    declare(home, "better", "cancer@production", "cancer@1")
    declare(home, "biased", "cancer@1", "cancer@1")
    declare(home, "quiet", "cancer@1", "cancer@2", min_samples=1000, max_duration="12s")
    return home


@pytest.fixture(scope="module")
def up(home: Path) -> Iterator[ServerProcess]:
    env = {
        "MODELPORT_HOME": str(home),
        "MODELPORT_GATEWAY__POLL_INTERVAL_S": "0.2",
        "MODELPORT_PREDICTIONS__FLUSH_INTERVAL_S": "0.2",
        "MODELPORT_CONTROLPLANE__EXPERIMENT_INTERVAL_S": "0.5",
    }
    with ServerProcess(["--workers", "1", "--no-auth"], env, command="up") as server:
        yield server


def traffic(
    url: str, deployment: str, n: int, client: httpx.Client, variant: str | None = None
) -> list[tuple[str, int]]:
    """Send ``n`` rows one request each; return each request id with the row's true label."""
    sent = []
    for i in np.random.default_rng(len(deployment)).integers(0, len(X), n):
        request_id = uuid.uuid4().hex
        headers = {"x-request-id": request_id}
        if variant is not None:
            headers["x-modelport-variant"] = variant
        body = {
            "inputs": [
                {"name": "input", "datatype": "FP64", "shape": [1, 30], "data": [X[i].tolist()]}
            ]
        }
        reply = client.post(f"{url}/v2/models/{deployment}/infer", json=body, headers=headers)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-request-id"] == request_id  # what feedback names it by
        sent.append((request_id, int(Y[i])))
    return sent


def feedback(
    url: str, deployment: str, labels: list[tuple[str, int]], client: httpx.Client
) -> None:
    items = [{"request_id": rid, "label": label} for rid, label in labels]
    reply = client.post(f"{url}/v2/feedback", json={"deployment": deployment, "feedback": items})
    assert reply.status_code == 200, reply.text
    assert reply.json()["accepted"] == len(items)


def wait_for(
    url: str, name: str, client: httpx.Client, statuses: set[str], decided: bool = False
) -> dict[str, Any]:
    """The experiment once its status is one of ``statuses`` (or it has a decision)."""
    deadline = time.monotonic() + 30
    while True:
        shown = client.get(f"{url}/v1/experiments/{name}").json()
        done = shown["status"] in statuses or (decided and shown["decisions"])
        if done or time.monotonic() > deadline:
            return dict(shown)
        time.sleep(0.2)


def weights(url: str, deployment: str, client: httpx.Client) -> dict[str, float]:
    document = client.get(f"{url}/v1/deployments/{deployment}").json()["document"]
    return {v["name"]: v["weight"] for v in document["spec"]["variants"] if v["role"] != "shadow"}


def test_the_platform_decides_on_its_own(home: Path, up: ServerProcess) -> None:
    with httpx.Client(timeout=10) as client:
        worse = traffic(up.url, "worse", 400, client)
        better = traffic(up.url, "better", 400, client)
        # A deployer's override sends most traffic to the control: a broken router.
        biased = traffic(up.url, "biased", 300, client, variant="control")
        biased += traffic(up.url, "biased", 100, client)
        quiet = traffic(up.url, "quiet", 20, client)
        time.sleep(0.5)  # the labels come later, as they do in production
        for name, labels in (("worse", worse), ("better", better), ("biased", biased)):
            feedback(up.url, name, labels, client)
        feedback(up.url, "quiet", quiet, client)
        waiting = wait_for(up.url, "quiet-exp", client, set(), decided=True)
        assert waiting["status"] == "running", waiting
        assert {d["decision"] for d in waiting["decisions"]} == {"not_enough_data"}

        rolled_back = wait_for(up.url, "worse-exp", client, {"rolled_back"})
        assert rolled_back["status"] == "rolled_back", rolled_back
        assert weights(up.url, "worse", client) == {"control": 100.0, "treatment": 0.0}

        promoted = wait_for(up.url, "better-exp", client, {"promoted"})
        assert promoted["status"] == "promoted", promoted
        assert weights(up.url, "better", client) == {"control": 0.0, "treatment": 100.0}
        # Every request was copied to the guessing shadow: compared request by request.
        [shadow] = promoted["decisions"][0]["inputs"]["shadows"]
        assert shadow["shadow"] == "shadow" and shadow["pairs"] >= 300
        assert 0.3 < shadow["agreement"]["value"] < 0.9  # it agrees with half the answers or so
        assert shadow["latency_diff_mean_ms"] is not None

        blocked = wait_for(up.url, "biased-exp", client, {"blocked"})
        assert blocked["status"] == "blocked", blocked
        assert "sample-ratio mismatch" in blocked["decisions"][0]["reason"]
        assert weights(up.url, "biased", client) == {"control": 50.0, "treatment": 50.0}
        acknowledged = run(home, "experiments", "acknowledge", "biased-exp")
        assert "status running" in acknowledged  # decisions resume, counting from now

        ended = wait_for(up.url, "quiet-exp", client, {"inconclusive"})
        assert ended["status"] == "inconclusive", ended
        decisions = [d["decision"] for d in ended["decisions"]]
        assert decisions[0] == "inconclusive" and set(decisions[1:]) == {"not_enough_data"}

    history = run(home, "alias", "history", "cancer", "production")
    assert "experiment:better-exp" in history
    assert json.loads(run(home, "models", "show", "cancer@production"))["version"] == 1
    entries = json.loads(run(home, "audit", "list", "--action", "experiment.decide", "--json"))
    decided = {(e["actor"], e["details"]["decision"]) for e in entries}
    assert ("experiment:better-exp", "promote") in decided
    assert ("experiment:worse-exp", "rollback") in decided
    shown = " ".join(run(home, "experiments", "show", "worse-exp").split())  # rich wraps lines
    assert "rollback: the treatment is significantly worse on accuracy: control" in shown


def test_bad_feedback_and_bad_actions_are_refused(home: Path, up: ServerProcess) -> None:
    with httpx.Client(timeout=10) as client:
        unknown = client.post(
            f"{up.url}/v2/feedback",
            json={"deployment": "worse", "request_id": "never-served", "label": 1},
        )
        assert unknown.status_code == 404 and "never-served" in unknown.text
        wrong = client.post(
            f"{up.url}/v2/feedback",
            json={"deployment": "biased", "request_id": "x", "value": 0.5},
        )
        assert wrong.status_code == 400, wrong.text
        missing = client.post(f"{up.url}/v1/experiments/ghost/pause")
        assert missing.status_code == 404
    done = modelport(home, "experiments", "pause", "ghost")
    assert done.returncode == 3 and "no experiment 'ghost'" in done.stderr
