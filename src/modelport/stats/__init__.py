"""Statistics for experiments: pure numpy and scipy, each function with its reference.

Every test returns a frozen :class:`TestResult` (``statistic``, ``p_value``, and where defined
``ci``, a ``(low, high)`` tuple, and ``estimate``). Differences are always *treatment minus
control*: the second arm minus the first. Two-sided tests throughout.

- :func:`two_proportion_ztest`: pooled z test of two proportions, unpooled (Wald) interval for
  their difference (Agresti, *Categorical Data Analysis*, 3rd ed., sections 1.4 and 3.1).
- :func:`welch_ttest` / :func:`welch_ttest_samples`: Welch's t test, Welch-Satterthwaite
  degrees of freedom (Welch, Biometrika 34, 1947).
- :func:`mann_whitney_u`: U of the first sample; exact distribution for small samples without
  ties, else the normal approximation with tie and continuity corrections (scipy's
  implementation; Mann and Whitney, Ann. Math. Statist. 18, 1947).
- :func:`msprt`: the normal-mixture sequential probability ratio test and its always-valid
  p-value and confidence sequence (Johari, Pekelis and Walsh, "Always valid inference", 2017).
- :func:`srm_test`: chi-square goodness of fit of arm counts to the configured weights (a
  sample-ratio mismatch; Fabijan et al., KDD 2019).
- :func:`adjust_pvalues`: Bonferroni, Holm (Scand. J. Statist. 6, 1979), Benjamini-Hochberg
  (JRSS B 57, 1995).
- :func:`sample_size_proportions`, :func:`sample_size_means`: per-arm sample sizes, two-sided
  (Fleiss, Levin and Paik, *Statistical Methods for Rates and Proportions*, 3rd ed., 4.2).
- :func:`cuped`: variance reduction with a pre-experiment covariate (Deng, Xu, Kohavi and
  Walker, WSDM 2013).
- :func:`bootstrap_ci`: percentile bootstrap interval of any statistic (p99 latency...),
  seeded (Efron and Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13).

scipy is imported by this module, so ``import modelport`` does not load it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

__all__ = [
    "MsprtResult",
    "TestResult",
    "adjust_pvalues",
    "bootstrap_ci",
    "cuped",
    "mann_whitney_u",
    "msprt",
    "sample_size_means",
    "sample_size_proportions",
    "srm_test",
    "two_proportion_ztest",
    "welch_ttest",
    "welch_ttest_samples",
]


@dataclass(frozen=True, slots=True)
class TestResult:
    """A test's outcome.

    Attributes:
        statistic: The test statistic (z, t, U, chi-square...).
        p_value: Two-sided p-value.
        ci: Confidence interval of ``estimate`` at ``1 - alpha``, where the test defines one.
        estimate: The estimated effect (treatment minus control), where the test has one.
        df: Degrees of freedom, where the reference distribution has them.
    """

    statistic: float
    p_value: float
    ci: tuple[float, float] | None = None
    estimate: float | None = None
    df: float | None = None


@dataclass(frozen=True, slots=True)
class MsprtResult:
    """The mixture SPRT after ``n`` observations per arm.

    Attributes:
        statistic: The mixture likelihood ratio (Lambda_n).
        p_value: The always-valid p-value ``min(1, 1 / Lambda_n)`` at this look; the running
            minimum over looks is what stays valid under continuous monitoring.
        ci: The always-valid confidence sequence for the difference at this look.
        half_width: Its half-width.
    """

    statistic: float
    p_value: float
    ci: tuple[float, float]
    half_width: float


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")


def _pair(values: Sequence[float], what: str) -> tuple[float, float]:
    if len(values) != 2:
        raise ValueError(f"{what} takes two values (control, treatment), got {len(values)}")
    return float(values[0]), float(values[1])


def two_proportion_ztest(
    successes: Sequence[int], trials: Sequence[int], alpha: float = 0.05
) -> TestResult:
    """Pooled z test that two proportions are equal; Wald interval for their difference.

    Args:
        successes: ``(control, treatment)`` successes.
        trials: ``(control, treatment)`` trials.
        alpha: One minus the interval's confidence.

    Raises:
        ValueError: Not two arms, a count out of range, or every trial a success (or none).
    """
    _check_alpha(alpha)
    (s1, s2), (n1, n2) = _pair(successes, "successes"), _pair(trials, "trials")
    if n1 <= 0 or n2 <= 0 or not (0 <= s1 <= n1 and 0 <= s2 <= n2):
        raise ValueError("each arm needs trials > 0 and 0 <= successes <= trials")
    p1, p2 = s1 / n1, s2 / n2
    pooled = (s1 + s2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        raise ValueError("the test is undefined when every trial, or none, is a success")
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    half = sps.norm.ppf(1 - alpha / 2) * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    diff = p2 - p1
    return TestResult(z, float(2 * sps.norm.sf(abs(z))), (diff - half, diff + half), diff)


def welch_ttest(
    mean: Sequence[float], sd: Sequence[float], n: Sequence[int], alpha: float = 0.05
) -> TestResult:
    """Welch's t test from per-arm summaries.

    Args:
        mean: ``(control, treatment)`` sample means.
        sd: Their sample standard deviations (ddof 1).
        n: Their sizes (at least 2 each).
        alpha: One minus the interval's confidence.

    Raises:
        ValueError: Not two arms, an arm under 2 observations, or both variances zero.
    """
    _check_alpha(alpha)
    (m1, m2), (s1, s2), (n1, n2) = _pair(mean, "mean"), _pair(sd, "sd"), _pair(n, "n")
    if n1 < 2 or n2 < 2:
        raise ValueError("each arm needs at least 2 observations")
    v1, v2 = s1 * s1 / n1, s2 * s2 / n2
    if v1 + v2 == 0:
        raise ValueError("both arms have zero variance: the test is undefined")
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
    diff = m2 - m1
    t = diff / se
    half = float(sps.t.ppf(1 - alpha / 2, df)) * se
    return TestResult(t, float(2 * sps.t.sf(abs(t), df)), (diff - half, diff + half), diff, df)


def welch_ttest_samples(
    control: Sequence[float] | np.ndarray, treatment: Sequence[float] | np.ndarray,
    alpha: float = 0.05,
) -> TestResult:  # fmt: skip
    """Welch's t test of two samples (:func:`welch_ttest` on their summaries)."""
    a, b = np.asarray(control, dtype=float), np.asarray(treatment, dtype=float)
    return welch_ttest(
        (a.mean(), b.mean()), (a.std(ddof=1), b.std(ddof=1)), (a.size, b.size), alpha
    )


