"""The control plane's families: job runs and failures, experiments' evaluations, drift scores."""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from modelport.monitoring import ControlPlaneMetrics, DriftScore, Exposition

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Totals:
    runs: int = 0
    failures: int = 0
    skipped: int = 0
    last_success: float | None = None


def render(exposition: Exposition) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition.render()[0].decode())
        for s in family.samples
    }


def test_jobs_runs_failures_skipped_turns_and_last_success() -> None:
    exposition = Exposition(multiprocess=False)
    metrics = ControlPlaneMetrics(exposition)
    jobs = {
        "evaluate": Totals(runs=3, failures=1, skipped=2, last_success=1.7e9),
        "prune": Totals(),
    }
    metrics.follow_jobs(lambda: jobs)
    found = render(exposition)
    job = (("job", "evaluate"),)
    assert found[("modelport_job_runs_total", job)] == 3
    assert found[("modelport_job_failures_total", job)] == 1
    assert found[("modelport_job_skipped_total", job)] == 2
    assert found[("modelport_job_last_success_timestamp_seconds", job)] == 1.7e9
    assert ("modelport_job_last_success_timestamp_seconds", (("job", "prune"),)) not in found
    jobs["evaluate"] = Totals(runs=4, failures=1, skipped=2, last_success=1.8e9)
    found = render(exposition)
    assert found[("modelport_job_runs_total", job)] == 4
    assert found[("modelport_job_last_success_timestamp_seconds", job)] == 1.8e9


def test_the_last_evaluation_of_each_experiment() -> None:
    exposition = Exposition(multiprocess=False)
    metrics = ControlPlaneMetrics(exposition)
    metrics.evaluated([("fraud-v4", "fraud", 100.0), ("churn-v2", "churn", 50.0)])
    metrics.evaluated([("fraud-v4", "fraud", 160.0)])  # an ended one keeps its last time
    found = render(exposition)
    name = "modelport_experiment_last_evaluation_timestamp_seconds"
    assert found[(name, (("deployment", "fraud"), ("experiment", "fraud-v4")))] == 160
    assert found[(name, (("deployment", "churn"), ("experiment", "churn-v2")))] == 50


def test_drift_scores_are_the_drift_jobs_latest_and_stay_empty_without_one() -> None:
    plain = Exposition(multiprocess=False)
    ControlPlaneMetrics(plain)
    assert not [key for key in render(plain) if key[0].startswith("modelport_drift")]
    exposition = Exposition(multiprocess=False)
    metrics = ControlPlaneMetrics(exposition)
    metrics.drift_scored([
        DriftScore("fraud", "current", 3600.0, "amount", "psi", 0.31, 0.2, True),
        DriftScore("fraud", "current", 3600.0, "country", "jensen_shannon", 0.01, 0.1, False),
        DriftScore("fraud", "current", 3600.0, "empty", "none", math.nan, 0.1, False),
    ])  # fmt: skip
    found = render(exposition)
    common = (("deployment", "fraud"), ("variant", "current"), ("window", "3600"))
    amount = (*common, ("feature", "amount"), ("method", "psi"))
    country = (*common, ("feature", "country"), ("method", "jensen_shannon"))
    assert found[("modelport_drift_score", tuple(sorted(amount)))] == 0.31
    assert found[("modelport_drift_threshold", tuple(sorted(amount)))] == 0.2
    assert found[("modelport_drift_detected", tuple(sorted(amount)))] == 1
    assert found[("modelport_drift_detected", tuple(sorted(country)))] == 0
    assert not [key for key in found if ("feature", "empty") in key[1]]  # no score: no sample
