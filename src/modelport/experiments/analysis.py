"""An experiment's evaluation: per-variant metrics, sequential tests and the decision (pure).

:func:`summarize` turns one variant's logged requests and labelled rows into its metrics, each
an :class:`Estimate` with a confidence interval at ``1 - alpha``:

- request count, error rate (failures on the server's side) and, for classification, accuracy,
  precision and recall per class: Wilson score intervals (Wilson, JASA 22, 1927);
- mean latency, CPU time per request and MAE: Student t intervals;
- RMSE: the square roots of the t interval of the mean squared error;
- latency p50, p95 and p99: distribution-free intervals between two order statistics chosen by
  the binomial distribution (Hahn and Meeker, *Statistical Intervals*, 1991, section 5.2);
- F1 per class and macro F1: percentile bootstrap, resampling the confusion matrix
  multinomially (the same as resampling rows; seeded, 1,000 resamples).

:func:`decide` compares the treatment with the control with the normal-mixture sequential
probability ratio test (:func:`modelport.stats.msprt`; Johari, Pekelis and Walsh, "Always valid
inference", 2017) on the difference of means of per-observation values (an error indicator, a
latency, a correct-prediction indicator, an absolute or squared error), with standard error
``sqrt(var_t / n_t + var_c / n_c)``. The mixture's spread tau is the primary metric's
``minimumEffect`` or a tenth of the pooled standard deviation. Because the test is
always valid, evaluating every minute does not inflate the error rates:

- **guardrails**: the treatment is *worse than allowed* when its difference in the harmful
  direction, minus the tolerance, is significant at ``alpha / k`` (Bonferroni over the ``k``
  guardrails) and positive. A latency quantile ``q`` is tested through the share of treatment
  requests slower than the control's quantile plus the tolerance: without degradation that
  share is at most ``1 - q``, with variance ``q (1 - q) (1/n_t + 1/n_c)`` (the second term is
  the noise of the control's estimated quantile);
- **primary**: significant at ``alpha``, better or worse.

The order of a decision: a sample-ratio mismatch blocks everything; then a guardrail alarm or a
significantly worse primary metric rolls back; then the maximum duration ends the experiment
inconclusive; then a canary's step advances (or, after the last step, promotes) once it has
lasted its minimum duration, each arm answered the step's minimum of requests and every metric
had ``minSamples`` observations per arm; an A/B test (no steps) promotes when the primary metric
is significantly better. Fewer than ``minSamples`` observations of a metric in an arm: that
metric decides nothing ("not enough data").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Literal, Protocol

import numpy as np

from modelport.core.experiment import GUARDRAIL_ONLY, METRICS, ExperimentSpec, Guardrail

__all__ = [
    "Action",
    "ArmData",
    "ArmSummary",
    "Comparison",
    "Decision",
    "Estimate",
    "ShadowData",
    "ShadowSummary",
    "Situation",
    "as_mapping",
    "compare",
    "decide",
    "srm_p_value",
    "summarize",
    "summarize_shadow",
]

Action = Literal[
    "continue", "not_enough_data", "advance", "promote", "rollback", "inconclusive", "blocked"
]

_QUANTILES: Final = {"latency_p50": 0.50, "latency_p95": 0.95, "latency_p99": 0.99}
_BOOTSTRAP: Final = 1000
_MAX_CLASSES: Final = 50
_MIN_TAIL: Final = 10
"""Expected slow requests a quantile guardrail needs in the treatment before it is tested."""


class ArmData(Protocol):
    """One variant's observations in the experiment's window (``monitoring.log_query`` rows)."""

    @property
    def latency_ms(self) -> np.ndarray:
        """Latency of every logged request, failed ones included."""
        ...

    @property
    def failed(self) -> np.ndarray:
        """Whether each request failed on the server's side."""
        ...

    @property
    def cpu_ms(self) -> np.ndarray:
        """Model CPU time of each request; NaN where not measured."""
        ...

    @property
    def predicted(self) -> np.ndarray:
        """The prediction of each labelled row (label text, or a number for regression)."""
        ...

    @property
    def truth(self) -> np.ndarray:
        """The feedback of each labelled row."""
        ...


