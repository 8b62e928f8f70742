"""Every process's ``/metrics``, scraped from real processes and read with Prometheus's own parser.

``modelport up --workers 2``, ``modelport gateway --workers 2`` in front of a ``modelport serve``
replica, and ``modelport controlplane``: the families follow Prometheus's conventions (counters
end ``_total``, base units, bounded labels), the latency histograms have the configured SLO
thresholds among their bucket edges, and the counts are exact across worker processes: N
requests are N whichever worker answers the scrape.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.testing import ServerProcess
from tests.e2e._cli import modelport
from tests.e2e.test_controlplane import ControlPlane

pytestmark = pytest.mark.slow

ROW = [[5.1, 3.5, 1.4, 0.2]]
BODY = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": ROW}]}
BAD = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 3], "data": [[1, 2, 3]]}]}
SLO: Final = (0.003, 0.3)
"""Thresholds that are no default bucket edge."""

DEPLOYMENT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  variants:
    - {{name: current, model: iris@1, weight: 50}}
    - {{name: candidate, model: iris@2, weight: 50, role: treatment}}
  traffic: {{stickyKey: {{header: X-User-Id}}}}
{extra}"""

EXPERIMENT = """\
apiVersion: modelport.io/v1
kind: Deployment
metadata: {name: trial}
spec:
  variants:
    - {name: current, model: iris@1, weight: 100, role: control}
    - {name: candidate, model: iris@2, weight: 0, role: treatment}
---
apiVersion: modelport.io/v1
kind: Experiment
metadata: {name: trial-v2}
spec:
  deployment: trial
  control: current
  treatment: candidate
  primary: {metric: accuracy}
  evaluateEvery: 1s
  steps: [{weight: 5, minDuration: 10m}, {weight: 50, minDuration: 1h}]
"""

LABELS: Final = {
    "model",
    "version",
    "deployment",
    "variant",
    "protocol",
    "code",
    "outcome",
    "worker",
    "job",
    "experiment",
    "feature",
    "method",
}
"""Every label a family may have (histograms add ``le``)."""
NOT_BASE_UNITS: Final = re.compile(
    r"_(ms|millis|milliseconds|us|microseconds|ns|nanoseconds|minutes|hours|days|"
    r"kb|kib|mb|mib|gb|gib|percent)(_|$)"
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def run(home: Path, *args: str) -> str:
    done = modelport(home, *args)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    X, y = load_iris(return_X_y=True)
    for c in (1.0, 0.01):
        path = home / f"iris-{c}.joblib"
        joblib.dump(LogisticRegression(C=c, max_iter=500).fit(X, y), path)
        run(home, "register", "iris", str(path), "--no-compile")
    path = home / "iris.yaml"
    path.write_text(DEPLOYMENT.format(name="iris", extra=""))
    run(home, "apply", "-f", str(path))
    return home


def environment(home: Path, **more: str) -> dict[str, str]:
    return {
        "MODELPORT_HOME": str(home),
        "MODELPORT_GATEWAY__POLL_INTERVAL_S": "0.2",
        "MODELPORT_MONITORING__SLO_LATENCY_SECONDS": str(list(SLO)),
        **more,
    }


@pytest.fixture(scope="module")
def up(home: Path) -> Iterator[ServerProcess]:
    env = environment(home, MODELPORT_BATCHING__ENABLED="true")
    with ServerProcess(["--workers", "2"], env, command="up") as server:
        yield server


@pytest.fixture(scope="module")
def gateway(home: Path) -> Iterator[ServerProcess]:
    replica = ServerProcess(
        ["iris@1", "iris@2", "--workers", "1", "--no-grpc"], {"MODELPORT_HOME": str(home)}
    )
    with replica:
        path = home / "remote.yaml"
        extra = f"  replicas: {{urls: ['{replica.url}']}}\n"
        path.write_text(DEPLOYMENT.format(name="remote", extra=extra))
        run(home, "apply", "-f", str(path))
        with ServerProcess(["--workers", "2"], environment(home), command="gateway") as server:
            yield server


# -- scraping ------------------------------------------------------------------------------------


def scrape(url: str) -> tuple[str, Samples]:
    """One scrape on a new connection (so the kernel may hand it to either worker)."""
    with httpx.Client(timeout=10) as client:
        reply = client.get(f"{url}/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=")
    text = reply.text
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, found


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, have), value in found.items()
        if sample == name and set(labels.items()) <= set(have)
    )


