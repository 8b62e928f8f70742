"""``modelport controlplane`` as a real process: the /v1/deployments API over a real socket.

One control plane (authentication on) serves the module's tests; models are registered and
aliases set with the real command line, API keys are made in the security store. Other tests
start their own process: a busy port, a bad setting, SIGTERM during a request.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.core.settings import Settings
from modelport.security.certs import make_dev_certs
from modelport.security.identity import parse_grants
from modelport.service.wiring import open_security_store
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

YAML = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata:
  name: {name}
spec:
  variants:
    - name: current
      model: iris@1
      weight: {current}
    - name: candidate
      model: iris@latest
      weight: {candidate}
      role: treatment
"""


def document(name: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"variants": [{"name": "only", "model": "iris@1", "weight": 100}], **spec},
    }


class ControlPlane:
    """A ``modelport controlplane --port 0`` child process, its output collected as it runs."""

    def __init__(self, home: Path, *args: str, env: Mapping[str, str] | None = None) -> None:
        environment = {**os.environ, "MODELPORT_HOME": str(home), **(env or {})}
        environment.pop("MODELPORT_DATABASE_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelport.cli", "controlplane", "--port", "0", *args],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.url = ""
        self._found = threading.Event()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        if not self._found.wait(30):
            self.stop()
            raise RuntimeError("the control plane did not start:\n" + "".join(self.stderr))

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout.append(line)
            if line.startswith("control plane on "):
                self.url = line.split()[-1]
                self._found.set()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def stop(self) -> int:
        """SIGTERM (SIGKILL after 15 s); return the exit status once its output is all read."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        for reader in self._readers:
            reader.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return status


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    X, y = load_iris(return_X_y=True)
    path = home / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), path)
    for args in (
        ("register", "iris", str(path), "--no-compile"),
        ("alias", "set", "iris", "latest", "1"),
    ):
        done = modelport(home, *args)
        assert done.returncode == 0, done.stderr
    return home


@pytest.fixture(scope="module")
def keys(home: Path) -> dict[str, dict[str, str]]:
    made = {}
    with open_security_store(Settings(home=home)) as store:
        for role in ("deployer", "predictor"):
            record, token = store.create_key(role, parse_grants([role]), None, "tests")
            made[role] = {"authorization": f"Bearer {token}", "key": f"key:{record.key_id}"}
    return made


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(home, env={"MODELPORT_CONTROLPLANE__REPLICA_TIMEOUT_S": "1"})
    yield plane
    assert plane.stop() == 0, "".join(plane.stderr)


@pytest.fixture(scope="module")
def client(server: ControlPlane, keys: dict[str, dict[str, str]]) -> Iterator[httpx.Client]:
    headers = {"authorization": keys["deployer"]["authorization"]}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as opened:
        yield opened


def listed(client: httpx.Client) -> list[tuple[str, int]]:
    reply = client.get("/v1/deployments")
    assert reply.status_code == 200, reply.text
    return [(d["name"], d["generation"]) for d in reply.json()["deployments"]]


@pytest.fixture()
def replica() -> Iterator[str]:
    """A stand-in model server that answers its liveness probe."""

    class Live(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/v2/health/live" else 404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    live = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Live)
    threading.Thread(target=live.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{live.server_address[1]}"
    live.shutdown()
    live.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_it_announces_itself_and_answers_probes_without_a_key(server: ControlPlane) -> None:
    assert server.stdout[0] == f"control plane on {server.url}\n"
    assert server.url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{server.url}/v1/health/live").json() == {"live": True}
    assert httpx.get(f"{server.url}/v1/health/ready").json() == {"ready": True}
    deadline = time.monotonic() + 10  # the first run is at start, in a thread of its own
    while not any("job prune-predictions" in line for line in server.stderr):
        assert time.monotonic() < deadline, "".join(server.stderr)
        time.sleep(0.05)


def test_apply_with_put_and_post_idempotently_then_read_and_delete(
    client: httpx.Client, keys: dict[str, dict[str, str]], home: Path
) -> None:
    created = client.put("/v1/deployments/iris", json=document("iris"))
    assert created.status_code == 200, created.text
    assert created.json()["applied"][0] | {"changes": []} == {
        "name": "iris", "generation": 1, "created": True, "changed": True, "changes": [],
    }  # fmt: skip
    again = client.put("/v1/deployments/iris", json=document("iris")).json()["applied"][0]
    assert (again["generation"], again["changed"], again["changes"]) == (1, False, [])

    stream = YAML.format(name="iris", current=90, candidate=10) + "---\n"
    stream += YAML.format(name="iris-b", current=50, candidate=50)
    posted = client.post(
        "/v1/deployments", content=stream, headers={"content-type": "application/yaml"}
    )
    assert posted.status_code == 200, posted.text
    first, second = posted.json()["applied"]
    assert (first["name"], first["generation"], first["changed"]) == ("iris", 2, True)
    assert "spec.variants[0].weight: 100.0 -> 90.0" in first["changes"]
    assert (second["name"], second["generation"], second["created"]) == ("iris-b", 1, True)
    assert listed(client) == [("iris", 2), ("iris-b", 1)]

    shown = client.get("/v1/deployments/iris").json()
    assert shown["updatedBy"] == keys["deployer"]["key"] and shown["generation"] == 2
    assert [v["model"] for v in shown["document"]["spec"]["variants"]] == ["iris@1", "iris@latest"]
    removed = client.delete("/v1/deployments/iris-b", headers={"x-request-id": "e2e-delete"})
    assert removed.status_code == 200 and removed.json()["name"] == "iris-b"
    assert client.get("/v1/deployments/iris-b").status_code == 404
    assert listed(client) == [("iris", 2)]

    # The audit trail, as `modelport audit list` shows it: the key's subject and the diff.
    done = modelport(home, "audit", "list", "--action", "deployment.*", "--json")
    assert done.returncode == 0, done.stderr
    entries = [e for e in json.loads(done.stdout) if e["target"] in ("iris", "iris-b")]
    assert {e["actor"] for e in entries} == {keys["deployer"]["key"]}
    ok = [e for e in entries if e["outcome"] == "ok"]
    assert [(e["action"], e["target"], e["details"].get("generation")) for e in ok] == [
        ("deployment.apply", "iris", 1),
        ("deployment.apply", "iris", 1),
        ("deployment.apply", "iris", 2),
        ("deployment.apply", "iris-b", 1),
        ("deployment.delete", "iris-b", 1),
    ]
    assert ok[1]["details"]["changed"] is False
    assert "spec.variants[1].weight: (absent) -> 10.0" in ok[2]["details"]["changes"]
    assert ok[4]["request_id"] == "e2e-delete"


@pytest.mark.parametrize(
    ("body", "media", "status", "message"),
    [
        ("kind: Deployment\nspec: [\n", "application/yaml", 400, "not valid YAML at line 3"),
        (
            YAML.format(name="bad", current=90, candidate=10).replace("role:", "colour:"),
            "text/yaml",
            400,
            "spec.variants[1].colour: unknown field",
        ),
        (
            YAML.format(name="bad", current=90, candidate=5),
            "application/yaml",
            400,
            "the weights of the variants must add up to 100, got 95",
        ),
        (
            json.dumps(
                document("bad")
                | {"spec": {"variants": [{"name": "a", "model": "ghost@1", "weight": 100}]}}
            ),
            "application/json",
            404,
            "unknown model 'ghost'",
        ),
        (
            json.dumps(document("other")),
            "application/json",
            400,
            "does not match the name in the path",
        ),
        (
            json.dumps(document("bad", replicas={"urls": [f"http://127.0.0.1:{closed_port()}"]})),
            "application/json",
            400,
            "/v2/health/live: cannot connect",
        ),
    ],
)
def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    client: httpx.Client, body: str, media: str, status: int, message: str
) -> None:
    before = listed(client)
    reply = client.put("/v1/deployments/bad", content=body, headers={"content-type": media})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert message in error, error
    if "replicas" in body:
        assert "nothing was applied" in error
    assert listed(client) == before


def test_a_replica_that_answers_is_accepted(client: httpx.Client, replica: str) -> None:
    reply = client.put(
        "/v1/deployments/remote", json=document("remote", replicas={"urls": [replica]})
    )
    assert reply.status_code == 200, reply.text
    assert client.delete("/v1/deployments/remote").status_code == 200


def test_401_without_a_key_and_403_for_a_predictor(
    server: ControlPlane, keys: dict[str, dict[str, str]]
) -> None:
    anonymous = httpx.put(f"{server.url}/v1/deployments/iris", json=document("iris"))
    assert anonymous.status_code == 401 and "error" in anonymous.json()
    assert httpx.get(f"{server.url}/v1/deployments").status_code == 401
    predictor = {"authorization": keys["predictor"]["authorization"]}
    refused = httpx.put(
        f"{server.url}/v1/deployments/iris", json=document("iris"), headers=predictor
    )
    assert refused.status_code == 403 and "needs deployer" in refused.json()["error"]
    posted = httpx.post(f"{server.url}/v1/deployments", json=[document("x")], headers=predictor)
    assert posted.status_code == 403
    assert httpx.delete(f"{server.url}/v1/deployments/iris", headers=predictor).status_code == 403


def test_a_busy_port_is_refused_naming_it(server: ControlPlane, home: Path) -> None:
    port = server.url.rsplit(":", 1)[1]
    done = modelport(home, "controlplane", "--port", port)
    assert done.returncode == 2, done
    assert (
        done.stderr.strip().splitlines()[-1] == f"error: port {port} on 127.0.0.1 is already in use"
    )
    assert "control plane on" not in done.stdout


def test_a_bad_setting_is_refused_naming_it(home: Path) -> None:
    done = modelport(home, "controlplane", env={"MODELPORT_CONTROLPLANE__PORT": "notaport"})
    assert done.returncode == 2, done
    assert done.stderr.startswith("error: invalid setting: MODELPORT_CONTROLPLANE__PORT"), (
        done.stderr
    )
    assert "notaport" in done.stderr and "Traceback" not in done.stderr
    no_auth = modelport(home, "controlplane", "--no-auth", "--host", "0.0.0.0", "--port", "0")
    assert no_auth.returncode == 2 and "authentication is off" in no_auth.stderr


def test_sigterm_lets_a_request_in_flight_finish_then_stops(home: Path) -> None:
    env = {"MODELPORT_CONTROLPLANE__REPLICA_TIMEOUT_S": "1"}
    plane = ControlPlane(home, "--no-auth", "--log-format", "json", env=env)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never answers: the apply waits for the probe's timeout
    answer: list[httpx.Response] = []
    slow = document("slow", replicas={"urls": [f"http://127.0.0.1:{silent.getsockname()[1]}"]})

    def apply() -> None:
        answer.append(httpx.put(f"{plane.url}/v1/deployments/slow", json=slow, timeout=10))

    try:
        caller = threading.Thread(target=apply)
        caller.start()
        time.sleep(0.3)  # the request is in flight
        status = plane.stop()
        caller.join(10)
    finally:
        silent.close()
    assert status == 0, "".join(plane.stderr)
    assert answer and answer[0].status_code == 400
    assert "no answer within 1 s" in answer[0].json()["error"]
    events = [json.loads(line).get("event") for line in plane.stderr if line.startswith("{")]
    assert events.index("started") < events.index("stopping") < events.index("stopped")
    assert events[-1] == "stopped"


def test_https_with_a_client_certificate(home: Path, tmp_path: Path) -> None:
    made = make_dev_certs(tmp_path / "certs")
    identities = json.dumps({made.client_subject: ["deployer"]})
    args = ["--tls-cert", str(made.server), "--tls-key", str(made.server_key)]
    args += ["--tls-ca", str(made.ca)]
    plane = ControlPlane(home, *args, env={"MODELPORT_SECURITY__AUTH__MTLS_IDENTITIES": identities})
    try:
        assert plane.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(made.ca))
        context.load_cert_chain(made.client, made.client_key)
        with httpx.Client(base_url=plane.url, verify=context) as client:
            reply = client.put("/v1/deployments/tls", json=document("tls"))
            assert reply.status_code == 200, reply.text
            assert client.delete("/v1/deployments/tls").status_code == 200
        without = ssl.create_default_context(cafile=str(made.ca))
        with pytest.raises(httpx.TransportError):  # mutual TLS: no certificate, no connection
            httpx.get(f"{plane.url}/v1/health/live", verify=without)
    finally:
        assert plane.stop() == 0, "".join(plane.stderr)
