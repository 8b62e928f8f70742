"""modelport.stats against scipy and hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from modelport import stats


def test_two_proportion_z_squared_is_the_uncorrected_chi_square() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = rng.integers(20, 5000, size=2)
        s = rng.binomial(n, rng.uniform(0.05, 0.95, size=2))
        result = stats.two_proportion_ztest(s, n)
        table = np.array([[s[0], n[0] - s[0]], [s[1], n[1] - s[1]]])
        chi2, p, _, _ = sps.chi2_contingency(table, correction=False)
        assert result.statistic**2 == pytest.approx(chi2, rel=1e-9)
        assert result.p_value == pytest.approx(p, rel=1e-9)
        diff = s[1] / n[1] - s[0] / n[0]
        se = math.sqrt(
            (s[0] / n[0]) * (1 - s[0] / n[0]) / n[0] + (s[1] / n[1]) * (1 - s[1] / n[1]) / n[1]
        )
        assert result.ci == pytest.approx(
            (diff - 1.959963984540054 * se, diff + 1.959963984540054 * se)
        )


def test_two_proportion_published_example() -> None:
    # 45/100 against 60/100: z = 2.1239 (pooled), two-sided p = 0.0337.
    result = stats.two_proportion_ztest((45, 60), (100, 100))
    assert result.statistic == pytest.approx(2.1239, abs=1e-4)
    assert result.p_value == pytest.approx(0.0337, abs=1e-4)
    with pytest.raises(ValueError, match="every trial, or none"):
        stats.two_proportion_ztest((0, 0), (10, 10))


def test_welch_matches_scipy_from_summaries_and_samples() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        a = rng.normal(0, rng.uniform(0.5, 3), size=rng.integers(3, 200))
        b = rng.normal(0.3, rng.uniform(0.5, 3), size=rng.integers(3, 200))
        ours = stats.welch_ttest_samples(a, b)
        ref = sps.ttest_ind(b, a, equal_var=False)
        assert ours.statistic == pytest.approx(ref.statistic, rel=1e-9)
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
        assert ours.df == pytest.approx(ref.df, rel=1e-9)
        low, high = ref.confidence_interval(0.95)
        assert ours.ci == pytest.approx((low, high), rel=1e-7)


def test_mann_whitney_u_matches_scipy_exact_and_asymptotic() -> None:
    small = stats.mann_whitney_u([1.1, 2.3, 3.5], [4.2, 5.0, 6.1, 7.7])
    ref = sps.mannwhitneyu([1.1, 2.3, 3.5], [4.2, 5.0, 6.1, 7.7], method="exact")
    assert (small.statistic, small.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 10, size=60), rng.integers(1, 11, size=45)  # ties
    ours = stats.mann_whitney_u(a, b)
    ref = sps.mannwhitneyu(a, b, method="asymptotic", use_continuity=True)
    assert (ours.statistic, ours.p_value) == pytest.approx((ref.statistic, ref.pvalue))


def test_msprt_matches_the_closed_form_and_keeps_peeking_honest() -> None:
    result = stats.msprt(diff=0.1, n=1000, variance=2.0, tau2=0.01)
    spread = 2.0 + 1000 * 0.01
    expected = math.sqrt(2.0 / spread) * math.exp(1000**2 * 0.01 * 0.01 / (2 * 2.0 * spread))
    assert result.statistic == pytest.approx(expected)
    assert result.p_value == pytest.approx(min(1, 1 / expected))
    # At the edge of the confidence sequence the ratio is exactly 1/alpha.
    edge = stats.msprt(diff=result.half_width, n=1000, variance=2.0, tau2=0.01)
    assert edge.statistic == pytest.approx(20.0, rel=1e-9)
    # A/A experiments looked at after every batch: the always-valid test rejects at most alpha.
    rng = np.random.default_rng(4)
    false_alarms = 0
    for _ in range(300):
        diffs = rng.normal(0, math.sqrt(2.0), size=2000)
        running = np.cumsum(diffs) / np.arange(1, diffs.size + 1)
        looks = range(50, diffs.size + 1, 50)
        if any(stats.msprt(running[n - 1], n, 2.0, 0.05).p_value <= 0.05 for n in looks):
            false_alarms += 1
    assert false_alarms / 300 <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 300)


def test_srm_matches_scipy_chisquare() -> None:
    result = stats.srm_test([5100, 4900], [50, 50])
    ref = sps.chisquare([5100, 4900], [5000, 5000])
    assert (result.statistic, result.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    assert stats.srm_test([9500, 500], [50, 50]).p_value < 0.001
    assert stats.srm_test([9010, 990], [90, 10]).p_value > 0.001
    with pytest.raises(ValueError):
        stats.srm_test([1, 2], [1])


def test_adjusted_pvalues() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert stats.adjust_pvalues(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, running maximum.
    assert stats.adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(5)
    q = rng.uniform(size=40) ** 3
    assert stats.adjust_pvalues(q, "bh") == pytest.approx(sps.false_discovery_control(q))
    with pytest.raises(ValueError, match="unknown method"):
        stats.adjust_pvalues(p, "fdr")  # type: ignore[arg-type]


def test_sample_sizes_match_published_tables() -> None:
    # 0.10 against 0.15, alpha 0.05, power 0.8: 686 per arm (pooled formula, Fleiss 4.2).
    assert stats.sample_size_proportions(0.10, 0.15) == 686
    # sd 1, difference 0.5: 2 (1.96 + 0.8416)^2 / 0.25 = 62.79 -> 63.
    assert stats.sample_size_means(1.0, 0.5) == 63


def test_cuped_keeps_the_mean_and_reduces_the_variance() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(10, 2, size=5000)
    y = 3 + 0.8 * x + rng.normal(0, 1, size=5000)
    adjusted, theta = stats.cuped(y, x)
    assert theta == pytest.approx(np.cov(x, y)[0, 1] / np.var(x, ddof=1))
    assert adjusted.mean() == pytest.approx(y.mean())
    assert adjusted.var() < 0.5 * y.var()


def test_bootstrap_interval_of_a_p99_is_seeded_and_holds_the_estimate() -> None:
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(0, 0.5, size=3000)

    def p99(values: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.quantile(values, 0.99, axis=axis)

    first = stats.bootstrap_ci(latencies, p99, seed=1)
    again = stats.bootstrap_ci(latencies, p99, seed=1)
    assert (first.ci, first.statistic) == (again.ci, again.statistic)  # the p-value is NaN
    assert stats.bootstrap_ci(latencies, p99, seed=2).ci != first.ci
    assert first.ci is not None and first.ci[0] <= first.statistic <= first.ci[1]
