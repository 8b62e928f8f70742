"""The experiment's statistics and decisions, against scipy and hand-worked situations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from modelport.core.experiment import parse_experiment
from modelport.experiments.analysis import (
    Situation,
    compare,
    decide,
    srm_p_value,
    summarize,
    summarize_shadow,
)

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@dataclass
class Arm:
    latency_ms: np.ndarray
    failed: np.ndarray
    cpu_ms: np.ndarray
    predicted: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    truth: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))


def arm(
    rng: np.random.Generator,
    n: int,
    *,
    latency: float = 10.0,
    errors: float = 0.01,
    accuracy: float = 0.8,
    labelled: int | None = None,
) -> Arm:
    m = n if labelled is None else labelled
    truth = rng.integers(0, 2, m)
    right = rng.random(m) < accuracy
    predicted = np.where(right, truth, 1 - truth)
    return Arm(
        latency_ms=rng.gamma(4.0, latency / 4.0, n),
        failed=rng.random(n) < errors,
        cpu_ms=rng.gamma(2.0, 1.0, n),
        predicted=np.array([str(x) for x in predicted], dtype=object),
        truth=np.array([str(x) for x in truth], dtype=object),
    )


def spec(**changes: Any) -> Any:
    document: dict[str, Any] = {
        "apiVersion": "modelport.io/v1",
        "kind": "Experiment",
        "metadata": {"name": "exp"},
        "spec": {
            "deployment": "fraud",
            "control": "a",
            "treatment": "b",
            "primary": {"metric": "accuracy"},
            "guardrails": [
                {"metric": "error_rate", "tolerance": 0.0},
                {"metric": "latency_p99", "tolerance": "0%"},
            ],
            "minSamples": 200,
            "maxDuration": "1d",
            **changes,
        },
    }
    return parse_experiment(document).spec


def situation(
    minutes: float = 60, step: int = 0, counts: tuple[int, int] = (1000, 1000), **kw: Any
) -> Situation:
    return Situation(
        now=START + timedelta(minutes=minutes),
        started_at=START,
        step=step,
        step_started_at=kw.pop("step_started_at", START),
        step_counts=counts,
        srm_p_value=kw.pop("srm_p_value", None),
        srm_flagged=kw.pop("srm_flagged", False),
    )


# -- intervals against scipy --------------------------------------------------------------------


def test_intervals_match_scipy() -> None:
    rng = np.random.default_rng(1)
    data = arm(rng, 3000, errors=0.03)
    summary = summarize("a", data, "classification", 0.05)
    errors = summary.metrics["error_rate"]
    wilson = sps.binomtest(int(data.failed.sum()), 3000).proportion_ci(0.95, method="wilson")
    assert errors.ci == pytest.approx((wilson.low, wilson.high), rel=1e-9)
    mean = summary.metrics["latency_mean"]
    t = sps.t.interval(0.95, 2999, loc=data.latency_ms.mean(), scale=sps.sem(data.latency_ms))
    assert mean.ci == pytest.approx(t, rel=1e-9)
    p99 = summary.metrics["latency_p99"]
    reference = sps.quantile_test(data.latency_ms, q=0, p=0.99).confidence_interval(0.95)
    assert p99.ci == pytest.approx((reference.low, reference.high), rel=1e-12)
    assert summary.requests == 3000 and summary.labelled == 3000


def test_classification_metrics_per_class_and_macro_f1() -> None:
    truth = np.array(["1", "1", "1", "0", "0", "0", "0", "2"], dtype=object)
    predicted = np.array(["1", "1", "0", "0", "0", "1", "0", "2"], dtype=object)
    data = Arm(np.ones(8), np.zeros(8, bool), np.full(8, np.nan), predicted, truth)
    metrics = summarize("a", data, "classification", 0.05).metrics
    assert metrics["accuracy"].value == pytest.approx(6 / 8)
    assert metrics["precision[1]"].value == pytest.approx(2 / 3)
    assert metrics["recall[1]"].value == pytest.approx(2 / 3)
    assert metrics["recall[0]"].value == pytest.approx(3 / 4)
    f1 = {"0": 2 * 3 / (4 + 4), "1": 2 * 2 / (3 + 3), "2": 1.0}
    for label, value in f1.items():
        assert metrics[f"f1[{label}]"].value == pytest.approx(value)
    assert metrics["f1_macro"].value == pytest.approx(sum(f1.values()) / 3)
    low, high = metrics["f1_macro"].ci or (0, 0)
    assert low <= metrics["f1_macro"].value <= high
    assert metrics["cpu_ms"].value is None  # never measured


def test_regression_metrics() -> None:
    predicted = np.array([1.0, 2.0, 4.0])
    truth = np.array([1.0, 3.0, 2.0])
    data = Arm(np.ones(3), np.zeros(3, bool), np.ones(3), predicted, truth)
    metrics = summarize("a", data, "regression", 0.05).metrics
    assert metrics["mae"].value == pytest.approx(1.0)
    assert metrics["rmse"].value == pytest.approx(np.sqrt(5 / 3))


def test_srm_p_value() -> None:
    assert srm_p_value([500, 500], [50, 50]) == pytest.approx(1.0)
    assert srm_p_value([1, 2], [50, 50]) is None  # expected counts below 5
    p = srm_p_value([900, 1100], [50, 50])
    assert p == pytest.approx(sps.chisquare([900, 1100]).pvalue)


def test_shadow_summary() -> None:
    @dataclass
    class Shadow:
        pairs: int = 4
        failures: int = 1
        agree: np.ndarray = field(default_factory=lambda: np.array([True, True, False, True]))
        score_diff: np.ndarray = field(default_factory=lambda: np.array([0.1, -0.2, 0.0, 0.1]))
        latency_diff_ms: np.ndarray = field(default_factory=lambda: np.array([1.0, 2, 3, 4]))

    summary = summarize_shadow("next", Shadow(), 0.05)
    assert summary.agreement.value == 0.75
    assert summary.score_diff_mean == pytest.approx(0.0)
    assert summary.latency_diff_mean_ms == pytest.approx(2.5)


# -- decisions --------------------------------------------------------------------------------


def test_a_much_worse_treatment_is_rolled_back() -> None:
    rng = np.random.default_rng(2)
    decision = decide(spec(), situation(), arm(rng, 2000), arm(rng, 2000, accuracy=0.5))
    assert decision.action == "rollback"
    assert "significantly worse on accuracy" in decision.reason


def test_a_guardrail_alarm_rolls_back_before_anything_else() -> None:
    rng = np.random.default_rng(3)
    decision = decide(
        spec(), situation(), arm(rng, 3000), arm(rng, 3000, errors=0.08, accuracy=0.9)
    )
    assert decision.action == "rollback"
    assert decision.reason.startswith("guardrail error_rate")


def test_a_slower_treatment_trips_the_p99_guardrail() -> None:
    rng = np.random.default_rng(4)
    decision = decide(spec(), situation(), arm(rng, 5000), arm(rng, 5000, latency=14.0))
    assert decision.action == "rollback"
    assert "latency_p99" in decision.reason
    p99 = next(c for c in decision.comparisons if c.metric == "latency_p99")
    assert p99.threshold is not None and p99.verdict == "alarm"


def test_tolerance_allows_a_small_degradation() -> None:
    rng = np.random.default_rng(5)
    tolerant = spec(
        guardrails=[{"metric": "latency_mean", "tolerance": "50%"}],
        primary={"metric": "accuracy"},
    )
    decision = decide(tolerant, situation(), arm(rng, 5000), arm(rng, 5000, latency=11.0))
    guard = decision.comparisons[1]
    assert guard.verdict == "ok" and guard.tolerance == pytest.approx(
        0.5 * guard.control  # type: ignore[operator]
    )


def test_a_better_treatment_is_promoted() -> None:
    rng = np.random.default_rng(6)
    decision = decide(spec(), situation(), arm(rng, 3000), arm(rng, 3000, accuracy=0.9))
    assert decision.action == "promote"
    record = decision.record()
    assert record["comparisons"][0]["verdict"] == "better"
    assert {a["variant"] for a in record["arms"]} == {"a", "b"}


def test_low_traffic_is_not_enough_data_until_the_maximum_duration() -> None:
    rng = np.random.default_rng(7)
    low = (arm(rng, 50), arm(rng, 50, accuracy=0.99))
    assert decide(spec(), situation(minutes=60), *low).action == "not_enough_data"
    late = decide(spec(), situation(minutes=24 * 60), *low)
    assert late.action == "inconclusive"


def test_a_sample_ratio_mismatch_blocks_every_decision() -> None:
    rng = np.random.default_rng(8)
    worse = (arm(rng, 3000), arm(rng, 3000, accuracy=0.4))
    decision = decide(spec(), situation(srm_flagged=True, srm_p_value=1e-9), *worse)
    assert decision.action == "blocked"
    assert "acknowledge" in decision.reason


def test_canary_steps_wait_for_their_gates_then_advance_then_promote() -> None:
    canary = spec(
        steps=[
            {"weight": 10, "minDuration": "10m", "minSamples": 100},
            {"weight": 50, "minDuration": "10m"},
        ]
    )
    rng = np.random.default_rng(9)
    same = (arm(rng, 3000), arm(rng, 3000))
    early = decide(canary, situation(minutes=5), *same)
    assert early.action == "continue" and "step 1 of 2" in early.reason
    few = decide(canary, situation(minutes=20, counts=(900, 50)), *same)
    assert few.action == "continue"
    assert decide(canary, situation(minutes=20), *same).action == "advance"
    last = situation(minutes=40, step=1, step_started_at=START + timedelta(minutes=20))
    assert decide(canary, last, *same).action == "promote"
    starved = decide(canary, situation(minutes=20), arm(rng, 100), arm(rng, 100))
    assert starved.action == "not_enough_data"


# -- the A/A simulation -----------------------------------------------------------------------


def test_peeking_every_minute_keeps_false_alarms_within_alpha() -> None:
    """1,000 A/A experiments, each looked at after every simulated minute for half an hour.

    The same looks with a fixed-horizon Welch test on one guardrail alone (at its Bonferroni
    share of alpha) raise false alarms several times as often: the test can tell the two apart.
    """
    rng = np.random.default_rng(2026)
    guarded = spec(
        guardrails=[
            {"metric": "error_rate", "tolerance": 0.0},
            {"metric": "latency_mean", "tolerance": 0.0},
            {"metric": "latency_p99", "tolerance": "0%"},
        ],
        minSamples=100,
    )
    share = guarded.alpha / 3
    experiments, looks, per_minute = 1000, 30, 40
    alarms = naive = 0
    for _ in range(experiments):
        total = looks * per_minute
        a, b = arm(rng, total, labelled=0), arm(rng, total, labelled=0)
        alarmed = peeked = False
        for look in range(3, looks + 1):
            n = look * per_minute
            seen = [_head(a, n), _head(b, n)]
            if not alarmed:
                alarmed = any(g.verdict == "alarm" for g in compare(guarded, *seen)[1:])
            if not peeked:
                welch = sps.ttest_ind(b.latency_ms[:n], a.latency_ms[:n], equal_var=False)
                peeked = bool(welch.pvalue < share and welch.statistic > 0)
        alarms += alarmed
        naive += peeked
    assert alarms / experiments <= guarded.alpha
    assert naive / experiments > 2 * share


def _head(data: Arm, n: int) -> Arm:
    return Arm(data.latency_ms[:n], data.failed[:n], data.cpu_ms[:n], data.predicted, data.truth)
