"""`modelport drift report`: a real `up`, traffic like the reference, then shifted traffic."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelport.testing import ServerProcess
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

DEPLOYMENT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {name: risk}
spec:
  variants: [{name: main, model: risk@1, weight: 100}]
"""


def ok(home: Path, *args: str) -> str:
    done = modelport(home, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def send(url: str, rows: np.ndarray, client: httpx.Client) -> None:
    for start in range(0, len(rows), 20):  # 20 rows a request
        chunk = rows[start : start + 20]
        body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": list(chunk.shape),
                            "data": chunk.tolist()}]}  # fmt: skip
        reply = client.post(f"{url}/v2/models/risk/infer", json=body)
        assert reply.status_code == 200, reply.text


def report(home: Path, *extra: str) -> dict[str, object]:
    return dict(
        json.loads(ok(home, "drift", "report", "risk", "--window", "1h", "-o", "json", *extra))
    )


def drifted(found: dict[str, object]) -> set[str]:
    [variant] = found["variants"]  # type: ignore[misc]
    return {f["name"] for f in variant["features"] if f["drifted"]}


def test_shifted_traffic_is_flagged_and_like_the_reference_is_not(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(5_000, 4))
    labels = (reference @ np.array([1.0, -1.0, 0.5, 0.0]) > 0).astype(int)
    joblib.dump(LogisticRegression().fit(reference, labels), tmp_path / "risk.joblib")
    np.save(tmp_path / "sample.npy", reference[:10])
    np.save(tmp_path / "reference.npy", reference)
    ok(tmp_path, "register", "risk", str(tmp_path / "risk.joblib"), "--sample",
       str(tmp_path / "sample.npy"), "--reference", str(tmp_path / "reference.npy"))  # fmt: skip
    (tmp_path / "risk.yaml").write_text(DEPLOYMENT)
    ok(tmp_path, "apply", "-f", str(tmp_path / "risk.yaml"))
    env = {"MODELPORT_HOME": str(tmp_path), "MODELPORT_PREDICTIONS__FLUSH_INTERVAL_S": "0.2"}
    with ServerProcess(["--workers", "1", "--no-auth"], env, command="up") as up:
        with httpx.Client(timeout=10) as client:
            send(up.url, rng.normal(size=(4_000, 4)), client)
            time.sleep(0.6)  # written by the log's next flush
            calm = report(tmp_path)
            assert calm["variants"][0]["requests"] == 200  # type: ignore[index]
            assert drifted(calm) == set(), calm
            shifted = rng.normal(size=(16_000, 4))
            shifted[:, 2] += 1.0  # one feature moves by a standard deviation
            send(up.url, shifted, client)
            time.sleep(0.6)
    moved = report(tmp_path, "--html", str(tmp_path / "drift.html"), "--source", "log",
                   "--limit", "50000")  # fmt: skip
    assert "input[2]" in drifted(moved) and not {"input[0]", "input[1]", "input[3]"} & drifted(
        moved
    )
    page = (tmp_path / "drift.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 5 and "<script" not in page
    wide = modelport(tmp_path, "drift", "report", "risk", env={"COLUMNS": "160"})
    assert wide.returncode == 0, wide.stderr
    assert "2 of 7 features drifted" in wide.stdout  # input[2], and the predicted class
    [line] = [row for row in wide.stdout.splitlines() if "input[2]" in row]
    assert "yes" in line and "psi" in line

    unknown = modelport(tmp_path, "drift", "report", "ghost")
    assert unknown.returncode == 3 and "no deployment 'ghost'" in unknown.stderr
    bad = modelport(tmp_path, "drift", "report", "risk", "--window", "yesterday-ish")
    assert bad.returncode == 2 and "--window" in bad.stderr


def drift_gauges(url: str, client: httpx.Client) -> dict[str, float]:
    """``modelport_drift_detected`` of each feature, from the server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get(f"{url}/metrics").text
    return {
        sample.labels["feature"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "modelport_drift_detected"
    }


def test_the_drift_job_scores_stored_windows_and_exports_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(5_000, 4))
    labels = (reference @ np.array([1.0, -1.0, 0.5, 0.0]) > 0).astype(int)
    joblib.dump(LogisticRegression().fit(reference, labels), tmp_path / "risk.joblib")
    np.save(tmp_path / "sample.npy", reference)
    ok(tmp_path, "register", "risk", str(tmp_path / "risk.joblib"), "--sample",
       str(tmp_path / "sample.npy"))  # fmt: skip
    (tmp_path / "risk.yaml").write_text(DEPLOYMENT)
    ok(tmp_path, "apply", "-f", str(tmp_path / "risk.yaml"))
    env = {
        "MODELPORT_HOME": str(tmp_path),
        "MODELPORT_PREDICTIONS__FLUSH_INTERVAL_S": "0.2",
        "MODELPORT_MONITORING__DRIFT_BUCKET_S": "1",
        "MODELPORT_MONITORING__DRIFT_WINDOW_SECONDS": "[3]",
        "MODELPORT_CONTROLPLANE__DRIFT_INTERVAL_S": "0.5",
    }

    def until(expected: float, shift: float, client: httpx.Client) -> dict[str, float]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = rng.normal(size=(400, 4))
            rows[:, 2] += shift
            send(up.url, rows, client)
            found = drift_gauges(up.url, client)
            if found.get("input[2]") == expected:
                return found
        raise AssertionError(f"input[2] never scored {expected}: {found}")

    with ServerProcess(["--workers", "2", "--no-auth"], env, command="up") as up:
        with httpx.Client(timeout=10) as client:
            calm = until(0.0, 0.0, client)
            assert not any(calm.values()), calm
            moved = until(1.0, 1.0, client)
            assert moved["input[0]"] == moved["input[1]"] == moved["input[3]"] == 0.0, moved
    stored = report(tmp_path, "--source", "windows")
    assert "input[2]" in drifted(stored)
    [variant] = stored["variants"]  # type: ignore[misc]
    assert variant["requests"] is None and variant["rows"] >= 800  # windows count rows
