"""Alerts end to end: real `modelport up` processes, a real webhook receiver, real traffic.

A drift alert reaches the receiver in Alertmanager's webhook format (and Slack's) when one
feature of the traffic moves, and resolves when the traffic is like the reference again; a model
that sleeps past its latency objective fires the SLO alert. Every interval is shortened through
the settings, as a user would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelport.monitoring.alerting import ZERO_TIME, fingerprint
from modelport.testing import ServerProcess
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

SHORT = {
    "MODELPORT_LOG__ACCESS": "false",
    "MODELPORT_PREDICTIONS__FLUSH_INTERVAL_S": "0.2",
    "MODELPORT_MONITORING__DRIFT_BUCKET_S": "1",
    "MODELPORT_MONITORING__DRIFT_WINDOW_SECONDS": "[3]",
    "MODELPORT_MONITORING__SIGNAL_INTERVAL_S": "1",
    "MODELPORT_CONTROLPLANE__DRIFT_INTERVAL_S": "0.5",
    "MODELPORT_CONTROLPLANE__ALERT_INTERVAL_S": "0.5",
    "MODELPORT_CONTROLPLANE__NOTIFY_INTERVAL_S": "0.5",
}


class Hook:
    """A webhook receiver on a free loopback port: keeps what each path was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.refused = 0
        self.status = 200
        """What the receiver answers: a 5xx makes the sender keep the notification."""
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if hook.status == 200:
                    hook.received.append((self.path, json.loads(body)))
                else:
                    hook.refused += 1
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def payloads(self, path: str) -> list[dict[str, Any]]:
        return [payload for at, payload in list(self.received) if at == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.close()


def ok(home: Path, *args: str) -> str:
    done = modelport(home, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def wait_until(found: Callable[[], Any], act: Callable[[], None], what: str, limit_s: float) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        result = found()
        if result:
            return result
        act()
    raise AssertionError(f"no {what} within {limit_s} s")


DRIFT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {{name: risk}}
spec:
  variants: [{{name: main, model: risk@1, weight: 100}}]
---
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {{name: risk-drift}}
spec:
  deployment: risk
  severity: critical
  for: 1s
  condition:
    driftScore: {{feature: "input[2]", window: 3s}}
  labels: {{team: risk}}
  annotations: {{summary: "risk's inputs drifted"}}
  receivers:
    - {{url: "{hook}/alertmanager"}}
    - {{url: "{hook}/slack", format: slack}}
"""


def test_a_drift_alert_reaches_a_webhook_and_resolves(tmp_path: Path, hook: Hook) -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(5_000, 4))
    labels = (reference @ np.array([1.0, -1.0, 0.5, 0.0]) > 0).astype(int)
    joblib.dump(LogisticRegression().fit(reference, labels), tmp_path / "risk.joblib")
    np.save(tmp_path / "reference.npy", reference)
    ok(tmp_path, "register", "risk", str(tmp_path / "risk.joblib"), "--sample",
       str(tmp_path / "reference.npy"), "--no-compile")  # fmt: skip
    (tmp_path / "risk.yaml").write_text(DRIFT.format(hook=hook.url))
    ok(tmp_path, "apply", "-f", str(tmp_path / "risk.yaml"))
    env = {"MODELPORT_HOME": str(tmp_path), **SHORT}

    with ServerProcess(["--workers", "2", "--no-auth"], env, command="up") as up:
        client = httpx.Client(timeout=10)

        def send(shift: float) -> Callable[[], None]:
            def one() -> None:
                rows = rng.normal(size=(20, 4))
                rows[:, 2] += shift
                body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [20, 4],
                                    "data": rows.tolist()}]}  # fmt: skip
                client.post(f"{up.url}/v2/models/risk/infer", json=body).raise_for_status()

            return one

        calm_until = time.monotonic() + 6
        while time.monotonic() < calm_until:
            send(0.0)()
        assert hook.payloads("/alertmanager") == []  # traffic like the reference fires nothing

        def firing() -> list[dict[str, Any]]:
            return [p for p in hook.payloads("/alertmanager") if p["status"] == "firing"]

        [fired, *_] = wait_until(firing, send(1.0), "firing notification", 60)
        listed = json.loads(ok(tmp_path, "alerts", "list", "-o", "json"))
        wait_until(lambda: hook.payloads("/slack"), send(1.0), "Slack notification", 30)

        def resolved() -> list[dict[str, Any]]:
            return [p for p in hook.payloads("/alertmanager") if p["status"] == "resolved"]

        [ended, *_] = wait_until(resolved, send(0.0), "resolved notification", 60)
        client.close()

    assert fired["version"] == "4" and fired["receiver"] and fired["groupKey"]
    [alert] = fired["alerts"]
    assert alert["status"] == "firing" and alert["endsAt"] == ZERO_TIME
    assert alert["labels"] == {
        "alertname": "risk-drift", "deployment": "risk", "severity": "critical",
        "team": "risk", "variant": "main", "feature": "input[2]",
    }  # fmt: skip
    assert alert["fingerprint"] == fingerprint(alert["labels"])
    assert alert["annotations"]["summary"] == "risk's inputs drifted"
    assert fired["commonLabels"]["alertname"] == "risk-drift"
    [again] = ended["alerts"]
    assert again["fingerprint"] == alert["fingerprint"] and again["startsAt"] == alert["startsAt"]
    assert again["status"] == "resolved" and again["endsAt"] > again["startsAt"]
    [shown] = [a for a in listed["alerts"] if a["rule"] == "risk-drift"]
    assert shown["state"] == "firing" and shown["labels"]["feature"] == "input[2]"
    slack = hook.payloads("/slack")[0]
    assert "risk-drift" in json.dumps(slack) and "text" in slack
    after = json.loads(ok(tmp_path, "alerts", "list", "--all", "-o", "json"))
    assert [a["state"] for a in after["alerts"] if a["rule"] == "risk-drift"] == ["resolved"]


SLEEPY = """\
import time

import numpy as np


class Sleepy:
    signature = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}],
    }

    def predict(self, inputs):
        time.sleep(0.15)  # slower than the objective's 0.1 s
        return {"y": np.asarray(inputs["x"], dtype=float) * 2}
