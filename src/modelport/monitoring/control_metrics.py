"""The control plane's Prometheus metrics: its background jobs, experiments and drift scores.

The jobs count their runs in plain numbers (:class:`JobTotals`, kept by the job runner); the
evaluation job reports when each experiment was last evaluated; a drift job hands its latest
scores over as :class:`DriftScore` records. :class:`ControlPlaneMetrics` reads all of them at
every flush of the process's :class:`~modelport.monitoring.exposition.Exposition`. Under
``modelport up`` every worker runs the jobs (taking turns under a lock), and the sums and maxima
of multiprocess mode make one answer of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from modelport.monitoring.exposition import CounterFlush, Exposition, GaugeFlush

__all__ = ["ControlPlaneMetrics", "DriftScore", "JobTotals"]


class JobTotals(Protocol):
    """What one background job did since the process started."""

    @property
    def runs(self) -> int:
        """Runs that did the job's work (whether they succeeded or failed)."""
        ...

    @property
    def failures(self) -> int:
        """Of those, runs that failed."""
        ...

    @property
    def skipped(self) -> int:
        """Turns skipped because another process was doing the work."""
        ...

    @property
    def last_success(self) -> float | None:
        """When the latest successful run ended (seconds since the epoch); ``None``: never."""
        ...


@dataclass(frozen=True, slots=True)
class DriftScore:
    """One feature's latest drift score, as the drift job exports it.

    Attributes:
        deployment: The deployment whose traffic was scored.
        variant: The variant that answered it.
        window: The window's length in seconds (``3600``).
        feature: The input or output feature (bounded by the model's signature).
        method: The statistic (``psi``, ``jensen_shannon``).
        score: Its value on the latest window.
        threshold: The value above which the feature counts as drifted.
        drifted: The verdict.
    """

    deployment: str
    variant: str
    window: float
    feature: str
    method: str
    score: float
    threshold: float
    drifted: bool


class ControlPlaneMetrics:
    """Job runs and failures, experiments' last evaluations, drift scores.

    Args:
        exposition: The process's metrics.
    """

    def __init__(self, exposition: Exposition) -> None:
        job = ["job"]
        self._runs = CounterFlush(
            exposition.counter(
                "modelport_job_runs",
                "Runs of a background job that did its work, failed ones included",
                job,
            )
        )
        self._failures = CounterFlush(
            exposition.counter(
                "modelport_job_failures", "Runs of a background job that failed", job
            )
        )
        self._skipped = CounterFlush(
            exposition.counter(
                "modelport_job_skipped",
                "Turns of a background job skipped because another process was doing its work "
                "(the workers of modelport up take turns)",
                job,
            )
        )
        self._last_success = GaugeFlush(
            exposition.gauge(
                "modelport_job_last_success_timestamp_seconds",
                "When the latest successful run of a background job ended (Unix time)",
                job,
                mode="max",
            )
        )
        self._evaluated = GaugeFlush(
            exposition.gauge(
                "modelport_experiment_last_evaluation_timestamp_seconds",
                "When each experiment not yet ended was last evaluated (Unix time of its "
                "latest decision)",
                ["experiment", "deployment"],
                mode="max",
            )
        )
        drift = ["deployment", "variant", "window", "feature", "method"]
        self._drift_score = GaugeFlush(
            exposition.gauge(
                "modelport_drift_score",
                "A feature's drift score on the latest window (the method's statistic)",
                drift,
                mode="mostrecent",
            )
        )
        self._drift_threshold = GaugeFlush(
            exposition.gauge(
                "modelport_drift_threshold",
                "The drift score above which the feature counts as drifted",
                drift,
                mode="mostrecent",
            )
        )
        self._drifted = GaugeFlush(
            exposition.gauge(
                "modelport_drift_detected",
                "1 when the feature drifted on the latest window, else 0",
                drift,
                mode="mostrecent",
            )
        )
        self._jobs: Callable[[], Mapping[str, JobTotals]] | None = None
        self._drift_scores: tuple[DriftScore, ...] = ()
        self._evaluations: dict[tuple[str, str], float] = {}
        exposition.on_flush(self.flush)

    def follow_jobs(self, jobs: Callable[[], Mapping[str, JobTotals]]) -> None:
        """Read every job's totals, by job name, from ``jobs`` at each flush."""
        self._jobs = jobs

    def evaluated(self, experiments: Iterable[tuple[str, str, float]]) -> None:
        """Record when experiments were last evaluated (any thread: the evaluation job's).

        Args:
            experiments: ``(experiment, deployment, Unix time of its latest decision)`` of the
                experiments not yet ended.
        """
        latest = dict(self._evaluations)
        latest.update(((name, deployment), at) for name, deployment, at in experiments)
        self._evaluations = latest  # one assignment: the flush reads the old or the new

    def drift_scored(self, scores: Iterable[DriftScore]) -> None:
        """Record the drift job's latest scores (any thread: the drift job's).

        A feature scored before and not now (its version no longer answers) keeps its last
        value: the gauges say what the latest verdict was.
        """
        self._drift_scores = tuple(scores)  # one assignment: the flush reads the old or the new

    def flush(self) -> None:
        """Move the jobs' totals, the evaluation times and the drift scores into the metrics."""
        if self._jobs is not None:
            for name, totals in self._jobs().items():
                labels: tuple[str, ...] = (name,)
                self._runs.update(labels, totals.runs)
                self._failures.update(labels, totals.failures)
                self._skipped.update(labels, totals.skipped)
                if totals.last_success is not None:
                    self._last_success.update(labels, totals.last_success)
        for labels, at in self._evaluations.items():
            self._evaluated.update(labels, at)
        for score in self._drift_scores:
            if math.isfinite(score.score):
                labels = (score.deployment, score.variant, f"{score.window:g}", score.feature,
                          score.method)  # fmt: skip
                self._drift_score.update(labels, score.score)
                self._drift_threshold.update(labels, score.threshold)
                self._drifted.update(labels, 1.0 if score.drifted else 0.0)
