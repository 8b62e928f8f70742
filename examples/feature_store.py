"""modelport features, end to end: from a feature definition to a served prediction.

Runs on embedded defaults (SQLite registry and online store) in a fresh data directory,
``.features-demo/`` in the repository (set ``MODELPORT_HOME`` to use another):

1. writes a feature repository: a Parquet file of hourly per-customer statistics over the last
   ten days (generated) and ``definitions.py`` declaring the ``customer`` entity, the
   ``customer_stats`` feature view (ttl 2 days) and the ``fraud_features`` service, with Feast's
   names; ``modelport features apply`` registers them;
2. ``modelport features training-set`` joins labelled events to the features each customer had
   at the event's time (point-in-time correct), and a classifier is trained on the result and
   registered;
3. a deployment ``fraud`` declares feature enrichment: callers send only customer ids, the
   gateway reads the customer's features from the online store and builds the model's input;
   ``modelport features materialize`` fills the online store and ``modelport up`` serves it;
4. the served predictions are compared with the model's predictions on a training set computed
   offline at the same instant: they are equal, because online and offline agree by
   construction; ``modelport features skew fraud`` recomputes the logged feature vectors
   offline and finds no mismatch.

Each step prints the ``modelport`` command it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _demo
import httpx
import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _demo import start_up, step
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
DEMO = "feature demo"
CUSTOMERS = 300
FEATURES = ["spend_7d", "orders_7d", "chargebacks_90d"]

DEFINITIONS = """\
from datetime import timedelta

from modelport.features import (
    Entity, FeatureService, FeatureView, Field, FileSource, Float64, Int64,
)

customer = Entity(name="customer", join_keys=["customer_id"])

customer_stats = FeatureView(
    name="customer_stats",
    entities=[customer],
    schema=[
        Field(name="spend_7d", dtype=Float64),
        Field(name="orders_7d", dtype=Int64),
        Field(name="chargebacks_90d", dtype=Int64),
    ],
    source=FileSource(path="data/customer_stats.parquet", timestamp_field="event_timestamp"),
    ttl=timedelta(days=2),
)

fraud_features = FeatureService(name="fraud_features", features=[customer_stats])
"""

DEPLOYMENT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {name: fraud}
spec:
  variants: [{name: main, model: fraud@1, weight: 100}]
  features:
    entities:
      - {joinKey: customer_id, input: customer_id}
    service: fraud_features
    onMissing: default
    defaults: {spend_7d: 0.0, orders_7d: 0, chargebacks_90d: 0}
"""


def run(*args: str, env: dict[str, str]) -> str:
    return _demo.run(*args, env=env, demo=DEMO)


def write_statistics(path: Path, now: datetime, rng: np.random.Generator) -> None:
    """Hourly statistics per customer over ten days, ending an hour before ``now``."""
    hours = 240
    ids = np.repeat(np.arange(1, CUSTOMERS + 1), hours)
    ends = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    times = [ends - timedelta(hours=h) for h in range(hours)] * CUSTOMERS
    level = np.repeat(rng.gamma(2.0, 50.0, CUSTOMERS), hours)
    pq.write_table(
        pa.table(
            {
                "customer_id": ids,
                "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
                "spend_7d": np.round(level * rng.uniform(0.5, 1.5, ids.size), 2),
                "orders_7d": rng.poisson(3, ids.size),
                "chargebacks_90d": rng.binomial(2, 0.1, ids.size),
            }
        ),
        path,
    )


