"""The drift statistics: effect sizes over binned proportions, two-sample tests, MMD.

The references are in the package docstring (:mod:`modelport.drift`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

ArrayLike: TypeAlias = Sequence[float] | np.ndarray
Counts: TypeAlias = Mapping[Any, float] | Sequence[float] | np.ndarray

# How far a vector of proportions may sum from 1 (rounding of proportions given as decimals).
_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class StatisticResult:
    """A drift statistic's value.

    Attributes:
        statistic: The statistic (PSI, KS D, distance, chi-square...).
        p_value: The p-value, for the statistics that are tests (:func:`ks_2samp`,
            :func:`chi2_2samp`); None for effect sizes.
        df: Degrees of freedom, where the reference distribution has them.
    """

    statistic: float
    p_value: float | None = None
    df: float | None = None


@dataclass(frozen=True, slots=True)
class MmdResult:
    """The outcome of :func:`mmd`.

    Attributes:
        statistic: The unbiased estimate of the squared MMD (may be slightly negative).
        p_value: The permutation p-value, ``(1 + #{permuted >= observed}) / (1 + permutations)``.
        bandwidth: The Gaussian kernel's bandwidth used.
    """

    statistic: float
    p_value: float
    bandwidth: float


def _proportions(values: ArrayLike, what: str) -> np.ndarray:
    p = np.asarray(values, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-d vector of proportions")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError(f"{what} must be finite and non-negative")
    total = float(p.sum())
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise ValueError(
            f"{what} sums to {total:.6g}, not 1: pass proportions (counts / counts.sum())"
        )
    return p


def _two_proportions(p: ArrayLike, q: ArrayLike, names: str) -> tuple[np.ndarray, np.ndarray]:
    first, second = names.split(",")
    a, b = _proportions(p, first), _proportions(q, second)
    if a.shape != b.shape:
        raise ValueError(f"{first} and {second} need the same bins: {a.size} against {b.size}")
    return a, b


def _sample(values: ArrayLike, what: str, finite: bool = True) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-d sample")
    bad = ~np.isfinite(x) if finite else np.isnan(x)
    if bad.any():
        raise ValueError(f"{what} holds NaN or infinite values: drop missing values first")
    return x


def psi(reference: ArrayLike, current: ArrayLike, eps: float = 1e-4) -> StatisticResult:
    """Population stability index of two vectors of proportions over the same bins.

    ``sum((c - r) * ln(c / r))``, each proportion that is 0 replaced by ``eps`` (without
    renormalising): a bin empty in both adds nothing, a bin empty in one adds a large but finite
    term. It is the symmetrised Kullback-Leibler divergence ``KL(c||r) + KL(r||c)``.

    Args:
        reference: The reference's proportion per bin (summing to 1).
        current: The current window's proportion per bin, same bins.
        eps: What a zero proportion is replaced by.

    Raises:
        ValueError: Not 1-d, lengths differ, a negative proportion, a sum other than 1, or
            ``eps`` not positive.
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    r, c = _two_proportions(reference, current, "reference,current")
    r, c = np.where(r > 0, r, eps), np.where(c > 0, c, eps)
    return StatisticResult(float(np.sum((c - r) * np.log(c / r))))


def ks_2samp(a: ArrayLike, b: ArrayLike) -> StatisticResult:
    """Two-sample Kolmogorov-Smirnov test, two-sided.

    The statistic is the largest distance between the two empirical distribution functions. The
    p-value is exact for small samples and asymptotic for large ones (scipy's ``method="auto"``).

    Raises:
        ValueError: A sample empty, not 1-d, or holding NaN.
    """
    x, y = _sample(a, "a", finite=False), _sample(b, "b", finite=False)
    from scipy import stats as sps

    result = sps.ks_2samp(x, y, alternative="two-sided", method="auto")
    return StatisticResult(float(result.statistic), float(result.pvalue))


def wasserstein(
    reference: ArrayLike, current: ArrayLike, normalized: bool = False
) -> StatisticResult:
    """First Wasserstein (earth mover's) distance between two samples.

    Normalised, the distance is divided by the reference's population standard deviation
    (ddof 0), so a shift of the whole distribution by ``k`` standard deviations scores ``k``
    whatever the feature's unit. A constant reference has no spread to measure against: the
    normalised distance is then 0 if the current sample is the same constant, else infinite.

    Args:
        reference: The reference sample.
        current: The current sample.
        normalized: Divide by the reference's standard deviation.

    Raises:
        ValueError: A sample empty, not 1-d, or holding NaN or infinite values.
    """
    r, c = _sample(reference, "reference"), _sample(current, "current")
    from scipy import stats as sps

    distance = float(sps.wasserstein_distance(r, c))
    if not normalized:
        return StatisticResult(distance)
    scale = float(r.std())
    if scale == 0:
        return StatisticResult(0.0 if distance == 0 else math.inf)
    return StatisticResult(distance / scale)


def jensen_shannon(p: ArrayLike, q: ArrayLike, base: float | None = None) -> StatisticResult:
    """Jensen-Shannon distance: the square root of the Jensen-Shannon divergence.

    With ``m = (p + q) / 2`` the divergence is ``(KL(p||m) + KL(q||m)) / 2``, ``0 ln 0 = 0``.
    In natural log (the default) the distance lies in ``[0, sqrt(ln 2)]``; ``base=2`` puts it in
    ``[0, 1]``. It is a metric.

    Raises:
        ValueError: Not 1-d, lengths differ, a negative proportion, a sum other than 1, or a
            base that is not positive or is 1.
    """
    if base is not None and not (base > 0 and base != 1):
        raise ValueError(f"base must be positive and not 1, got {base}")
    a, b = _two_proportions(p, q, "p,q")
    m = (a + b) / 2

    def kl_to_m(x: np.ndarray) -> float:
        present = x > 0
        return float(np.sum(x[present] * np.log(x[present] / m[present])))

    divergence = max(0.0, (kl_to_m(a) + kl_to_m(b)) / 2)
    if base is not None:
        divergence /= math.log(base)
    return StatisticResult(math.sqrt(divergence))


def hellinger(p: ArrayLike, q: ArrayLike) -> StatisticResult:
    """Hellinger distance ``sqrt(sum((sqrt(p) - sqrt(q))^2) / 2)``, in ``[0, 1]``.

    Raises:
        ValueError: Not 1-d, lengths differ, a negative proportion or a sum other than 1.
    """
    a, b = _two_proportions(p, q, "p,q")
    return StatisticResult(float(np.sqrt(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) / 2)))


