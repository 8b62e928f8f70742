"""Alert rules as a user runs them: ``apply -f``, ``alertrules list|show|delete``, the API and
``modelport monitor export``, all as real processes.

The export's PromQL is parsed with ``promql-parser``, and every metric name it (and the Grafana
dashboard) uses is found in a scrape of a running ``modelport up`` that served a request.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.testing import ServerProcess
from tests.e2e._cli import modelport
from tests.e2e.test_controlplane import ControlPlane

pytestmark = pytest.mark.slow

FILE = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {name: iris}
spec:
  variants:
    - {name: current, model: iris@1, weight: 100}
---
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {name: iris-latency}
spec:
  deployment: iris
  severity: critical
  for: 2m
  condition:
    latencySlo: {threshold: 0.25, objective: 0.99}
  labels: {team: risk}
  annotations: {summary: iris answers slowly}
---
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {name: iris-errors}
spec:
  deployment: iris
  condition:
    errorRate: {above: 0.05, window: 10m}
"""

MORE = """\
---
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {name: iris-drift}
spec:
  deployment: iris
  condition: {driftScore: {above: 0.2}}
---
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {name: iris-down}
spec:
  deployment: iris
  condition: {modelNotReady: {}}
---
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {name: iris-queue}
spec:
  deployment: iris
  condition: {queueSaturation: {above: 0.5}}
---
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {name: iris-traffic}
spec:
  deployment: iris
  condition: {trafficAnomaly: {signal: latency_p99, halfLife: 30m}}
"""

BAD = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {name: untouched}
spec:
  variants:
    - {name: current, model: iris@1, weight: 100}
---
apiVersion: modelport.io/v1
kind: AlertRule
metadata: {name: bad-rule}
spec:
  deployment: untouched
  severity: critical
  for: 2m
  condition:
    errorRate: {above: 0.05}
  labels: {team: risk}
  receivers:
    - url: https://alerts.example.com/hook