def main() -> None:
    home = Path(os.environ.get("MODELPORT_HOME", ROOT / ".features-demo"))
    if "MODELPORT_HOME" not in os.environ and home.exists():
        shutil.rmtree(home)  # the demo's own folder: start fresh every time
    env = {"COLUMNS": "120", **os.environ, "MODELPORT_HOME": str(home),
           "MODELPORT_LOG__ACCESS": "false"}  # fmt: skip
    repo = home / "repo"
    (repo / "data").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    now = datetime.now(UTC)

    step("a feature repository: generated statistics and their definitions (Feast's names)")
    write_statistics(repo / "data" / "customer_stats.parquet", now, rng)
    (repo / "definitions.py").write_text(DEFINITIONS)
    print(DEFINITIONS.rstrip())
    run("features", "apply", str(repo), env=env)

    step("a point-in-time correct training set: each event with the features of its time")
    events = home / "events.parquet"
    event_times = [now - timedelta(hours=float(h)) for h in rng.uniform(2, 200, 5_000)]
    pq.write_table(
        pa.table(
            {
                "customer_id": rng.integers(1, CUSTOMERS + 1, 5_000),
                "event_timestamp": pa.array(event_times, pa.timestamp("us", tz="UTC")),
            }
        ),
        events,
    )
    train_file = home / "train.parquet"
    run("features", "training-set", "--service", "fraud_features", "--entities", str(events),
        "--out", str(train_file), env=env)  # fmt: skip
    train = pq.read_table(train_file)
    x = np.column_stack([train.column(f).to_numpy(zero_copy_only=False) for f in FEATURES])
    x = x.astype(np.float64)
    risk = 0.02 * x[:, 0] - 0.3 * x[:, 1] + 1.5 * x[:, 2] + rng.normal(0, 1, len(x))
    labels = (risk > np.median(risk)).astype(int)

    step("train a classifier on it and register it")
    model = LogisticRegression(max_iter=1000).fit(x, labels)
    joblib.dump(model, home / "fraud.joblib")
    np.save(home / "sample.npy", x[:200])
    run("register", "fraud", str(home / "fraud.joblib"), "--sample", str(home / "sample.npy"),
        "--no-compile", env=env)  # fmt: skip

    step("deploy it with feature enrichment: callers send customer ids only")
    documents = home / "fraud.yaml"
    documents.write_text(DEPLOYMENT)
    print(DEPLOYMENT.rstrip())
    run("apply", "-f", str(documents), env=env)
    run("features", "materialize", env=env)

    step("serve it and ask for 20 customers' fraud scores (customer 999 is unknown: defaults)")
    customers = [*rng.integers(1, CUSTOMERS + 1, 19).tolist(), 999]
    served = serve_and_predict(env, home, customers)

    step("the same customers' features computed offline at the same instant, and the model")
    asked_at = home / "asked.parquet"
    at_now = pa.array([now] * len(customers), pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"customer_id": customers, "event_timestamp": at_now}), asked_at)
    offline_file = home / "offline.parquet"
    run("features", "training-set", "--service", "fraud_features", "--entities", str(asked_at),
        "--out", str(offline_file), env=env)  # fmt: skip
    offline = pq.read_table(offline_file)
    defaults = {"spend_7d": 0.0, "orders_7d": 0, "chargebacks_90d": 0}
    rows = np.column_stack([
        [defaults[f] if v is None else v for v in offline.column(f).to_pylist()] for f in FEATURES
    ]).astype(np.float64)  # fmt: skip
    expected = model.predict_proba(rows)[:, 1]
    print("customer  served   offline")
    for customer, got, want in zip(customers, served, expected, strict=True):
        print(f"{customer:>8}  {got:.6f} {want:.6f}")
    if not np.allclose(served, expected, rtol=0, atol=1e-9):
        sys.exit("feature demo failed: the served predictions differ from the offline ones")
    print("served and offline predictions are equal")

    step("training-serving skew: the logged feature vectors recomputed offline")
    run("features", "skew", "fraud", env=env)
    step("done: see README.md, 'Feature store'")


def serve_and_predict(env: dict[str, str], home: Path, customers: list[int]) -> list[float]:
    args = ["--port", "0", "--grpc-port", "0", "--workers", "1", "--no-auth"]
    server, url = start_up(args, env, home / "up.log", DEMO)
    try:
        body = {"inputs": [{"name": "customer_id", "datatype": "INT64",
                            "shape": [len(customers)], "data": customers}]}  # fmt: skip
        print(f"POST {url}/v2/models/fraud/infer {json.dumps(body)}")
        answer = httpx.post(f"{url}/v2/models/fraud/infer", json=body, timeout=10)
        answer.raise_for_status()
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        probabilities = np.asarray(outputs["predict_proba"]["data"], dtype=float)
        time.sleep(1.5)  # the prediction log's next flush (its default interval is 1 s)
    finally:
        server.terminate()
        server.wait(timeout=15)
    return probabilities.reshape(len(customers), -1)[:, 1].tolist()


if __name__ == "__main__":
    main()