class ShadowData(Protocol):
    """A shadow's answers paired with the caller's (``monitoring.log_query.ShadowRows``)."""

    @property
    def pairs(self) -> int:
        """Requests answered by both."""
        ...

    @property
    def failures(self) -> int:
        """Shadow copies that failed."""
        ...

    @property
    def agree(self) -> np.ndarray:
        """Per paired row: the shadow's label equals the answer's."""
        ...

    @property
    def score_diff(self) -> np.ndarray:
        """Per paired row: shadow score minus answer score."""
        ...

    @property
    def latency_diff_ms(self) -> np.ndarray:
        """Per paired request: shadow latency minus the answer's."""
        ...


@dataclass(frozen=True, slots=True)
class Estimate:
    """A metric's value with its confidence interval; ``value`` ``None`` without observations."""

    value: float | None
    ci: tuple[float, float] | None
    n: int


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """One variant's metrics."""

    variant: str
    requests: int
    labelled: int
    metrics: dict[str, Estimate]
    """By metric name (:data:`~modelport.core.experiment.METRICS` and ``f1_macro``);
    per-class ones are named ``precision[CLASS]``, ``recall[CLASS]``, ``f1[CLASS]``."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """One sequential test of the treatment against the control."""

    role: Literal["primary", "guardrail"]
    metric: str
    control: float | None
    treatment: float | None
    n_control: int
    n_treatment: int
    difference: float | None
    """Treatment minus control (for a quantile guardrail: the treatment's share of requests
    slower than ``threshold`` minus the share allowed)."""
    tolerance: float
    alpha: float
    p_value: float | None
    """Always-valid p-value; ``None`` when there was not enough data to test."""
    ci: tuple[float, float] | None
    """Always-valid confidence sequence of ``difference`` at ``1 - alpha``."""
    threshold: float | None = None
    """A quantile guardrail's latency limit (ms)."""
    verdict: Literal["not_enough_data", "no_difference", "better", "worse", "alarm", "ok"] = (
        "not_enough_data"
    )


@dataclass(frozen=True, slots=True)
class Situation:
    """Where the experiment stands when it is evaluated.

    Attributes:
        now: The evaluation's time.
        started_at: When the experiment started.
        step: The canary step it is at (0 for an A/B test).
        step_started_at: When that step started.
        step_counts: Requests each arm answered since the step started, control first.
        srm_p_value: The sample-ratio test's p-value over the step's traffic; ``None`` when
            there was too little traffic to test it.
        srm_flagged: A mismatch was found and not acknowledged yet.
    """

    now: datetime
    started_at: datetime
    step: int
    step_started_at: datetime
    step_counts: tuple[int, int]
    srm_p_value: float | None
    srm_flagged: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """What an evaluation concluded, why, and everything it was taken from."""

    action: Action
    reason: str
    comparisons: tuple[Comparison, ...] = ()
    arms: tuple[ArmSummary, ...] = ()
    inputs: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The decision's inputs as JSON-ready data (what is stored and shown)."""
        return {
            **self.inputs,
            "comparisons": [asdict(c) for c in self.comparisons],
            "arms": [_arm_record(a) for a in self.arms],
        }


# -- per-variant metrics ----------------------------------------------------------------------


def summarize(
    variant: str, data: ArmData, task: str, alpha: float, classes: Sequence[str] = ()
) -> ArmSummary:
    """One variant's metrics with intervals at ``1 - alpha``.

    Args:
        variant: The variant's name.
        data: Its observations.
        task: ``classification`` or ``regression``.
        alpha: One minus the intervals' confidence level.
        classes: The classes to report per class (classification); default: those seen.
    """
    latency = np.asarray(data.latency_ms, dtype=float)
    failed = np.asarray(data.failed, dtype=bool)
    cpu = np.asarray(data.cpu_ms, dtype=float)
    cpu = cpu[~np.isnan(cpu)]
    metrics: dict[str, Estimate] = {
        "error_rate": _proportion(int(failed.sum()), failed.size, alpha),
        "latency_mean": _mean(latency, alpha),
        "cpu_ms": _mean(cpu, alpha),
    }
    for name, q in _QUANTILES.items():
        metrics[name] = _quantile(latency, q, alpha)
    if task == "classification":
        predicted = np.asarray(data.predicted, dtype=object)
        truth = np.asarray(data.truth, dtype=object)
        metrics.update(_classification(predicted, truth, alpha, classes))
    else:
        errors = np.asarray(data.predicted, dtype=float) - np.asarray(data.truth, dtype=float)
        metrics["mae"] = _mean(np.abs(errors), alpha)
        metrics["rmse"] = _root(_mean(errors * errors, alpha))
    return ArmSummary(variant, latency.size, len(data.truth), metrics)


