"""modelport quickstart: train, register, deploy 90/10, query, then a canary that rolls itself back.

Runs on embedded defaults (SQLite metadata and a local artifact store) in a fresh data directory,
``.quickstart/`` in the repository (set ``MODELPORT_HOME`` to use another). Each step prints the
``modelport`` command it runs, so you can repeat them by hand.

The last part is a canary: a challenger (version 3, trained on shuffled labels, so it guesses) is
registered and started as an experiment that gives it 20% of the traffic; predictions go
through the deployment, their true labels come back through ``POST /v2/feedback``, and the
platform's evaluation job rolls the challenger back on its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import orjson
from _demo import start_up, step
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parent.parent
MODELPORT = str(Path(sys.executable).with_name("modelport"))
DEMO = "quickstart"


def run(*args: str, env: dict[str, str], echo: bool = True) -> str:
    print("$ modelport " + " ".join(args), flush=True)
    done = subprocess.run([MODELPORT, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"quickstart failed: modelport {' '.join(args)}: {done.stderr.strip()}")
    if echo:
        print(done.stdout.rstrip(), flush=True)
    return done.stdout


DEPLOYMENT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata:
  name: iris
spec:
  variants:
    - name: current
      model: iris@1
      weight: 90
    - name: champion
      model: iris@champion
      weight: 10
      role: treatment
  traffic:
    stickyKey:
      header: X-User-Id
"""

CANARY = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata:
  name: iris
spec:
  variants:
    - {name: current, model: iris@1, weight: 100, role: control}
    - {name: challenger, model: iris@3, weight: 0, role: treatment}
---
apiVersion: modelport.io/v1
kind: Experiment
metadata:
  name: iris-challenger
spec:
  deployment: iris
  control: current
  treatment: challenger
  output: predict
  primary: {metric: accuracy}
  guardrails:
    - {metric: error_rate, tolerance: 0.01}
    - {metric: latency_p99, tolerance: 50%}
  minSamples: 100
  maxDuration: 10m
  evaluateEvery: 1s
  steps:
    - {weight: 20, minDuration: 30s}
    - {weight: 50, minDuration: 1m}