def _aligned_counts(reference: Counts, current: Counts) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(reference, Mapping) != isinstance(current, Mapping):
        raise ValueError("give both counts as mappings (category -> count) or both as arrays")
    if isinstance(reference, Mapping) and isinstance(current, Mapping):
        categories = list(dict.fromkeys([*reference, *current]))
        r = np.array([reference.get(k, 0) for k in categories], dtype=float)
        c = np.array([current.get(k, 0) for k in categories], dtype=float)
    else:
        r, c = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
        if r.ndim != 1 or r.shape != c.shape:
            raise ValueError(
                f"reference and current counts need one count per category, aligned: "
                f"shapes {r.shape} and {c.shape}"
            )
    for counts, what in ((r, "reference"), (c, "current")):
        if not np.isfinite(counts).all() or (counts < 0).any():
            raise ValueError(f"{what} counts must be finite and non-negative")
        if counts.sum() == 0:
            raise ValueError(f"{what} counts are empty: no observations")
    return r, c


def chi2_2samp(reference_counts: Counts, current_counts: Counts) -> StatisticResult:
    """Two-sample chi-square test that two samples share one categorical distribution.

    Pearson's test of homogeneity on the 2 x k contingency table (reference, current) over the
    union of the categories, both samples random: unlike a goodness of fit to the reference's
    proportions it does not take the reference as exact. Categories absent from both are
    dropped; if one category is left, the statistic is 0 with p-value 1 (0 degrees of
    freedom). No continuity correction, for 2 categories either, so the statistic is the same
    Pearson X^2 for every table (Yates' correction only makes the 2 x 2 test conservative). The
    chi-square approximation wants expected counts of about 5 or more.

    Args:
        reference_counts: Counts per category: a mapping category -> count (categories missing
            from one mapping count 0 there), or an array aligned with ``current_counts``.
        current_counts: The current window's counts, in the same form.

    Raises:
        ValueError: Mixed forms, arrays of different shapes, a negative or non-finite count, or
            a sample without observations.
    """
    r, c = _aligned_counts(reference_counts, current_counts)
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    df = table.shape[1] - 1
    if df == 0:
        return StatisticResult(0.0, 1.0, 0.0)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    from scipy import stats as sps

    return StatisticResult(statistic, float(sps.chi2.sf(statistic, df)), float(df))