def _classification(
    predicted: np.ndarray, truth: np.ndarray, alpha: float, classes: Sequence[str]
) -> dict[str, Estimate]:
    import pyarrow as pa
    import pyarrow.compute as pc

    n = truth.size
    correct = predicted == truth
    metrics = {"accuracy": _proportion(int(correct.sum()), n, alpha)}
    if n == 0:
        return metrics
    true_labels = pa.array(truth, pa.string())
    labels = list(classes) or _frequent(true_labels)
    # The confusion matrix over the labels (rows: truth, columns: prediction), "other" last.
    value_set = pa.array(labels, pa.string())
    other = len(labels)
    t = _codes(pc.index_in(true_labels, value_set=value_set), other)
    p = _codes(pc.index_in(pa.array(predicted, pa.string()), value_set=value_set), other)
    cells = np.bincount(t * (other + 1) + p, minlength=(other + 1) ** 2)
    square = cells.reshape(other + 1, other + 1)
    for i, label in enumerate(labels):
        hits = int(square[i, i])
        said = int(square[:, i].sum())
        actual = int(square[i, :].sum())
        metrics[f"precision[{label}]"] = _proportion(hits, said, alpha)
        metrics[f"recall[{label}]"] = _proportion(hits, actual, alpha)
    f1 = _f1_bootstrap(cells, other + 1, len(labels), alpha)
    for i, label in enumerate(labels):
        metrics[f"f1[{label}]"] = f1[i]
    metrics["f1_macro"] = f1[-1]
    return metrics


def _frequent(truth: Any) -> list[str]:
    """The classes reported one by one: the most frequent true labels, at most 50."""
    import pyarrow.compute as pc

    counts = pc.value_counts(truth).to_pylist()
    counts.sort(key=lambda c: (-c["counts"], c["values"]))
    return sorted(c["values"] for c in counts[:_MAX_CLASSES])


def _codes(indices: Any, other: int) -> np.ndarray:
    """Arrow ``index_in`` results as integers, ``other`` where the label is not listed."""
    import pyarrow.compute as pc

    codes: np.ndarray = pc.fill_null(indices, other).to_numpy(zero_copy_only=False)
    return codes.astype(np.int64)


def _f1_scores(matrices: np.ndarray, classes: int) -> np.ndarray:
    """F1 of each class and their mean, for a stack of confusion matrices ``(k, m, m)``."""
    diagonal = np.diagonal(matrices, axis1=1, axis2=2)[:, :classes].astype(float)
    said = matrices.sum(axis=1)[:, :classes].astype(float)
    actual = matrices.sum(axis=2)[:, :classes].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(said + actual > 0, 2 * diagonal / (said + actual), 0.0)
    return np.concatenate([f1, f1.mean(axis=1, keepdims=True)], axis=1)


def _f1_bootstrap(cells: np.ndarray, size: int, classes: int, alpha: float) -> list[Estimate]:
    n = int(cells.sum())
    observed = _f1_scores(cells.reshape(1, size, size), classes)[0]
    rng = np.random.default_rng(0)
    draws = rng.multinomial(n, cells / n, size=_BOOTSTRAP).reshape(_BOOTSTRAP, size, size)
    scores = _f1_scores(draws, classes)
    low = np.quantile(scores, alpha / 2, axis=0)
    high = np.quantile(scores, 1 - alpha / 2, axis=0)
    return [
        Estimate(float(observed[i]), (float(low[i]), float(high[i])), n) for i in range(classes + 1)
    ]


