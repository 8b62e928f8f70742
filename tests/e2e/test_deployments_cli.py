"""``modelport apply -f`` and ``deployments list|show|delete`` as a user runs them."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

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
    - name: candidate
      model: iris@latest
      weight: {candidate}
      role: treatment
  traffic:
    stickyKey:
      header: X-User-Id
"""

SECOND = """\
---
apiVersion: modelport.io/v1
kind: Deployment
metadata:
  name: iris-shadowed
spec:
  variants:
    - {name: only, model: iris@2, weight: 100}
    - {name: next, model: iris@1, role: shadow, mirror: 10}
"""


def run(home: Path, *args: str, code: int = 0) -> str:
    done = modelport(home, *args)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    return done.stdout if code == 0 else done.stderr


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    X, y = load_iris(return_X_y=True)
    for c in (1.0, 0.1):
        path = home / f"iris-{c}.joblib"
        joblib.dump(LogisticRegression(C=c, max_iter=500).fit(X, y), path)
        run(home, "register", "iris", str(path), "--no-compile")
    run(home, "alias", "set", "iris", "latest", "2")
    return home


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def audit_entries(home: Path, action: str) -> list[tuple[str, str, str, dict[str, object]]]:
    with sqlite3.connect(home / "modelport.db") as conn:
        rows = conn.execute(
            "SELECT actor, target, outcome, details FROM audit_log WHERE action = ? ORDER BY seq",
            (action,),
        ).fetchall()
    return [(a, t, o, json.loads(d) if d else {}) for a, t, o, d in rows]


def test_apply_is_idempotent_and_each_change_is_audited_with_its_diff(
    home: Path, tmp_path: Path
) -> None:
    first = write(tmp_path, "iris.yaml", DEPLOYMENT.format(candidate=10) + SECOND)
    assert run(home, "apply", "-f", str(first)).splitlines() == [
        "deployment/iris created (generation 1)",
        "deployment/iris-shadowed created (generation 1)",
    ]
    assert run(home, "apply", "-f", str(first)).splitlines() == [
        "deployment/iris unchanged (generation 1)",
        "deployment/iris-shadowed unchanged (generation 1)",
    ]
    changed = write(tmp_path, "iris2.yaml", DEPLOYMENT.format(candidate=10).replace("90", "50"))
    with pytest.raises(AssertionError):  # 50 + 10 is not 100: refused, nothing written
        run(home, "apply", "-f", str(changed))
    changed.write_text(DEPLOYMENT.format(candidate=50).replace("weight: 90", "weight: 50"))
    assert run(home, "apply", "-f", str(changed)) == "deployment/iris configured (generation 2)\n"
    entries = [e for e in audit_entries(home, "deployment.apply") if e[1] == "iris"]
    assert [e[2] for e in entries] == ["started", "ok"] * 3
    assert entries[1][0] == "alice" and entries[1][3]["changed"] is True
    assert entries[3][3] == {"generation": 1, "changed": False, "changes": []}
    assert entries[5][3]["changes"] == [
        "spec.variants[0].weight: 90.0 -> 50.0",
        "spec.variants[1].weight: 10.0 -> 50.0",
    ]


