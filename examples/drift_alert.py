"""modelport drift alert, end to end: traffic drifts, a webhook hears of it, then of its end.

Runs on embedded defaults in a fresh data directory, ``.drift-demo/`` in the repository (set
``MODELPORT_HOME`` to use another), with every interval shortened so the whole story takes about
a minute (a real installation keeps the defaults: one-minute buckets, hour-long windows):

1. trains a classifier on generated data (6 numeric features) and registers it with 5,000
   reference rows, from which its reference profile is made;
2. applies a deployment ``risk`` and an AlertRule ``risk-drift`` (any feature's drift verdict,
   held for 2 seconds) whose receiver is a webhook this script listens on (Alertmanager's
   webhook format, version 4);
3. runs ``modelport up``, sends traffic drawn like the reference, then traffic in which one
   feature has moved by one standard deviation: the drift job flags it, the alert fires and the
   webhook receives it; ``modelport alerts list`` and ``modelport drift report`` show it;
4. sends traffic like the reference again: the alert resolves and the webhook hears that too.

Each step prints the ``modelport`` command it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import _demo
import httpx
import joblib
import numpy as np
from _demo import start_up, step
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
DEMO = "drift demo"
FEATURES = 6
MOVED = 2  # the feature that drifts

DEPLOYMENT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {name: risk}
spec:
  variants: [{name: main, model: risk@1, weight: 100}]
---
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {name: risk-drift}
spec:
  deployment: risk
  severity: warning
  for: 2s
  condition:
    driftScore: {feature: "*", window: 10s}
  annotations:
    summary: risk's inputs have drifted from the reference
  receivers:
    - {url: "RECEIVER"}
"""

SHORT = {
    "MODELPORT_LOG__ACCESS": "false",
    "MODELPORT_PREDICTIONS__FLUSH_INTERVAL_S": "0.2",
    "MODELPORT_MONITORING__DRIFT_BUCKET_S": "1",
    "MODELPORT_MONITORING__DRIFT_WINDOW_SECONDS": "[10]",
    "MODELPORT_MONITORING__SIGNAL_INTERVAL_S": "1",
    "MODELPORT_CONTROLPLANE__DRIFT_INTERVAL_S": "1",
    "MODELPORT_CONTROLPLANE__ALERT_INTERVAL_S": "1",
    "MODELPORT_CONTROLPLANE__NOTIFY_INTERVAL_S": "0.5",
}
"""Intervals shortened for a one-minute demonstration."""


def run(*args: str, env: dict[str, str]) -> str:
    return _demo.run(*args, env=env, demo=DEMO)


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver: keeps every payload it is sent."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length))
        Receiver.received.append(payload)
        alerts = ", ".join(
            f"{a['labels'].get('alertname')} {a['status']} ({a['labels'].get('feature', '')})"
            for a in payload.get("alerts", [])
        )
        print(f"webhook received: {payload.get('status')}: {alerts}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Quiet: the payloads are printed above."""


def main() -> None:
    home = Path(os.environ.get("MODELPORT_HOME", ROOT / ".drift-demo"))
    if "MODELPORT_HOME" not in os.environ and home.exists():
        shutil.rmtree(home)  # the demo's own folder: start fresh every time
    # Wide enough for the report's table when the output is not a terminal.
    env = {"COLUMNS": "120", **os.environ, "MODELPORT_HOME": str(home), **SHORT}
    work = home / "work"
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)

    step("train a classifier on 5,000 generated rows; they are its reference too")
    reference = rng.normal(size=(5_000, FEATURES))
    labels = (reference @ np.linspace(1.0, -1.0, FEATURES) > 0).astype(int)
    joblib.dump(LogisticRegression().fit(reference, labels), work / "risk.joblib")
    np.save(work / "reference.npy", reference)
    run("register", "risk", str(work / "risk.joblib"), "--sample", str(work / "reference.npy"),
        "--no-compile", env=env)  # fmt: skip

    step("a webhook receiver on a free loopback port (where the alert notifications go)")
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/alerts"
    print(f"listening on {hook}")

    step("deploy risk@1 and an alert rule on its drift")
    documents = work / "risk.yaml"
    documents.write_text(DEPLOYMENT.replace("RECEIVER", hook))
    print(documents.read_text().rstrip())
    run("apply", "-f", str(documents), env=env)

    step("run the platform (intervals shortened for the demonstration)")
    server, url = start_up(["--port", "0", "--no-auth"], env, home / "up.log", DEMO)
    try:
        story(url, rng, env)
    finally:
        server.terminate()
        server.wait(timeout=15)
        receiver.shutdown()
    step("done: see README.md, 'modelport alerts list' and 'modelport drift report'")


def story(url: str, rng: np.random.Generator, env: dict[str, str]) -> None:
    with httpx.Client(timeout=10) as client:
        step("traffic like the reference for 12 seconds: nothing drifts, nothing fires")
        send_for(12.0, 0.0, url, rng, client)
        run("alerts", "list", env=env)

        step(f"now input[{MOVED}] moves by one standard deviation: wait for the webhook")
        firing = wait_for("firing", 1.0, url, rng, client)
        print(json.dumps(firing, indent=2)[:1500])
        run("alerts", "list", env=env)
        run("drift", "report", "risk", "--window", "20s", env=env)

        step("traffic like the reference again: the alert resolves")
        wait_for("resolved", 0.0, url, rng, client)


def send_for(seconds: float, shift: float, url: str, rng: np.random.Generator,
             client: httpx.Client) -> None:  # fmt: skip
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        send(shift, url, rng, client)


def send(shift: float, url: str, rng: np.random.Generator, client: httpx.Client) -> None:
    rows = rng.normal(size=(20, FEATURES))
    rows[:, MOVED] += shift
    body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [20, FEATURES],
                        "data": rows.tolist()}]}  # fmt: skip
    client.post(f"{url}/v2/models/risk/infer", json=body).raise_for_status()
    time.sleep(0.01)


def wait_for(status: str, shift: float, url: str, rng: np.random.Generator,
             client: httpx.Client) -> dict[str, Any]:  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for payload in Receiver.received:
            if payload.get("status") == status:
                return payload
        send(shift, url, rng, client)
    sys.exit(f"drift demo failed: no {status} notification within 90 s")


if __name__ == "__main__":
    main()