def _proportion(successes: int, trials: int, alpha: float) -> Estimate:
    if trials == 0:
        return Estimate(None, None, 0)
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (z / (1 + z * z / trials)) * math.sqrt(
        share * (1 - share) / trials + z * z / (4 * trials * trials)
    )
    return Estimate(share, (max(0.0, centre - half), min(1.0, centre + half)), trials)


def _mean(values: np.ndarray, alpha: float) -> Estimate:
    n = values.size
    if n == 0:
        return Estimate(None, None, 0)
    mean = float(values.mean())
    if n == 1:
        return Estimate(mean, None, 1)
    from scipy.stats import t

    half = float(t.ppf(1 - alpha / 2, n - 1)) * float(values.std(ddof=1)) / math.sqrt(n)
    return Estimate(mean, (mean - half, mean + half), n)


def _root(mse: Estimate) -> Estimate:
    if mse.value is None:
        return mse
    ci = None if mse.ci is None else (math.sqrt(max(mse.ci[0], 0.0)), math.sqrt(mse.ci[1]))
    return Estimate(math.sqrt(mse.value), ci, mse.n)


def _quantile(values: np.ndarray, q: float, alpha: float) -> Estimate:
    """The ``q`` quantile with the order-statistic interval (ranks from the binomial)."""
    n = values.size
    if n == 0:
        return Estimate(None, None, 0)
    from scipy.stats import binom

    point = min(n - 1, math.ceil(q * n) - 1) if q * n >= 1 else 0
    low = int(binom.ppf(alpha / 2, n, q))  # ranks, 1-based
    high = int(binom.ppf(1 - alpha / 2, n, q)) + 1
    ranks = sorted({point, max(low - 1, 0), min(high - 1, n - 1)})
    ordered = np.partition(values, ranks)
    value = float(ordered[point])
    if low < 1 or high > n:
        return Estimate(value, None, n)  # too few observations for an interval
    return Estimate(value, (float(ordered[low - 1]), float(ordered[high - 1])), n)


# -- shadows ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShadowSummary:
    """How a shadow's answers compare with the caller's, request by request."""

    shadow: str
    pairs: int
    failures: int
    agreement: Estimate
    score_diff_mean: float | None
    score_diff_abs_p95: float | None
    latency_diff_mean_ms: float | None
    latency_diff_p95_ms: float | None


def summarize_shadow(shadow: str, data: ShadowData, alpha: float) -> ShadowSummary:
    """A shadow's agreement rate (Wilson interval), score and latency differences."""
    agree = np.asarray(data.agree, dtype=bool)
    scores = np.asarray(data.score_diff, dtype=float)
    latency = np.asarray(data.latency_diff_ms, dtype=float)
    return ShadowSummary(
        shadow,
        data.pairs,
        data.failures,
        _proportion(int(agree.sum()), agree.size, alpha),
        float(scores.mean()) if scores.size else None,
        float(np.quantile(np.abs(scores), 0.95)) if scores.size else None,
        float(latency.mean()) if latency.size else None,
        float(np.quantile(latency, 0.95)) if latency.size else None,
    )


# -- the decision -----------------------------------------------------------------------------


def decide(
    spec: ExperimentSpec, situation: Situation, control: ArmData, treatment: ArmData
) -> Decision:
    """Evaluate the experiment once: the comparisons, then the action they call for.

    Args:
        spec: The experiment.
        situation: Where it stands (time, canary step, the step's traffic, sample ratio).
        control: The control's observations since the experiment started.
        treatment: The treatment's.
    """
    alpha = spec.alpha
    arms = (
        summarize(spec.control, control, spec.task, alpha),
        summarize(spec.treatment, treatment, spec.task, alpha),
    )
    comparisons = compare(spec, control, treatment)
    action, reason = _action(spec, situation, comparisons[0], comparisons[1:])
    return Decision(action, reason, comparisons, arms, _inputs(spec, situation))