"""

BODY = {
    "inputs": [
        {"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [[5.1, 3.5, 1.4, 0.2]]}
    ]
}


def run(home: Path, *args: str, code: int = 0, **env: str) -> str:
    done = modelport(home, *args, env=env or None)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    return done.stdout if code == 0 else done.stderr


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    X, y = load_iris(return_X_y=True)
    path = home / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), path)
    run(home, "register", "iris", str(path), "--no-compile")
    return home


def audit(home: Path, action: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    with sqlite3.connect(home / "modelport.db") as conn:
        rows = conn.execute(
            "SELECT actor, target, outcome, details FROM audit_log WHERE action = ? ORDER BY seq",
            (action,),
        ).fetchall()
    return [(a, t, o, json.loads(d) if d else {}) for a, t, o, d in rows]


def test_apply_a_deployment_with_its_rules_then_list_show_and_delete(
    home: Path, tmp_path: Path
) -> None:
    path = write(tmp_path, "iris.yaml", FILE)
    assert run(home, "apply", "-f", str(path)).splitlines() == [
        "deployment/iris created (generation 1)",
        "alertrule/iris-latency created (generation 1)",
        "alertrule/iris-errors created (generation 1)",
    ]
    assert run(home, "apply", "-f", str(path)).splitlines()[1:] == [
        "alertrule/iris-latency unchanged (generation 1)",
        "alertrule/iris-errors unchanged (generation 1)",
    ]
    path.write_text(FILE.replace("above: 0.05", "above: 0.1"))
    applied = json.loads(run(home, "apply", "-f", str(path), "-o", "json"))
    assert [(a.get("kind"), a["name"], a["changed"], a["generation"]) for a in applied] == [
        (None, "iris", False, 1),
        ("AlertRule", "iris-latency", False, 1),
        ("AlertRule", "iris-errors", True, 2),
    ]
    entries = [e for e in audit(home, "alertrule.apply") if e[1] == "iris-errors"]
    assert [e[2] for e in entries] == ["started", "ok"] * 3 and entries[-1][0] == "alice"
    assert entries[-1][3]["changes"] == ["spec.condition.errorRate.above: 0.05 -> 0.1"]

    wide = modelport(home, "alertrules", "list", env={"COLUMNS": "250"}).stdout
    assert "iris-latency" in wide and "latencySlo" in wide and "critical" in wide, wide
    listed = json.loads(run(home, "alertrules", "list", "-o", "json"))["alertRules"]
    assert [(r["name"], r["deployment"]) for r in listed] == [
        ("iris-errors", "iris"),
        ("iris-latency", "iris"),
    ]
    as_yaml = yaml.safe_load(run(home, "alertrules", "list", "-d", "iris", "-o", "yaml"))
    assert as_yaml == {"alertRules": listed}
    assert json.loads(run(home, "alertrules", "list", "-d", "other", "-o", "json")) == {
        "alertRules": []
    }
    text = run(home, "alertrules", "show", "iris-latency")
    assert text.startswith("# generation 1, created ") and "objective: 0.99" in text
    shown = json.loads(run(home, "alertrules", "show", "iris-latency", "-o", "json"))
    assert shown["document"]["spec"]["labels"] == {"team": "risk"}
    assert shown["document"]["spec"]["for"] == 120.0

    assert run(home, "alertrules", "delete", "iris-errors") == (
        "alertrule/iris-errors deleted (was generation 2)\n"
    )
    assert "no alert rule 'iris-errors'" in run(home, "alertrules", "show", "iris-errors", code=3)
    assert "no alert rule 'iris-errors'" in run(home, "alertrules", "delete", "iris-errors", code=3)
    assert [e[2] for e in audit(home, "alertrule.delete")] == ["started", "ok", "started", "failed"]
    assert "expected table, json or yaml" in run(home, "alertrules", "list", "-o", "xml", code=2)


def test_the_readme_alert_rule_applies(home: Path, tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### `modelport alertrules list | show | delete`")[1]
    example = section.split("```yaml\n")[1].split("```")[0]
    assert "deployment: fraud " in example
    path = write(
        tmp_path, "fraud-alerts.yaml", example.replace("deployment: fraud ", "deployment: iris ")
    )
    run(home, "apply", "-f", str(write(tmp_path, "iris.yaml", FILE.split("---\n")[0])))
    assert run(home, "apply", "-f", str(path)) == "alertrule/fraud-latency created (generation 1)\n"
    shown = json.loads(run(home, "alertrules", "show", "fraud-latency", "-o", "json"))
    spec = shown["document"]["spec"]
    assert [r["format"] for r in spec["receivers"]] == ["alertmanager", "slack"]
    assert spec["condition"]["latencySlo"]["windows"][1] == {
        "long": 21600.0,
        "short": 1800.0,
        "burnRate": 6.0,
    }
    run(home, "monitor", "export", "--out", str(tmp_path))
    run(home, "alertrules", "delete", "fraud-latency")


@pytest.mark.parametrize(
    ("replace", "code", "message"),
    [
        (("above: 0.05", "above: 2"), 2, "spec.condition.errorRate.above"),
        (("severity: critical", "severity: loud"), 2, "spec.severity"),
        (("for: 2m", "for: soon"), 2, "spec.for"),
        (("errorRate: {above: 0.05}", "{}"), 2, "spec.condition"),
        (("team: risk", "severity: x"), 2, "spec.labels"),
        (("url: https://alerts.example.com/hook", "url: ftp://x"), 2, "spec.receivers[0].url"),
        (("deployment: untouched\n", "deployment: ghost\n"), 3, "no deployment 'ghost'"),
    ],
)
def test_a_bad_rule_fails_the_whole_file_naming_the_field(
    home: Path, tmp_path: Path, replace: tuple[str, str], code: int, message: str
) -> None:
    assert replace[0] in BAD
    bad = write(tmp_path, "bad.yaml", BAD.replace(*replace))
    error = run(home, "apply", "-f", str(bad), code=code)
    assert error.startswith("error: ") and message in error, error
    assert "untouched" not in run(home, "deployments", "list", "-o", "json")  # nothing written


def test_monitor_export_writes_a_prometheus_rule_and_a_dashboard(
    home: Path, tmp_path: Path
) -> None:
    run(home, "apply", "-f", str(write(tmp_path, "all.yaml", FILE + MORE)))
    out = tmp_path / "out"
    said = run(home, "monitor", "export", "--out", str(out))
    assert said.splitlines() == [
        f"wrote {out / 'prometheusrule.yaml'}: 6 alerting rules in 1 groups",
        f"wrote {out / 'grafana-dashboard.json'}: 9 panels",
    ]
    rules = yaml.safe_load((out / "prometheusrule.yaml").read_text())
    assert rules["kind"] == "PrometheusRule"
    (group,) = rules["spec"]["groups"]
    assert group["name"] == "modelport-iris"
    for entry in group["rules"]:
        promql_parser.parse(entry["expr"])
        assert entry["labels"]["deployment"] == "iris"
    latency = next(r for r in group["rules"] if r["alert"] == "iris-latency")
    assert 'le="0.25"' in latency["expr"] and latency["for"] == "2m"
    assert latency["annotations"] == {"summary": "iris answers slowly"}
    queue = next(r for r in group["rules"] if r["alert"] == "iris-queue")["expr"]
    assert queue == 'modelport_batch_queue_rows{model=~"iris"} / 4096 > 0.5'
    dashboard = json.loads((out / "grafana-dashboard.json").read_text())
    assert dashboard["schemaVersion"] == 39 and len(dashboard["panels"]) == 9

    one = tmp_path / "one"
    run(
        home,
        "monitor",
        "export",
        "-d",
        "iris",
        "--out",
        str(one),
        MODELPORT_BATCHING__MAX_QUEUE_ROWS="100",
    )
    assert "/ 100 > 0.5" in (one / "prometheusrule.yaml").read_text()
    assert json.loads((one / "grafana-dashboard.json").read_text())["uid"] == "modelport-iris"
    assert "no deployment 'nothing'" in run(home, "monitor", "export", "-d", "nothing", code=3)


def test_a_threshold_that_is_no_bucket_edge_is_refused_until_it_is_one(
    home: Path, tmp_path: Path
) -> None:
    slow = FILE.split("---\n")[0] + "---\n" + FILE.split("---\n")[1].replace("0.25", "0.3")
    run(home, "apply", "-f", str(write(tmp_path, "slow.yaml", slow)))
    error = run(home, "monitor", "export", "--out", str(tmp_path), code=2)
    assert "spec.condition.latencySlo.threshold: 0.3 s" in error
    assert "monitoring.slo_latency_seconds" in error
    assert not (tmp_path / "prometheusrule.yaml").exists()
    run(home, "monitor", "export", "--out", str(tmp_path),
        MODELPORT_MONITORING__SLO_LATENCY_SECONDS="[0.1, 0.3]")  # fmt: skip
    assert 'le="0.3"' in (tmp_path / "prometheusrule.yaml").read_text()
    run(home, "apply", "-f", str(write(tmp_path, "iris.yaml", FILE)))


# -- against running servers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def up(home: Path) -> Iterator[ServerProcess]:
    env = {
        "MODELPORT_HOME": str(home),
        "MODELPORT_GATEWAY__POLL_INTERVAL_S": "0.2",
        "MODELPORT_BATCHING__ENABLED": "true",
    }
    with ServerProcess(["--workers", "1"], env, command="up") as server:
        yield server


def scraped_names(url: str) -> set[str]:
    """Every series name ``/metrics`` shows, and those its families would show once counted."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {s.name for s in family.samples}
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
        else:
            names.add(family.name)
    return names