def mann_whitney_u(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, exact_below: int = 8
) -> TestResult:
    """Mann-Whitney U test that the two samples come from the same distribution.

    The statistic is U of the first sample (the number of pairs where it is larger, ties
    counting a half). The p-value is exact when both samples have at most ``exact_below``
    values and there are no ties; otherwise the normal approximation with the tie correction of
    the variance and a continuity correction.

    Raises:
        ValueError: A sample is empty.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        raise ValueError("both samples need at least one value")
    ties = np.unique(np.concatenate([x, y])).size < x.size + y.size
    small = x.size <= exact_below and y.size <= exact_below
    method = "exact" if small and not ties else "asymptotic"
    result = sps.mannwhitneyu(x, y, alternative="two-sided", use_continuity=True, method=method)
    return TestResult(float(result.statistic), float(result.pvalue))


def msprt(diff: float, n: int, variance: float, tau2: float, alpha: float = 0.05) -> MsprtResult:
    """Normal-mixture SPRT for a difference of means (Johari, Pekelis and Walsh, 2017).

    With ``n`` observations per arm, ``diff`` the observed difference of means (treatment minus
    control) and ``variance`` the variance of one paired difference, mixing the alternative
    over N(0, tau2)::

        Lambda_n = sqrt(V / (V + n tau2)) * exp(n^2 tau2 diff^2 / (2 V (V + n tau2)))

    with V = ``variance``. Rejecting when Lambda_n >= 1/alpha at any look keeps the type I error
    at most alpha however often one looks. The confidence sequence is every difference d whose
    Lambda_n(diff - d) < 1/alpha.

    Raises:
        ValueError: ``n`` below 1, or ``variance`` or ``tau2`` not positive.
    """
    _check_alpha(alpha)
    if n < 1 or not variance > 0 or not tau2 > 0:
        raise ValueError("msprt needs n >= 1, variance > 0 and tau2 > 0")
    spread = variance + n * tau2
    log_ratio = 0.5 * math.log(variance / spread) + (n * n * tau2 * diff * diff) / (
        2 * variance * spread
    )
    ratio = math.exp(min(log_ratio, 700.0))  # beyond e^700 the p-value is 0 all the same
    threshold = math.log(1 / alpha) + 0.5 * math.log(spread / variance)
    half = math.sqrt(2 * variance * spread / (n * n * tau2) * threshold)
    return MsprtResult(ratio, min(1.0, 1.0 / ratio), (diff - half, diff + half), half)


def srm_test(counts: Sequence[int], weights: Sequence[float]) -> TestResult:
    """Chi-square goodness of fit of observed arm counts to the configured weights.

    The platform flags a sample-ratio mismatch when the p-value is below 0.001.

    Raises:
        ValueError: Counts and weights differ in length, fewer than 2 arms, a negative count,
            no observations, or a weight that is not positive.
    """
    observed = np.asarray(counts, dtype=float)
    expected_share = np.asarray(weights, dtype=float)
    if observed.shape != expected_share.shape or observed.size < 2:
        raise ValueError("give one count and one weight per arm, at least two arms")
    if (observed < 0).any() or observed.sum() == 0 or (expected_share <= 0).any():
        raise ValueError("counts must be >= 0 with some observations, weights > 0")
    expected = observed.sum() * expected_share / expected_share.sum()
    result = sps.chisquare(observed, expected)
    return TestResult(float(result.statistic), float(result.pvalue), df=float(observed.size - 1))


def adjust_pvalues(
    p: Sequence[float] | np.ndarray, method: Literal["bonferroni", "holm", "bh"]
) -> np.ndarray:
    """P-values adjusted for multiple comparisons, in the order given.

    Raises:
        ValueError: A p-value outside [0, 1], or an unknown method.
    """
    values = np.asarray(p, dtype=float)
    if ((values < 0) | (values > 1)).any():
        raise ValueError("p-values must be between 0 and 1")
    m = values.size
    if m == 0:
        return values
    if method == "bonferroni":
        bonferroni: np.ndarray = np.minimum(1.0, values * m)
        return bonferroni
    order = np.argsort(values)
    ranked = values[order]
    if method == "holm":
        stepped = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        stepped = np.minimum.accumulate((m / np.arange(m, 0, -1)) * ranked[::-1])[::-1]
    else:
        raise ValueError(f"unknown method {method!r}: expected bonferroni, holm or bh")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, stepped)
    return adjusted


def _z(alpha: float, power: float) -> tuple[float, float]:
    _check_alpha(alpha)
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be between 0 and 1, got {power}")
    return float(sps.norm.ppf(1 - alpha / 2)), float(sps.norm.ppf(power))


def sample_size_proportions(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Observations per arm to detect ``p1`` against ``p2`` (pooled-variance formula).

    Raises:
        ValueError: A proportion outside (0, 1), equal proportions, or alpha/power out of range.
    """
    if not (0 < p1 < 1 and 0 < p2 < 1) or p1 == p2:
        raise ValueError("p1 and p2 must differ and lie strictly between 0 and 1")
    z_alpha, z_power = _z(alpha, power)
    mean = (p1 + p2) / 2
    root = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_power * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(root * root / (p1 - p2) ** 2)