def settles(url: str, read: Callable[[Samples], float], expected: float) -> None:
    """Wait for ``read`` to reach ``expected`` (workers flush once a second); then it stays."""
    deadline = time.monotonic() + 10
    seen = read(scrape(url)[1])
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = read(scrape(url)[1])
    assert seen == expected
    for _ in range(8):  # whichever worker answers, the same count
        assert read(scrape(url)[1]) == expected


def send(url: str, deployment: str, count: int, body: object = BODY) -> list[int]:
    """``count`` requests on many connections (spread over the workers); their statuses."""
    statuses = []
    for start in range(0, count, 5):
        with httpx.Client(timeout=10) as client:
            for n in range(start, min(start + 5, count)):
                reply = client.post(
                    f"{url}/v2/models/{deployment}/infer",
                    json=body,
                    headers={"X-User-Id": f"user-{n}"},
                )
                statuses.append(reply.status_code)
    return statuses


def check_conventions(text: str) -> None:
    """Names, types, units and label names as Prometheus wants them."""
    families = list(text_string_to_metric_families(text))
    assert families
    for line in text.splitlines():
        if line.startswith("# TYPE ") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total"), line
    for family in families:
        name = family.name
        assert name.startswith("modelport_"), name
        assert not NOT_BASE_UNITS.search(name), name
        assert not name.endswith("_created"), name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} <= LABELS, (name, sample.labels)
            check_label_values(sample)
        if "duration" in name or "time" in name:
            assert name.endswith("_seconds"), name
        if "memory" in name:
            assert name.endswith("_bytes"), name


def check_label_values(sample: Sample) -> None:
    labels = sample.labels
    if "protocol" in labels:
        assert labels["protocol"] in {"rest", "grpc"}, labels
    if "code" in labels:
        assert re.fullmatch(r"[1-5]\d\d", labels["code"]), labels
    if "worker" in labels:
        assert labels["worker"] in {"0", "1"}, labels
    if "deployment" in labels:
        assert labels["deployment"] in {"iris", "remote", "trial"}, labels
    if "variant" in labels:
        assert labels["variant"] in {"current", "candidate"}, labels


def edges(found: Samples, name: str) -> set[float]:
    return {float(dict(labels)["le"]) for sample, labels in found if sample == f"{name}_bucket"}


# -- modelport up --------------------------------------------------------------------------------


def test_up_counts_every_request_once_whichever_worker_answers(up: ServerProcess) -> None:
    _, before = scrape(up.url)
    gateway_before = total(before, "modelport_gateway_requests_total", deployment="iris")
    served_before = total(before, "modelport_inference_requests_total", model="iris")
    assert send(up.url, "iris", 120) == [200] * 120
    settles(
        up.url,
        lambda found: total(found, "modelport_gateway_requests_total", deployment="iris"),
        gateway_before + 120,
    )
    # The versions ran in the same workers: the data plane counted them once too.
    settles(
        up.url,
        lambda found: total(found, "modelport_inference_requests_total", model="iris"),
        served_before + 120,
    )
    _, found = scrape(up.url)
    by_code = total(found, "modelport_gateway_requests_total", protocol="rest", code="200")
    assert by_code >= 120
    keyed = total(found, "modelport_gateway_keyed_requests_total", deployment="iris")
    assert keyed == total(found, "modelport_gateway_requests_total", deployment="iris")
    count = total(found, "modelport_gateway_request_duration_seconds_count", deployment="iris")
    assert count == gateway_before + 120
    # Both workers serve, and measure themselves under their index, never their pid.
    for worker in ("0", "1"):
        assert total(found, "modelport_process_cpu_seconds_total", worker=worker) > 0
        assert total(found, "modelport_process_resident_memory_bytes", worker=worker) > 1e6