def used_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
        return True

    text = expr.replace("$__rate_interval", "5m").replace("$deployment", ".*")
    promql_parser.walk(promql_parser.parse(text), visit)
    return names


def test_the_export_reads_only_metrics_that_modelport_up_exposes(
    home: Path, tmp_path: Path, up: ServerProcess
) -> None:
    run(home, "apply", "-f", str(write(tmp_path, "all.yaml", FILE + MORE)))
    deadline = time.monotonic() + 15  # the gateway picks a new deployment up within 0.2 s
    reply = httpx.post(f"{up.url}/v2/models/iris/infer", json=BODY, timeout=30)
    while reply.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        reply = httpx.post(f"{up.url}/v2/models/iris/infer", json=BODY, timeout=30)
    assert reply.status_code == 200, reply.text
    run(home, "monitor", "export", "--out", str(tmp_path))
    rules = yaml.safe_load((tmp_path / "prometheusrule.yaml").read_text())
    dashboard = json.loads((tmp_path / "grafana-dashboard.json").read_text())
    used = {n for g in rules["spec"]["groups"] for r in g["rules"] for n in used_names(r["expr"])}
    used |= {n for p in dashboard["panels"] for t in p["targets"] for n in used_names(t["expr"])}
    assert len(used) >= 12
    scraped = scraped_names(up.url)
    assert used - scraped == set(), sorted(scraped)
    served = httpx.get(f"{up.url}/metrics", timeout=10).text
    assert 'modelport_gateway_request_duration_seconds_bucket{deployment="iris"' in served
    assert 'le="0.25"' in served