def _rows(values: npt.ArrayLike, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{what} must be 1-d or 2-d (rows x features) with at least 2 rows")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} holds NaN or infinite values")
    return x


def mmd(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    max_rows: int = 1000,
    permutations: int = 500,
    bandwidth: float | None = None,
    seed: int = 0,
) -> MmdResult:
    """Maximum mean discrepancy of two multivariate samples, with a permutation test.

    Gaussian kernel ``exp(-|x - y|^2 / (2 bandwidth^2))``, the bandwidth by default the median
    distance between the pooled rows (the median heuristic; 1 when that median is 0). Each
    sample is first reduced to at most ``max_rows`` rows drawn without replacement, so the cost
    is bounded whatever the sizes. The statistic is the unbiased MMD^2; its p-value compares
    it with its values under ``permutations`` random relabellings of the pooled rows. Columns
    are used as given: standardise them first if their units differ. Seeded: the same inputs
    and seed give the same result.

    Args:
        a: The reference sample, rows x features (a 1-d array is one feature).
        b: The current sample, with the same features.
        max_rows: The most rows used from each sample.
        permutations: How many relabellings the p-value is estimated from.
        bandwidth: The kernel's bandwidth; None for the median heuristic.
        seed: Seeds the row sample and the permutations.

    Raises:
        ValueError: Fewer than 2 rows, different feature counts, NaN or infinite values, or a
            parameter out of range.
    """
    if max_rows < 2 or permutations < 1 or (bandwidth is not None and not bandwidth > 0):
        raise ValueError("mmd needs max_rows >= 2, permutations >= 1 and a positive bandwidth")
    x, y = _rows(a, "a"), _rows(b, "b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"a has {x.shape[1]} features and b {y.shape[1]}: they must match")
    rng = np.random.default_rng(seed)
    if x.shape[0] > max_rows:
        x = x[rng.choice(x.shape[0], max_rows, replace=False)]
    if y.shape[0] > max_rows:
        y = y[rng.choice(y.shape[0], max_rows, replace=False)]
    m, n = x.shape[0], y.shape[0]
    pooled = np.vstack([x, y])
    squares = (pooled * pooled).sum(axis=1)
    distances = np.maximum(squares[:, None] + squares[None, :] - 2 * pooled @ pooled.T, 0.0)
    if bandwidth is None:
        median = float(np.sqrt(np.median(distances[np.triu_indices(m + n, k=1)])))
        bandwidth = median if median > 0 else 1.0
    kernel = np.exp(-distances / (2 * bandwidth * bandwidth))
    # Every labelling at once: column j of ``labels`` marks the rows labelled "a" in
    # relabelling j (column 0: the observed one). With s that indicator, row sums r and total
    # T: s'Ks sums k over a-a pairs, T - 2 s'r + s'Ks over b-b pairs, s'r - s'Ks over a-b.
    order = np.argsort(rng.random((permutations, m + n)), axis=1)
    labels = np.zeros((m + n, permutations + 1))
    labels[:m, 0] = 1.0
    np.put_along_axis(labels[:, 1:].T, order[:, :m], 1.0, axis=1)
    row_sums = kernel.sum(axis=1)
    within_a = np.einsum("ij,ij->j", labels, kernel @ labels)
    with_rows = row_sums @ labels
    within_b = kernel.sum() - 2 * with_rows + within_a
    between = with_rows - within_a
    # The diagonal (k(x, x) = 1) is left out of the within sums: the unbiased estimate.
    estimates = (
        (within_a - m) / (m * (m - 1)) + (within_b - n) / (n * (n - 1)) - 2 * between / (m * n)
    )
    observed = float(estimates[0])
    exceed = int(np.sum(estimates[1:] >= observed - 1e-12 * abs(observed)))
    return MmdResult(observed, (1 + exceed) / (1 + permutations), float(bandwidth))