"""


def main() -> None:
    home = Path(os.environ.get("MODELPORT_HOME", ROOT / ".quickstart"))
    work = home / "work"
    if "MODELPORT_HOME" not in os.environ and home.exists():
        shutil.rmtree(home)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MODELPORT_HOME": str(home)}

    step("train two versions of an iris classifier (data ships with scikit-learn)")
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    candidates = {
        "v1": LogisticRegression(max_iter=500),
        "v2": RandomForestClassifier(n_estimators=50, random_state=0),
    }
    accuracy: dict[str, float] = {}
    for label, model in candidates.items():
        model.fit(X_train, y_train)
        accuracy[label] = float(model.score(X_test, y_test))
        joblib.dump(model, work / f"iris-{label}.joblib")
        print(f"{label}: {type(model).__name__}, test accuracy {accuracy[label]:.3f}")
    np.save(work / "sample.npy", X_test[:5])
    shuffled = np.random.default_rng(0).permutation(y_train)  # the challenger only guesses
    challenger = LogisticRegression(max_iter=500).fit(X_train, shuffled)
    joblib.dump(challenger, work / "iris-v3.joblib")

    step("register both versions with a sample input, metrics and tags")
    for label in candidates:
        run(
            "register",
            "iris",
            str(work / f"iris-{label}.joblib"),
            "--sample",
            str(work / "sample.npy"),
            "--metric",
            f"accuracy={accuracy[label]:.4f}",
            "--tag",
            "dataset=iris",
            "--description",
            f"{type(candidates[label]).__name__}",
            env=env,
        )
    run("alias", "set", "iris", "champion", "2", env=env)
    run("models", "list", env=env)

    step("create an API key: the server authenticates every call (shown once, stored hashed)")
    created = orjson.loads(
        run(
            "keys",
            "create",
            "--role",
            "predictor",
            "--scope",
            "iris",
            "--name",
            "quickstart",
            "--json",
            env=env,
            echo=False,
        )
    )
    api_key = created["key"]
    print(f"key {created['key_id']}: predictor on 'iris' (the secret is not printed again)")
    env["MODELPORT_API_KEY"] = api_key  # what `modelport predict` sends as its bearer token

    step("deploy: one public name, 90% of traffic on version 1 and 10% on the champion")
    deployment = work / "iris-deployment.yaml"
    deployment.write_text(DEPLOYMENT)
    print(DEPLOYMENT.rstrip())
    run("apply", "-f", str(deployment), env=env)

    step("run the platform on this box: the deployment served in-process, on free ports")
    up_env = {
        **env,
        "MODELPORT_LOG__ACCESS": "false",  # one line per request is a lot here
        "MODELPORT_CONTROLPLANE__EXPERIMENT_INTERVAL_S": "1",  # look for due experiments
    }
    server, url = start_up(["--port", "0", "--grpc-port", "0"], up_env, home / "up.log", DEMO)
    try:
        step(f"predict through the deployment at {url}")
        rows = X_test[:3].tolist()
        run("predict", "iris", "--url", url, "--data", str(rows), env=env)
        body = {
            "id": "quickstart-1",
            "inputs": [{"name": "input", "datatype": "FP64", "shape": [3, 4], "data": rows}],
            "outputs": [{"name": "predict_proba"}],
        }
        auth = {"Authorization": f"Bearer {api_key}"}
        print(f"POST {url}/v2/models/iris/infer  (plain HTTP, JSON, bearer key, X-User-Id)")
        reply = httpx.post(
            f"{url}/v2/models/iris/infer",
            json=body,
            headers={**auth, "X-User-Id": "user-1"},
            timeout=10,
        )
        print(reply.status_code, f"x-modelport-variant: {reply.headers.get('x-modelport-variant')}")
        print(reply.text)
        served: dict[str, int] = {}
        for n in range(200):
            answer = httpx.post(
                f"{url}/v2/models/iris/infer",
                json=body,
                headers={**auth, "X-User-Id": f"user-{n}"},
                timeout=10,
            )
            version = answer.json()["model_version"]
            variant = f"{answer.headers['x-modelport-variant']} (version {version})"
            served[variant] = served.get(variant, 0) + 1
        print(f"200 users, each kept on one variant by a hash of X-User-Id: {served}")
        anonymous = httpx.post(f"{url}/v2/models/iris/infer", json=body, timeout=10)
        print(f"without the key: {anonymous.status_code} {anonymous.json()['error']}")
        print(f"true labels: {y_test[:3].tolist()}")
        canary(url, auth, X_test, y_test, work, env)
    finally:
        server.terminate()
        server.wait(timeout=15)
    step("the prediction log: every answer, written to Parquet when the server stopped")
    run("logs", "query", "--deployment", "iris", "--since", "1h", "--limit", "3", env=env)
    step("done: see README.md for every command")
    print("a drift alert end to end (a webhook hears of it, then of its end), in a minute:")
    print("  .venv/bin/python examples/drift_alert.py")
    where = Path(os.path.relpath(home))
    tools = Path(os.path.relpath(Path(MODELPORT).parent))
    print(f"modelport is in {tools}/: put it on your PATH with: source {tools}/activate")
    print(f"this quickstart's data directory is {where}/; list its models with:")
    print(f"  MODELPORT_HOME={where} modelport models list")


def canary(
    url: str,
    auth: dict[str, str],
    X_test: np.ndarray,
    y_test: np.ndarray,
    work: Path,
    env: dict[str, str],
) -> None:
    """Register a challenger, start a canary, send traffic and feedback, watch the decision."""
    step("a canary: register a challenger (trained on shuffled labels) and start an experiment")
    run("register", "iris", str(work / "iris-v3.joblib"), "--no-compile", env=env)
    experiment = work / "iris-canary.yaml"
    experiment.write_text(CANARY)
    print(CANARY.rstrip())
    run("apply", "-f", str(experiment), env=env)
    time.sleep(1.5)  # the gateway picks the new weights up within its poll interval
    step("600 predictions, each with its own request id, then their true labels as feedback")
    rng = np.random.default_rng(1)
    labels = []
    with httpx.Client(timeout=10, headers=auth) as client:
        served: dict[str, int] = {}
        for n in range(600):
            row = int(rng.integers(0, len(X_test)))
            request_id = f"quickstart-canary-{n}"
            body = {
                "inputs": [
                    {"name": "input", "datatype": "FP64", "shape": [1, 4],
                     "data": [X_test[row].tolist()]}
                ]
            }  # fmt: skip
            reply = client.post(
                f"{url}/v2/models/iris/infer",
                json=body,
                headers={"X-User-Id": f"user-{n}", "x-request-id": request_id},
            )
            variant = reply.headers["x-modelport-variant"]
            served[variant] = served.get(variant, 0) + 1
            labels.append({"request_id": request_id, "label": int(y_test[row])})
        print(f"served: {served}")
        print(f"POST {url}/v2/feedback  ({len(labels)} labels, as a labelling job would)")
        answer = client.post(f"{url}/v2/feedback", json={"deployment": "iris", "feedback": labels})
        print(answer.status_code, answer.text)
    step("the evaluation job decides on its own (every second here)")
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline:
        listed = run("experiments", "list", "-o", "json", env=env, echo=False)
        status = orjson.loads(listed)[0]["status"]
        if status not in ("running", "blocked"):
            break
        time.sleep(1)
    run("experiments", "show", "iris-challenger", env=env)
    run("deployments", "show", "iris", env=env)
    print(f"the challenger's experiment ended {status}: all the traffic is back on version 1")


if __name__ == "__main__":
    main()
