"""``POST /v2/feedback`` on a real ``modelport up``: feedback for requests it answered, unknown
ids refused with nothing stored, bad bodies, and who may send it (authentication on)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.experiments.feedback import FeedbackStore
from modelport.testing import FakeClock, ServerProcess
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

BODY = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [[5.1, 3.5, 1.4, 0.2]]}]}  # fmt: skip
DEPLOYMENT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {name: iris}
spec:
  variants:
    - {name: current, model: iris@1, weight: 100}
"""


def run(home: Path, *args: str) -> str:
    done = modelport(home, *args)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def key(home: Path, role: str, scope: str) -> str:
    out = run(home, "keys", "create", "--role", role, "--scope", scope, "--json")
    return str(json.loads(out)["key"])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    X, y = load_iris(return_X_y=True)
    path = home / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), path)
    run(home, "register", "iris", str(path), "--no-compile")
    (home / "iris.yaml").write_text(DEPLOYMENT)
    run(home, "apply", "-f", str(home / "iris.yaml"))
    return home


@pytest.fixture(scope="module")
def keys(home: Path) -> dict[str, str]:
    return {"iris": key(home, "predictor", "iris"), "other": key(home, "predictor", "other")}


@pytest.fixture(scope="module")
def up(home: Path, keys: dict[str, str]) -> Iterator[ServerProcess]:
    env = {
        "MODELPORT_HOME": str(home),
        "MODELPORT_PREDICTIONS__FLUSH_INTERVAL_S": "0.2",
        "MODELPORT_SECURITY__AUTH__OPEN_METRICS": "true",
    }
    with ServerProcess(["--workers", "1"], env, auth=True, command="up") as server:
        yield server


@pytest.fixture(scope="module")
def client(up: ServerProcess, keys: dict[str, str]) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {keys['iris']}"}
    with httpx.Client(base_url=up.url, headers=headers, timeout=30) as client:
        yield client


def infer(client: httpx.Client, request_id: str) -> None:
    reply = client.post("/v2/models/iris/infer", json=BODY, headers={"x-request-id": request_id})
    assert reply.status_code == 200, reply.text


def stored(home: Path) -> dict[str, str]:
    with FeedbackStore(f"sqlite:///{home / 'modelport.db'}", FakeClock()) as store:
        table = store.read("iris")
    return dict(
        zip(table.column("request_id").to_pylist(), table.column("truth").to_pylist(), strict=True)
    )


def test_feedback_for_an_answered_request_is_stored_then_replaced(
    home: Path, client: httpx.Client
) -> None:
    infer(client, "answered-1")  # not written yet: the lookup waits for the log's next flush
    began = time.monotonic()
    reply = client.post(
        "/v2/feedback", json={"deployment": "iris", "request_id": "answered-1", "label": 0}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"accepted": 1, "replaced": 0}
    assert time.monotonic() - began < 5
    again = client.post(  # as `curl -d` sends it
        "/v2/feedback",
        content=b'{"deployment": "iris", "feedback": [{"request_id": "answered-1", "label": 2}]}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert again.json() == {"accepted": 1, "replaced": 1}
    assert stored(home)["answered-1"] == "2"


def test_json_lines(home: Path, client: httpx.Client) -> None:
    for rid in ("lines-1", "lines-2"):
        infer(client, rid)
    body = (
        '{"deployment": "iris", "request_id": "lines-1", "label": 1}\n'
        '{"deployment": "iris", "request_id": "lines-2", "label": [1]}\n'
    )
    reply = client.post(
        "/v2/feedback", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert reply.json() == {"accepted": 2, "replaced": 0}, reply.text
    assert {k: v for k, v in stored(home).items() if k.startswith("lines")} == {
        "lines-1": "1",
        "lines-2": "[1]",
    }


def test_an_unknown_request_id_is_404_and_nothing_is_stored(
    home: Path, client: httpx.Client
) -> None:
    infer(client, "known-1")
    before = stored(home)
    reply = client.post(
        "/v2/feedback",
        json={
            "deployment": "iris",
            "feedback": [
                {"request_id": "known-1", "label": 1},
                {"request_id": "never-sent", "label": 0},
            ],
        },
    )
    assert reply.status_code == 404
    assert reply.json() == {
        "error": "1 request id is not in the prediction log (iris: 'never-sent'); nothing was "
        "written"
    }
    assert stored(home) == before  # known-1 was not stored either


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b'{"deployment": "iris", "request_id": "x", "label": 1.5}', {}, "feedback: label must be"),
        (b'{"deployment": "iris", "request_id": "x"}', {}, "feedback: no label or value"),
        (b"{nope", {}, "feedback: not valid JSON"),
        (b'{"request_id": "x", "label": 1}\n', {"Content-Type": "application/x-ndjson"}, "line 1: no deployment"),
        (b"request_id,label\nx,1\n", {"Content-Type": "text/csv"}, "Content-Type 'text/csv' is not accepted here"),
    ],
)  # fmt: skip
def test_bad_bodies_are_400(
    client: httpx.Client, body: bytes, headers: dict[str, str], message: str
) -> None:
    reply = client.post("/v2/feedback", content=body, headers=headers)
    assert reply.status_code == 400, reply.text
    assert message in reply.json()["error"]


def test_only_a_predictor_of_the_deployment_may_send_feedback(
    up: ServerProcess, keys: dict[str, str], client: httpx.Client
) -> None:
    infer(client, "guarded-1")
    body = {"deployment": "iris", "request_id": "guarded-1", "label": 1}
    anonymous = httpx.post(f"{up.url}/v2/feedback", json=body)
    assert anonymous.status_code == 401
    other = httpx.post(
        f"{up.url}/v2/feedback", json=body, headers={"Authorization": f"Bearer {keys['other']}"}
    )
    assert other.status_code == 403, other.text
    assert client.post("/v2/feedback", json=body).status_code == 200


def test_the_route_is_in_the_openapi_document(client: httpx.Client) -> None:
    document = client.get("/v2/openapi.json").json()
    operation = document["paths"]["/v2/feedback"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert {"FeedbackItem", "Feedback", "FeedbackReceipt"} <= set(document["components"]["schemas"])


def test_the_counters_are_in_the_metrics(up: ServerProcess, client: httpx.Client) -> None:
    infer(client, "counted-1")
    client.post("/v2/feedback", json={"deployment": "iris", "request_id": "counted-1", "label": 1})
    client.post("/v2/feedback", json={"deployment": "iris", "request_id": "counted-1", "label": 0})
    client.post("/v2/feedback", json={"deployment": "iris", "request_id": "nobody", "label": 0})
    counters = {
        line.split()[0]: float(line.split()[1])
        for line in httpx.get(f"{up.url}/metrics").text.splitlines()
        if line.startswith("modelport_feedback_")
    }
    assert counters["modelport_feedback_accepted_total"] >= 2
    assert counters["modelport_feedback_replaced_total"] >= 1
    assert counters["modelport_feedback_unknown_total"] >= 1