def sample_size_means(sigma: float, delta: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Observations per arm to detect a difference ``delta`` of means with sd ``sigma``.

    Raises:
        ValueError: ``sigma`` or ``delta`` not positive, or alpha/power out of range.
    """
    if not sigma > 0 or delta == 0:
        raise ValueError("sigma must be positive and delta non-zero")
    z_alpha, z_power = _z(alpha, power)
    return math.ceil(2 * (z_alpha + z_power) ** 2 * sigma * sigma / (delta * delta))


def cuped(
    y: Sequence[float] | np.ndarray, x: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, float]:
    """CUPED: ``y - theta (x - mean(x))`` with ``theta = cov(x, y) / var(x)``.

    Returns:
        The adjusted values (same mean as ``y``, smaller variance when ``x`` predicts ``y``)
        and theta.

    Raises:
        ValueError: Lengths differ, fewer than 2 values, or ``x`` constant.
    """
    ys, xs = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    if ys.shape != xs.shape or ys.size < 2:
        raise ValueError("y and x need the same length, at least 2")
    variance = xs.var(ddof=1)
    if variance == 0:
        raise ValueError("x is constant: it cannot explain any of y's variance")
    theta = float(np.cov(xs, ys, ddof=1)[0, 1] / variance)
    return ys - theta * (xs - xs.mean()), theta


def bootstrap_ci(
    a: Sequence[float] | np.ndarray,
    stat: Callable[..., float | np.ndarray],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> TestResult:
    """Percentile bootstrap interval of ``stat``; ``p_value`` is NaN (no hypothesis is tested).

    ``stat`` takes the sample and an ``axis`` keyword, so resamples are computed at once: for
    p99 latency, ``lambda v, axis: np.quantile(v, 0.99, axis=axis)``.

    Raises:
        ValueError: Fewer than 2 values, or confidence out of (0, 1).
    """
    values = np.asarray(a, dtype=float)
    if values.size < 2:
        raise ValueError("bootstrap needs at least 2 values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    result = sps.bootstrap(
        (values,),
        stat,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return TestResult(float(stat(values, axis=-1)), math.nan, (float(low), float(high)))