def test_alert_rules_over_http_under_up_malformed_bodies_are_400(
    home: Path, up: ServerProcess
) -> None:
    base = f"{up.url}/v1/alertrules"
    yaml_type = {"content-type": "application/yaml"}
    for body, message in (
        ("{not: [valid", "not valid YAML"),
        ("- 1\n- 2\n", "is a list"),
        ("kind: AlertRule\n", "apiVersion"),
    ):
        reply = httpx.put(f"{base}/x", content=body, headers=yaml_type, timeout=10)
        assert reply.status_code == 400, (body, reply.text)
        assert message in reply.json()["error"], (body, reply.json())
    document = yaml.safe_load(FILE.split("---\n")[2])
    mismatch = httpx.put(f"{base}/x", json=document, timeout=10)
    assert mismatch.status_code == 400 and "does not match" in mismatch.json()["error"]
    put = httpx.put(f"{base}/iris-errors", json=document, timeout=10)
    assert put.status_code == 200, put.text
    listed = httpx.get(base, params={"deployment": "iris"}, timeout=10).json()["alertRules"]
    assert "iris-errors" in [r["name"] for r in listed]
    assert httpx.get(f"{base}/nothing", timeout=10).status_code == 404


def test_the_control_plane_serves_alert_rules(home: Path) -> None:
    server = ControlPlane(home, "--no-auth")
    try:
        document = yaml.safe_load(FILE.split("---\n")[1])
        put = httpx.put(f"{server.url}/v1/alertrules/iris-latency", json=document, timeout=10)
        assert put.status_code == 200, put.text
        ghost = {**document, "spec": {**document["spec"], "deployment": "ghost"}}
        refused = httpx.post(f"{server.url}/v1/alertrules", json=ghost, timeout=10)
        assert refused.status_code == 404 and "no deployment 'ghost'" in refused.json()["error"]
        shown = httpx.get(f"{server.url}/v1/alertrules/iris-latency", timeout=10).json()
        assert shown["deployment"] == "iris" and shown["document"]["spec"]["severity"] == "critical"
        openapi = httpx.get(f"{server.url}/v1/openapi.json", timeout=10).json()
        assert "/v1/alertrules/{name}" in openapi["paths"]
    finally:
        assert server.stop() == 0