def test_list_show_and_delete_with_json_output(home: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path, "d.yaml", DEPLOYMENT.format(candidate=10).replace("name: iris", "name: shown")
    )
    run(home, "apply", "-f", str(path))
    listed = json.loads(run(home, "deployments", "list", "--output", "json"))
    shown = next(d for d in listed if d["name"] == "shown")
    assert shown["generation"] == 1 and shown["createdBy"] == "alice"
    assert shown["document"]["spec"]["traffic"]["stickyKey"]["header"] == "X-User-Id"
    wide = modelport(home, "deployments", "list", env={"COLUMNS": "200"})
    assert "current iris@1 90%, candidate iris@latest 10%" in wide.stdout, wide.stdout
    text = run(home, "deployments", "show", "shown")
    assert text.startswith("# generation 1, created ") and "model: iris@latest" in text
    assert json.loads(run(home, "deployments", "show", "shown", "-o", "json"))["name"] == "shown"
    assert (
        run(home, "deployments", "delete", "shown")
        == "deployment/shown deleted (was generation 1)\n"
    )
    assert "no deployment 'shown'" in run(home, "deployments", "show", "shown", code=3)
    assert "no deployment 'shown'" in run(home, "deployments", "delete", "shown", code=3)
    outcomes = [e[2] for e in audit_entries(home, "deployment.delete") if e[1] == "shown"]
    assert outcomes == ["started", "ok", "started", "failed"]  # the second delete found nothing


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("apiVersion: v1\n", 2, "document 2 has no kind; expected kind: Deployment"),
        ("kind: Service\n", 2, "document 2: kind 'Service' is not one modelport applies here"),
        ("kind: Deployment\nspec: [\n", 2, "not valid YAML at line 13, column 1"),
        (
            DEPLOYMENT.format(candidate=5),
            2,
            "the weights of the variants must add up to 100, got 95",
        ),
        (
            DEPLOYMENT.format(candidate=10).replace("iris@1", "iris@7"),
            3,
            "spec.variants[0] (current)",
        ),
        (DEPLOYMENT.format(candidate=10).replace("iris@latest", "iris@nope"), 3, "nope"),
        (DEPLOYMENT.format(candidate=10).replace("iris@1", "ghost@1"), 3, "ghost"),
        (
            DEPLOYMENT.format(candidate=10) + "---\n" + DEPLOYMENT.format(candidate=10),
            2,
            "given more than once",
        ),
        (
            DEPLOYMENT.format(candidate=10).replace("header: X-User-Id", "colour: red"),
            2,
            "spec.traffic.stickyKey.colour: unknown field",
        ),
    ],
)
def test_bad_documents_exit_non_zero_and_change_nothing(
    home: Path, tmp_path: Path, text: str, code: int, message: str
) -> None:
    before = run(home, "deployments", "list", "-o", "json")
    path = write(tmp_path, "bad.yaml", SECOND.replace("iris-shadowed", "fresh") + "---\n" + text)
    error = run(home, "apply", "-f", str(path), code=code)
    assert error.startswith("error: ") and message in error, error
    assert len(error.strip().splitlines()) == 1
    assert run(home, "deployments", "list", "-o", "json") == before  # not even the valid one


def test_a_missing_file_and_a_bad_output_format(home: Path, tmp_path: Path) -> None:
    assert "no such file" in run(home, "apply", "-f", str(tmp_path / "none.yaml"), code=3)
    assert "expected table or json" in run(home, "deployments", "list", "-o", "xml", code=2)


def test_the_readme_deployment_applies(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```yaml\napiVersion: modelport.io/v1\n", 1)[1].split("```", 1)[0]
    home = tmp_path / "home"
    X, y = load_iris(return_X_y=True)
    path = tmp_path / "fraud.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), path)
    for _ in range(5):
        run(home, "register", "fraud", str(path), "--no-compile")
    run(home, "alias", "set", "fraud", "champion", "3")
    # apply asks each replica the example names for /v2/health/live: stand-ins answer it.
    urls = re.findall(r"https?://[^\s,\]]+", block)
    with contextlib.ExitStack() as stack:
        for url in urls:
            block = block.replace(url, stack.enter_context(_live_replica()), 1)
        deploy = write(tmp_path, "deploy.yaml", "apiVersion: modelport.io/v1\n" + block)
        assert run(home, "apply", "-f", str(deploy)) == "deployment/fraud created (generation 1)\n"
    shown = json.loads(run(home, "deployments", "show", "fraud", "-o", "json"))
    variants = shown["document"]["spec"]["variants"]
    assert [(v["name"], v["weight"], v["mirror"]) for v in variants] == [
        ("current", 90, 0),
        ("candidate", 10, 0),
        ("next", 0, 25),
    ]


@contextlib.contextmanager
def _live_replica() -> Iterator[str]:
    """A stand-in model server that answers its liveness probe; yields its base URL."""

    class Live(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/v2/health/live" else 404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Live)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_apply_refuses_replicas_that_do_not_answer(home: Path, tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    text = (
        SECOND.replace("iris-shadowed", "remote")
        + f"  replicas:\n    urls: [http://127.0.0.1:{port}]\n"
    )
    error = run(home, "apply", "-f", str(write(tmp_path, "remote.yaml", text)), code=2)
    assert error.startswith("error: replicas must answer before a deployment points at them")
    assert f"spec.replicas.urls[0] http://127.0.0.1:{port}: GET " in error
    assert "remote" not in run(home, "deployments", "list", "-o", "json")