def compare(spec: ExperimentSpec, control: ArmData, treatment: ArmData) -> tuple[Comparison, ...]:
    """The sequential tests of one evaluation: the primary metric's, then each guardrail's.

    Guardrails share ``alpha`` (Bonferroni: each is tested at ``alpha / k``).
    """
    guard_alpha = spec.alpha / max(len(spec.guardrails), 1)
    return (
        _primary(spec, control, treatment),
        *(_guardrail(g, spec, control, treatment, guard_alpha) for g in spec.guardrails),
    )


def _action(
    spec: ExperimentSpec,
    situation: Situation,
    primary: Comparison,
    guardrails: Sequence[Comparison],
) -> tuple[Action, str]:
    if situation.srm_flagged:
        return "blocked", _srm_reason(situation)
    alarms = [g for g in guardrails if g.verdict == "alarm"]
    if alarms:
        return "rollback", "guardrail " + "; ".join(_shown(g) for g in alarms)
    if primary.verdict == "worse":
        return "rollback", f"the treatment is significantly worse on {_shown(primary)}"
    elapsed = (situation.now - situation.started_at).total_seconds()
    if elapsed >= spec.max_duration:
        return "inconclusive", (
            f"no decision within maxDuration ({_duration(spec.max_duration)}): {_shown(primary)}"
        )
    if spec.steps:
        return _canary(spec, situation, primary, guardrails)
    if primary.verdict == "not_enough_data":
        return "not_enough_data", _waiting(spec, primary)
    if primary.verdict == "better":
        return "promote", f"the treatment is significantly better on {_shown(primary)}"
    return "continue", f"no significant difference yet: {_shown(primary)}"


def _canary(
    spec: ExperimentSpec,
    situation: Situation,
    primary: Comparison,
    guardrails: Sequence[Comparison],
) -> tuple[Action, str]:
    index = situation.step
    step = spec.steps[index]
    lasted = (situation.now - situation.step_started_at).total_seconds()
    fewest = min(situation.step_counts)
    where = f"step {index + 1} of {len(spec.steps)} (treatment at {step.weight:g}%)"
    if lasted < step.min_duration or fewest < step.min_samples:
        return "continue", (
            f"{where}: {_duration(lasted)} of {_duration(step.min_duration)}, "
            f"{fewest} of {step.min_samples} requests in the smaller arm"
        )
    starved = [c for c in (primary, *guardrails) if c.verdict == "not_enough_data"]
    if starved:
        return "not_enough_data", f"{where}: " + _waiting(spec, *starved)
    if index + 1 < len(spec.steps):
        following = spec.steps[index + 1].weight
        return "advance", f"{where} passed its gates; the treatment goes to {following:g}%"
    return "promote", f"the last canary step ({where}) passed its gates: {_shown(primary)}"


def _primary(spec: ExperimentSpec, control: ArmData, treatment: ArmData) -> Comparison:
    primary = spec.primary
    info = METRICS[primary.metric]
    c = _observations(primary.metric, primary.class_, control)
    t = _observations(primary.metric, primary.class_, treatment)
    comparison = _compare(
        "primary", primary.metric, c, t, 0.0, spec.alpha, spec.min_samples,
        primary.minimum_effect, info.lower_is_better, squared=primary.metric == "rmse",
    )  # fmt: skip
    if comparison.p_value is None or comparison.difference is None:
        return comparison
    if comparison.p_value >= spec.alpha:
        return _with(comparison, "no_difference")
    improved = (comparison.difference < 0) == info.lower_is_better
    return _with(comparison, "better" if improved else "worse")


def _guardrail(
    guardrail: Guardrail,
    spec: ExperimentSpec,
    control: ArmData,
    treatment: ArmData,
    alpha: float,
) -> Comparison:
    name = guardrail.metric
    if name in GUARDRAIL_ONLY:
        return _quantile_guardrail(guardrail, control, treatment, alpha, spec.min_samples)
    info = METRICS[name]
    c = _observations(name, guardrail.class_, control)
    t = _observations(name, guardrail.class_, treatment)
    # The tolerance is relative to the control's value when it is a percentage.
    control_value = float(c.mean()) if c.size else 0.0
    if name == "rmse":
        control_value = math.sqrt(control_value)
    allowed = guardrail.allowed(control_value)
    comparison = _compare(
        "guardrail", _label(name, guardrail.class_), c, t, allowed, alpha, spec.min_samples,
        None, info.lower_is_better, squared=name == "rmse",
    )  # fmt: skip
    if comparison.p_value is None or comparison.difference is None:
        return comparison
    sign = 1.0 if info.lower_is_better else -1.0
    harm = sign * comparison.difference - allowed
    return _with(comparison, "alarm" if harm > 0 and comparison.p_value < alpha else "ok")


