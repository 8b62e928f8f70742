"""modelport.drift's statistics against scipy and hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial import distance

from modelport import drift


def _proportions(rng: np.random.Generator, k: int, zeros: bool = False) -> np.ndarray:
    p = rng.dirichlet(np.ones(k))
    if zeros:
        p[rng.random(k) < 0.3] = 0
        p = p / p.sum() if p.sum() > 0 else np.eye(k)[0]
    return p


def test_psi_is_the_symmetrised_kullback_leibler_divergence() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert drift.psi([0.5, 0.5], [0.25, 0.75]).statistic == pytest.approx(expected)
    rng = np.random.default_rng(1)
    for _ in range(50):
        r, c = _proportions(rng, 10), _proportions(rng, 10)
        result = drift.psi(r, c)
        assert result.statistic == pytest.approx(sps.entropy(c, r) + sps.entropy(r, c))
        assert result.p_value is None
    assert drift.psi(r, r).statistic == 0.0


def test_psi_replaces_zero_proportions_by_eps_without_renormalising() -> None:
    # A bin empty in both adds nothing; one empty in the reference adds (c - eps) ln(c / eps).
    result = drift.psi([0.5, 0.5, 0.0, 0.0], [0.5, 0.4, 0.1, 0.0], eps=1e-4)
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert result.statistic == pytest.approx(expected)
    assert drift.psi([1.0, 0.0], [0.0, 1.0], eps=1e-3).statistic == pytest.approx(
        2 * (1 - 1e-3) * math.log(1 / 1e-3)
    )


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        ([0.5, 0.5], [0.3, 0.3, 0.4], "same bins"),
        ([1.2, -0.2], [0.5, 0.5], "non-negative"),
        ([0.5, 0.4], [0.5, 0.5], "sums to 0.9"),
        ([], [], "non-empty"),
        ([[0.5, 0.5]], [[0.5, 0.5]], "1-d"),
        ([0.5, math.nan], [0.5, 0.5], "finite"),
    ],
)
def test_proportions_are_checked(
    reference: list[float], current: list[float], message: str
) -> None:
    for function in (drift.psi, drift.jensen_shannon, drift.hellinger):
        with pytest.raises(ValueError, match=message):
            function(reference, current)
    with pytest.raises(ValueError, match="eps must be positive"):
        drift.psi([1.0], [1.0], eps=0)


def test_ks_matches_scipy_exact_and_asymptotic() -> None:
    a, b = [1.1, 2.3, 3.5, 0.2], [4.2, 5.0, 0.1, 6.1, 7.7]
    ours, ref = drift.ks_2samp(a, b), sps.ks_2samp(a, b, method="exact")
    assert (ours.statistic, ours.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    rng = np.random.default_rng(2)
    for size in (30, 500, 20_000):
        x, y = rng.normal(size=size), rng.normal(0.1, size=size + 7)
        ours, ref = drift.ks_2samp(x, y), sps.ks_2samp(x, y, method="auto")
        assert (ours.statistic, ours.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    with pytest.raises(ValueError, match="non-empty"):
        drift.ks_2samp([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        drift.ks_2samp([1.0, math.nan], [1.0])


def test_wasserstein_matches_scipy_and_normalises_by_the_reference_sd() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.normal(5, 3, size=rng.integers(2, 500))
        b = rng.gamma(2, 2, size=rng.integers(2, 500))
        raw = drift.wasserstein(a, b)
        assert raw.statistic == pytest.approx(sps.wasserstein_distance(a, b))
        normed = drift.wasserstein(a, b, normalized=True)
        assert normed.statistic == pytest.approx(raw.statistic / np.std(a))
    # A whole distribution moved by 0.2 sd scores 0.2, whatever the unit.
    x = rng.normal(100, 40, size=50_000)
    assert drift.wasserstein(x, x + 0.2 * 40, normalized=True).statistic == pytest.approx(
        0.2 / np.std(x) * 40
    )
    assert drift.wasserstein([2.0, 2.0], [2.0], normalized=True).statistic == 0.0
    assert drift.wasserstein([2.0, 2.0], [2.5], normalized=True).statistic == math.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        drift.wasserstein([1.0, math.inf], [1.0])
    with pytest.raises(ValueError, match="non-empty"):
        drift.wasserstein([1.0], [])


def test_jensen_shannon_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    for k in (2, 5, 30):
        for zeros in (False, True):
            p, q = _proportions(rng, k, zeros), _proportions(rng, k, zeros)
            ours = drift.jensen_shannon(p, q).statistic
            assert ours == pytest.approx(distance.jensenshannon(p, q), abs=1e-12)
            base2 = drift.jensen_shannon(p, q, base=2).statistic
            assert base2 == pytest.approx(distance.jensenshannon(p, q, base=2), abs=1e-12)
    assert drift.jensen_shannon([1, 0], [0, 1]).statistic == pytest.approx(math.sqrt(math.log(2)))
    assert drift.jensen_shannon([1, 0], [0, 1], base=2).statistic == pytest.approx(1.0)
    assert drift.jensen_shannon(p, p).statistic == 0.0
    with pytest.raises(ValueError, match="base"):
        drift.jensen_shannon(p, q, base=1)


def test_hellinger_against_its_two_forms() -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        p, q = _proportions(rng, 8, zeros=True), _proportions(rng, 8)
        ours = drift.hellinger(p, q).statistic
        assert ours == pytest.approx(distance.euclidean(np.sqrt(p), np.sqrt(q)) / math.sqrt(2))
        # 1 - H^2 is the Bhattacharyya coefficient.
        assert 1 - ours**2 == pytest.approx(np.sum(np.sqrt(p * q)))
    assert drift.hellinger([1, 0], [0, 1]).statistic == pytest.approx(1.0)
    assert drift.hellinger([0.2, 0.8], [0.2, 0.8]).statistic == 0.0


def test_chi2_2samp_is_the_contingency_test_without_correction() -> None:
    rng = np.random.default_rng(6)
    for k in (2, 3, 7):
        for _ in range(10):
            r = rng.integers(0, 500, size=k) + 1
            c = rng.integers(0, 80, size=k) + 1
            ours = drift.chi2_2samp(r, c)
            chi2, p, dof, _ = sps.chi2_contingency(np.vstack([r, c]), correction=False)
            assert (ours.statistic, ours.p_value, ours.df) == pytest.approx((chi2, p, dof))


def test_chi2_2samp_takes_the_union_of_categories_and_drops_empty_ones() -> None:
    reference = {"a": 120, "b": 60, "c": 20, "gone": 0}
    current = {"b": 30, "a": 50, "new": 5}
    ours = drift.chi2_2samp(reference, current)
    table = np.array([[120, 60, 20, 0], [50, 30, 0, 5]])  # a, b, c, new
    chi2, p, dof, _ = sps.chi2_contingency(table, correction=False)
    assert (ours.statistic, ours.p_value, ours.df) == pytest.approx((chi2, p, dof))
    # Arrays: a category empty in both is dropped, not counted as a degree of freedom.
    same = drift.chi2_2samp([120, 60, 20, 0, 0], [50, 30, 0, 5, 0])
    assert (same.statistic, same.df) == pytest.approx((chi2, dof))
    # The reference's counts are a sample too: not a goodness of fit to its proportions.
    fit = sps.chisquare([50, 30, 0], np.array([120, 60, 20]) / 200 * 80)
    assert drift.chi2_2samp([120, 60, 20], [50, 30, 0]).statistic < fit.statistic
    assert drift.chi2_2samp({"a": 3}, {"a": 9}) == drift.StatisticResult(0.0, 1.0, 0.0)


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        ({"a": 1}, [1], "mappings .category -> count. or both as arrays"),
        ([1, 2], [1, 2, 3], "aligned"),
        ([1, -2], [1, 2], "non-negative"),
        ([0, 0], [1, 2], "reference counts are empty"),
        ({"a": 1}, {}, "current counts are empty"),
    ],
)
def test_chi2_2samp_checks_its_counts(reference: object, current: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        drift.chi2_2samp(reference, current)  # type: ignore[arg-type]


def _naive_mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-distance.cdist(a, b, "sqeuclidean") / (2 * bandwidth**2))

    m, n = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * k(x, y).mean()
    )


def test_mmd_is_the_unbiased_estimate_with_the_median_bandwidth() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(60, 3)), rng.normal(0.5, size=(45, 3))
    result = drift.mmd(x, y, permutations=200)
    median = float(np.median(distance.pdist(np.vstack([x, y]))))
    assert result.bandwidth == pytest.approx(median)
    assert result.statistic == pytest.approx(_naive_mmd2(x, y, median))
    fixed = drift.mmd(x, y, bandwidth=2.0, permutations=10)
    assert fixed.statistic == pytest.approx(_naive_mmd2(x, y, 2.0))
    assert drift.mmd(x, y, permutations=200) == result  # seeded
    assert drift.mmd(x[:, 0], y[:, 0]).statistic == pytest.approx(
        _naive_mmd2(x[:, :1], y[:, :1], float(np.median(distance.pdist(np.vstack([x, y])[:, :1]))))
    )


def test_mmd_permutation_test_rejects_a_shift_and_not_the_null() -> None:
    rng = np.random.default_rng(8)
    reference = rng.normal(size=(5000, 4))  # reduced to 1,000 rows per side
    shifted = rng.normal(size=(3000, 4)) + np.array([0.0, 0.0, 0.3, 0.0])
    assert drift.mmd(reference, shifted).p_value < 0.01
    p_values = [drift.mmd(reference, rng.normal(size=(300, 4)), seed=s).p_value for s in range(20)]
    assert min(p_values) > 0.0 and sum(p < 0.05 for p in p_values) <= 3
    assert drift.mmd(reference, shifted, permutations=9).p_value >= 0.1  # (1 + 0) / (1 + 9)


def test_mmd_checks_its_input() -> None:
    with pytest.raises(ValueError, match="features"):
        drift.mmd(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        drift.mmd(np.zeros((1, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        drift.mmd([1.0, math.nan, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="max_rows"):
        drift.mmd([1.0, 2.0], [1.0, 2.0], permutations=0)