"""

SLO = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {{name: slow}}
spec:
  variants: [{{name: main, model: slow@1, weight: 100}}]
---
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {{name: slow-latency}}
spec:
  deployment: slow
  severity: critical
  condition:
    latencySlo:
      threshold: 0.1
      objective: 0.99
      windows: [{{long: 6s, short: 2s, burnRate: 10}}]
  receivers: [{{url: "{hook}/alertmanager"}}]
"""


def test_a_slow_models_slo_alert_not_delivered_before_a_restart_is_delivered_after(
    tmp_path: Path, hook: Hook
) -> None:
    """The latency-SLO alert fires for a model slower than its objective; its notification,
    refused while the receiver is down, is kept and delivered by the next process."""
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    ok(tmp_path, "register", "slow", f"{tmp_path / 'sleepy.py'}:Sleepy")
    (tmp_path / "slow.yaml").write_text(SLO.format(hook=hook.url))
    ok(tmp_path, "apply", "-f", str(tmp_path / "slow.yaml"))
    env = {"MODELPORT_HOME": str(tmp_path), **SHORT}
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]}
    hook.status = 503  # the receiver is down
    with ServerProcess(["--workers", "1", "--no-auth"], env, command="up") as up:
        client = httpx.Client(timeout=10)

        def call() -> None:
            client.post(f"{up.url}/v2/models/slow/infer", json=body).raise_for_status()

        wait_until(lambda: hook.refused, call, "a refused delivery", 60)
        client.close()
    waiting = json.loads(ok(tmp_path, "alerts", "list", "-o", "json"))["alerts"]
    # The firing one (and the resolved one, if it resolved while the server stopped).
    assert len(waiting) <= 1 and all(a["pendingNotifications"] >= 1 for a in waiting)
    hook.status = 200  # back up: the next process delivers what the first could not
    with ServerProcess(["--workers", "1", "--no-auth"], env, command="up"):

        def firing() -> list[dict[str, Any]]:
            return [p for p in hook.payloads("/alertmanager") if p["status"] == "firing"]

        [fired, *_] = wait_until(firing, lambda: time.sleep(0.2), "the kept notification", 60)
    [alert] = fired["alerts"]
    assert alert["labels"]["alertname"] == "slow-latency"
    assert alert["labels"]["deployment"] == "slow" and alert["labels"]["severity"] == "critical"


def test_the_drift_alert_example_runs(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MODELPORT_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "drift_alert.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "webhook received: firing: risk-drift firing (input[2])" in out
    assert "webhook received: resolved: risk-drift resolved (input[2])" in out
    assert out.index("no alerts firing or pending") < out.index("webhook received: firing")