def _quantile_guardrail(
    guardrail: Guardrail, control: ArmData, treatment: ArmData, alpha: float, min_samples: int
) -> Comparison:
    q = _QUANTILES[guardrail.metric]
    c = np.asarray(control.latency_ms, dtype=float)
    t = np.asarray(treatment.latency_ms, dtype=float)
    tail = 1.0 - q
    empty = Comparison(
        "guardrail", guardrail.metric, None, None, c.size, t.size, None, 0.0, alpha, None, None
    )
    if min(c.size, t.size) < min_samples or t.size * tail < _MIN_TAIL:
        return empty
    control_q = float(np.quantile(c, q))
    allowed = guardrail.allowed(control_q)
    limit = control_q + allowed
    share = float((t > limit).mean())
    variance = tail * q * (1.0 / t.size + 1.0 / c.size)
    difference = share - tail
    result = _msprt(difference, variance, tail * tail, alpha)
    verdict: Literal["alarm", "ok"] = "alarm" if difference > 0 and result.p_value < alpha else "ok"
    return Comparison(
        "guardrail", guardrail.metric, control_q, float(np.quantile(t, q)), c.size, t.size,
        difference, allowed, alpha, result.p_value, result.ci, limit, verdict,
    )  # fmt: skip


def _compare(
    role: Literal["primary", "guardrail"],
    metric: str,
    c: np.ndarray,
    t: np.ndarray,
    tolerance: float,
    alpha: float,
    min_samples: int,
    minimum_effect: float | None,
    lower_is_better: bool,
    *,
    squared: bool,
) -> Comparison:
    """The mixture SPRT of ``mean(t) - mean(c)`` (shifted by the tolerance for a guardrail)."""
    shown_c = _shown_value(c, squared)
    shown_t = _shown_value(t, squared)
    if min(c.size, t.size) < max(min_samples, 2):
        return Comparison(
            role, metric, shown_c, shown_t, c.size, t.size, None, tolerance, alpha, None, None
        )
    difference = float(t.mean() - c.mean())
    variance = float(t.var(ddof=1) / t.size + c.var(ddof=1) / c.size)
    if variance <= 0.0:  # every observation equal in both arms: nothing to test
        return Comparison(
            role, metric, shown_c, shown_t, c.size, t.size, difference, tolerance, alpha,
            1.0, (difference, difference),
        )  # fmt: skip
    pooled = float(np.concatenate([c[:100_000], t[:100_000]]).std())
    effect = minimum_effect if minimum_effect is not None else 0.1 * pooled
    if squared and minimum_effect is not None:  # given in RMSE units; tested on squares
        effect = minimum_effect * minimum_effect
    sign = 1.0 if lower_is_better else -1.0
    # A guardrail tests the difference beyond what it allows, in the harmful direction.
    shift = sign * tolerance if role == "guardrail" else 0.0
    result = _msprt(difference - shift, variance, max(effect, 1e-12) ** 2, alpha)
    ci = (result.ci[0] + shift, result.ci[1] + shift)
    return Comparison(
        role, metric, shown_c, shown_t, c.size, t.size, difference, tolerance, alpha,
        result.p_value, ci,
    )  # fmt: skip


def _msprt(difference: float, variance: float, tau2: float, alpha: float) -> Any:
    from modelport.stats import msprt

    # One "observation" whose variance is the difference's: msprt depends on V/n only.
    return msprt(difference, 1, variance, tau2, alpha)