def test_up_families_follow_the_conventions_and_have_the_slo_edges(up: ServerProcess) -> None:
    def grpc_answered(found: Samples) -> float:
        return total(found, "modelport_gateway_requests_total", protocol="grpc", code="200")

    grpc_before = grpc_answered(scrape(up.url)[1])
    assert send(up.url, "iris", 3, BAD) == [400] * 3
    assert send(up.url, "nobody", 2) == [404] * 2  # never a label: no such deployment
    grpc = grpcclient.InferenceServerClient(up.grpc_address)
    tensor = grpcclient.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.array(ROW, dtype=np.float64))
    grpc.infer("iris", [tensor], headers={"x-user-id": "grpc-user"})

    def failed(found: Samples) -> float:
        return total(found, "modelport_gateway_requests_total", deployment="iris", code="400")

    settles(up.url, failed, 3.0)
    # The gRPC call may have gone to the other worker, which flushes its counts on its own
    # second: wait for it too, not only for the REST failures.
    settles(up.url, grpc_answered, grpc_before + 1)
    text, found = scrape(up.url)
    check_conventions(text)
    assert total(found, "modelport_inference_requests_total", outcome="invalid_input") >= 3
    assert "nobody" not in text
    for name in (
        "modelport_gateway_request_duration_seconds",
        "modelport_inference_duration_seconds",
    ):
        assert set(SLO) <= edges(found, name), name
        assert 0.1 in edges(found, name)  # the default edges stay
    for version in ("1", "2"):
        loaded = total(
            found, "modelport_model_load_duration_seconds", model="iris", version=version
        )
        assert loaded > 0
    assert total(found, "modelport_batch_rows_count", model="iris") >= 1  # batching is on
    assert ("modelport_batch_queue_rows", (("model", "iris"), ("version", "1"))) in found
    assert (
        "modelport_inference_in_flight_requests",
        (("model", "iris"), ("version", "1")),
    ) in found
    assert ("modelport_gateway_in_flight_requests", ()) in found
    assert total(found, "modelport_prediction_log_records_total") >= 1
    # The control plane's jobs run in every `up` worker; one /metrics shows them with the rest.
    assert total(found, "modelport_job_runs_total", job="evaluate-experiments") >= 1
    assert total(found, "modelport_job_failures_total") == 0


# -- modelport gateway ---------------------------------------------------------------------------


def test_gateway_counts_exactly_across_its_workers(gateway: ServerProcess) -> None:
    _, before = scrape(gateway.url)
    start = total(before, "modelport_gateway_requests_total", deployment="remote")
    assert send(gateway.url, "remote", 60) == [200] * 60
    settles(
        gateway.url,
        lambda found: total(found, "modelport_gateway_requests_total", deployment="remote"),
        start + 60,
    )
    text, found = scrape(gateway.url)
    check_conventions(text)
    per_variant = {
        variant: total(found, "modelport_gateway_requests_total", variant=variant)
        for variant in ("current", "candidate")
    }
    assert sum(per_variant.values()) == start + 60 and min(per_variant.values()) > 0
    assert set(SLO) <= edges(found, "modelport_gateway_request_duration_seconds")
    assert total(found, "modelport_process_cpu_seconds_total", worker="1") > 0
    assert "modelport_inference_requests_total" not in text  # a gateway hosts no model


# -- modelport controlplane ----------------------------------------------------------------------


def test_the_control_plane_shows_its_jobs_and_experiments(home: Path) -> None:
    path = home / "trial.yaml"
    path.write_text(EXPERIMENT)
    run(home, "apply", "-f", str(path))
    env = {
        "MODELPORT_CONTROLPLANE__EXPERIMENT_INTERVAL_S": "0.2",
        "MODELPORT_SECURITY__AUTH__OPEN_METRICS": "true",
        "MODELPORT_MONITORING__SLO_LATENCY_SECONDS": str(list(SLO)),
    }
    control = ControlPlane(home, env=env)
    try:
        deadline = time.monotonic() + 20
        found: Samples = {}
        evaluated = ("experiment", "trial-v2")
        while time.monotonic() < deadline:
            text, found = scrape(control.url)
            if any(
                name == "modelport_experiment_last_evaluation_timestamp_seconds"
                and evaluated in labels
                for name, labels in found
            ):
                break
            time.sleep(0.2)
        check_conventions(text)
        at = total(
            found, "modelport_experiment_last_evaluation_timestamp_seconds", experiment="trial-v2"
        )
        assert abs(at - time.time()) < 60
        assert total(found, "modelport_job_runs_total", job="evaluate-experiments") >= 1
        assert total(found, "modelport_job_runs_total", job="prune-predictions") >= 1
        assert total(found, "modelport_job_failures_total") == 0
        success = total(
            found, "modelport_job_last_success_timestamp_seconds", job="prune-predictions"
        )
        assert abs(success - time.time()) < 60
        assert total(found, "modelport_process_cpu_seconds_total", worker="0") > 0
        closed = httpx.get(f"{control.url}/v1/deployments", timeout=10)
        assert closed.status_code == 401  # only /metrics was opened
    finally:
        assert control.stop() == 0