def _observations(metric: str, klass: str | None, data: ArmData) -> np.ndarray:
    """One value per observation whose mean is the metric (squares for RMSE)."""
    values: np.ndarray
    if metric == "error_rate":
        values = np.asarray(data.failed, dtype=float)
    elif metric == "latency_mean":
        values = np.asarray(data.latency_ms, dtype=float)
    elif metric == "cpu_ms":
        cpu = np.asarray(data.cpu_ms, dtype=float)
        values = cpu[~np.isnan(cpu)]
    elif metric in ("mae", "rmse"):
        errors = np.asarray(data.predicted, dtype=float) - np.asarray(data.truth, dtype=float)
        values = np.abs(errors) if metric == "mae" else errors * errors
    else:
        predicted = np.asarray(data.predicted, dtype=object)
        truth = np.asarray(data.truth, dtype=object)
        correct = predicted == truth
        if metric == "precision":
            correct = correct[predicted == klass]
        elif metric == "recall":
            correct = correct[truth == klass]
        values = correct.astype(float)  # accuracy, precision, recall
    return values


def _with(comparison: Comparison, verdict: Any) -> Comparison:
    return replace(comparison, verdict=verdict)


def _shown_value(values: np.ndarray, squared: bool) -> float | None:
    if not values.size:
        return None
    mean = float(values.mean())
    return math.sqrt(mean) if squared else mean


def _label(metric: str, klass: str | None) -> str:
    return metric if klass is None else f"{metric}[{klass}]"


def _shown(c: Comparison) -> str:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    text = (
        f"{c.metric}: control {number(c.control)} (n={c.n_control}), treatment "
        f"{number(c.treatment)} (n={c.n_treatment})"
    )
    if c.p_value is not None:
        text += f", always-valid p={c.p_value:.3g} (alpha {c.alpha:.3g})"
    if c.role == "guardrail" and c.tolerance:
        text += f", tolerance {c.tolerance:.4g}"
    if c.threshold is not None:
        text += f", limit {c.threshold:.4g} ms"
    return text


def _waiting(spec: ExperimentSpec, *comparisons: Comparison) -> str:
    return "not enough data: " + "; ".join(
        f"{c.metric} has {min(c.n_control, c.n_treatment)} of {spec.min_samples} observations "
        "in the smaller arm"
        for c in comparisons
    )


def _srm_reason(situation: Situation) -> str:
    p = situation.srm_p_value
    shown = "" if p is None else f" (p={p:.2g} < 0.001)"
    return (
        f"sample-ratio mismatch{shown}: control {situation.step_counts[0]} vs treatment "
        f"{situation.step_counts[1]} requests do not match the configured weights; the "
        "assignment or the logging is broken, so no decision is taken until someone "
        "acknowledges it (modelport experiments acknowledge NAME)"
    )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


def _inputs(spec: ExperimentSpec, situation: Situation) -> dict[str, Any]:
    return {
        "alpha": spec.alpha,
        "minSamples": spec.min_samples,
        "step": situation.step,
        "stepStartedAt": situation.step_started_at.isoformat(),
        "stepCounts": list(situation.step_counts),
        "srmPValue": situation.srm_p_value,
        "srmFlagged": situation.srm_flagged,
        "elapsedSeconds": (situation.now - situation.started_at).total_seconds(),
    }


def _arm_record(arm: ArmSummary) -> dict[str, Any]:
    return {
        "variant": arm.variant,
        "requests": arm.requests,
        "labelled": arm.labelled,
        "metrics": {
            name: {"value": e.value, "ci": list(e.ci) if e.ci else None, "n": e.n}
            for name, e in arm.metrics.items()
        },
    }


def srm_p_value(counts: Sequence[int], weights: Sequence[float]) -> float | None:
    """The sample-ratio test's p-value, or ``None`` while an expected count is below 5."""
    total = sum(counts)
    share = sum(weights)
    if total == 0 or share <= 0 or any(w <= 0 for w in weights):
        return None
    if min(total * w / share for w in weights) < 5:
        return None
    from modelport.stats import srm_test

    return srm_test(list(counts), list(weights)).p_value


def as_mapping(summary: ShadowSummary) -> Mapping[str, Any]:
    """A shadow summary as JSON-ready data."""
    return asdict(summary)
