"""Per-feature drift verdicts: an effect size over a threshold, and for small windows a test.

How the method is chosen, and why the thresholds are what they are, is in the package
docstring (:mod:`modelport.drift`).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from modelport.drift._counts import FeatureCounts, WindowCounts
from modelport.drift._data import Data, check_names, columns, to_float
from modelport.drift._profile import FeatureProfile, Profile, profile
from modelport.drift._statistics import chi2_2samp, jensen_shannon, ks_2samp, psi

PSI_THRESHOLD = 0.01
JS_THRESHOLD = 0.06
ALPHA = 0.05
# A window is small, and tested, while sampling noise alone could push its effect size over
# NOISE_SHARE of the threshold with probability 1 - NOISE_QUANTILE or more.
NOISE_QUANTILE = 0.999
NOISE_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's verdict.

    Attributes:
        name: The feature.
        kind: ``"numeric"`` or ``"categorical"``.
        method: The effect size: ``"psi"`` (numeric) or ``"jensen_shannon"`` (categorical),
            ``"none"`` when the window has no value of the feature (score NaN, not drifted).
        score: The effect size.
        threshold: The effect size above which the feature drifted.
        drifted: The verdict: the score above the threshold and, for a small window, the test
            significant.
        test: ``"ks"`` or ``"chi2"`` when the window was small enough to be tested, else None.
        p_value: The test's p-value, None when not tested.
        values: The window's values of the feature that are not missing.
        missing_rate: The window's share of missing values.
        reference_missing_rate: The reference's share, to compare with.
        out_of_range_rate: The share of the window's values outside the reference: numbers
            below its minimum or above its maximum, categories it did not have.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    method: Literal["psi", "jensen_shannon", "none"]
    score: float
    threshold: float
    drifted: bool
    test: Literal["ks", "chi2"] | None
    p_value: float | None
    values: int
    missing_rate: float
    reference_missing_rate: float
    out_of_range_rate: float


@dataclass(frozen=True, slots=True)
class DriftReport:
    """The verdicts on one window, one per feature in the reference's order.

    Attributes:
        features: The verdicts.
        reference_rows: The reference's rows.
        rows: The window's rows.
        test_level: The level each test is held to: alpha over the number of features.
    """

    features: tuple[FeatureDrift, ...]
    reference_rows: int
    rows: int
    test_level: float

    @property
    def drifted(self) -> tuple[str, ...]:
        """The names of the features that drifted."""
        return tuple(feature.name for feature in self.features if feature.drifted)

    def __getitem__(self, name: str) -> FeatureDrift:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (NaN scores where a feature had no values)."""
        return {
            "reference_rows": self.reference_rows,
            "rows": self.rows,
            "test_level": self.test_level,
            "features": [asdict(feature) for feature in self.features],
        }


def noise_floor(reference: np.ndarray, n: int, categorical: bool) -> float:
    """The effect size that sampling noise alone exceeds with probability 1 - NOISE_QUANTILE.

    With no drift, k cells with reference counts and a window of n values, ``sum((c - r)^2 /
    r)`` over the proportions is about chi-square(k - 1) times ``1/n + 1/N``; PSI is about that
    sum, the squared Jensen-Shannon distance about an eighth of it.
    """
    cells = max(int(np.count_nonzero(reference)) - 1, 1)
    from scipy import stats as sps

    spread = float(sps.chi2.ppf(NOISE_QUANTILE, cells)) * (1 / n + 1 / float(reference.sum()))
    return math.sqrt(spread / 8) if categorical else spread


def _test(
    feature: FeatureProfile,
    reference: np.ndarray,
    current: np.ndarray,
    raw: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[Literal["ks", "chi2"], float]:
    if raw is not None and feature.kind == "numeric":
        a, b = (to_float(values, feature.name) for values in raw)
        result = ks_2samp(a[np.isfinite(a)], b[np.isfinite(b)])
        test: Literal["ks", "chi2"] = "ks"
    else:
        result, test = chi2_2samp(reference, current), "chi2"
    return test, math.nan if result.p_value is None else result.p_value


def _verdict(
    feature: FeatureProfile,
    window: FeatureCounts,
    raw: tuple[np.ndarray, np.ndarray] | None,
    level: float,
    threshold: float,
    missing_rate: float,
) -> FeatureDrift:
    n = window.total
    reference_missing = feature.missing / (feature.total + feature.missing)
    if n == 0:
        return FeatureDrift(
            name=feature.name,
            kind=feature.kind,
            method="none",
            score=math.nan,
            threshold=threshold,
            drifted=False,
            test=None,
            p_value=None,
            values=0,
            missing_rate=missing_rate,
            reference_missing_rate=reference_missing,
            out_of_range_rate=0.0,
        )
    categorical = feature.kind == "categorical"
    reference = np.asarray(feature.counts, dtype=float)
    current = np.asarray(window.counts, dtype=float)
    r, c = reference / reference.sum(), current / n
    score = jensen_shannon(r, c).statistic if categorical else psi(r, c).statistic
    drifted = score > threshold
    test: Literal["ks", "chi2"] | None = None
    p_value = None
    if noise_floor(reference, n, categorical) > NOISE_SHARE * threshold:
        test, p_value = _test(feature, reference, current, raw)
        drifted = drifted and p_value < level
    return FeatureDrift(
        feature.name,
        feature.kind,
        "jensen_shannon" if categorical else "psi",
        score,
        threshold,
        bool(drifted),
        test,
        p_value,
        n,
        missing_rate,
        reference_missing,
        window.out_of_range / n,
    )


def detect(
    reference: Data | Profile,
    current: Data | WindowCounts,
    categorical: Collection[str] | None = None,
    *,
    alpha: float = ALPHA,
    psi_threshold: float = PSI_THRESHOLD,
    js_threshold: float = JS_THRESHOLD,
    bins: int = 10,
) -> DriftReport:
    """Whether each feature of a window drifted from the reference.

    A feature drifted when its effect size (PSI for numbers, Jensen-Shannon distance for
    categories) is above a fixed threshold, so that a shift too small to matter is not flagged
    however many rows there are; in a window small enough for noise alone to come near the
    threshold, its test must also be significant (alpha over the features). The package
    docstring gives the rule and how the thresholds were chosen.

    Args:
        reference: The reference rows (a DataFrame or a mapping of name -> values), or its
            :class:`Profile`.
        current: The window's rows, or its :class:`WindowCounts` (counted with the
            reference's profile).
        categorical: The categorical features, when the reference is rows (see
            :func:`profile`); with a profile, None or exactly its categorical features.
        alpha: The family-wise error rate of the tests of small windows.
        psi_threshold: The PSI above which a numeric feature drifted.
        js_threshold: The Jensen-Shannon distance above which a categorical feature drifted.
        bins: Bins per numeric feature, when the reference is rows.

    Raises:
        ValueError: The window has no rows, its features are not the reference's, counts made
            with another profile (or with rows as the reference), a parameter out of range, or
            bad data (see :func:`profile`).
    """
    if not 0 < alpha < 1 or not psi_threshold > 0 or not js_threshold > 0:
        raise ValueError("alpha must be in (0, 1) and the thresholds positive")
    reference_rows: dict[str, np.ndarray] | None = None
    if isinstance(reference, Profile):
        if categorical is not None and set(categorical) != set(reference.categorical):
            raise ValueError(
                f"categorical {sorted(categorical)} differs from the profile's "
                f"{sorted(reference.categorical)}"
            )
        reference_profile = reference
    else:
        reference_rows = columns(reference, "the reference")
        reference_profile = profile(reference_rows, categorical, bins)
    current_rows: dict[str, np.ndarray] | None = None
    if isinstance(current, WindowCounts):
        if current.profile_key != reference_profile.key:
            raise ValueError("the window was counted with another profile than the reference's")
        counts = current
    else:
        current_rows = columns(current, "the window")
        check_names(reference_profile.names, current_rows, "the window")
        counts = reference_profile.count(current_rows)
    if counts.rows == 0:
        raise ValueError("the window has no rows")
    level = alpha / len(reference_profile.features)
    verdicts = []
    for feature, window in zip(reference_profile.features, counts.features, strict=True):
        raw = None
        if reference_rows is not None and current_rows is not None:
            raw = reference_rows[feature.name], current_rows[feature.name]
        threshold = js_threshold if feature.kind == "categorical" else psi_threshold
        missing_rate = window.missing / counts.rows
        verdicts.append(_verdict(feature, window, raw, level, threshold, missing_rate))
    return DriftReport(tuple(verdicts), reference_profile.rows, counts.rows, level)


def compare_windows(
    reference: Profile,
    previous: WindowCounts,
    current: WindowCounts,
    *,
    alpha: float = ALPHA,
    psi_threshold: float = PSI_THRESHOLD,
    js_threshold: float = JS_THRESHOLD,
) -> DriftReport:
    """Whether each feature of ``current`` drifted from the window before it.

    Both windows are counts in ``reference``'s bins; ``previous`` becomes the reference
    (:meth:`Profile.rebased`), with the same rule and thresholds as :func:`detect`. It tells a
    sudden change apart from a slow one that the comparison with the reference cannot date.

    Raises:
        ValueError: Counts made with another profile, a window without rows, or a feature
            without a value in ``previous``.
    """
    if current.profile_key != reference.key:
        raise ValueError("the window was counted with another profile than the reference's")
    baseline = reference.rebased(previous)
    rekeyed = WindowCounts(baseline.key, current.rows, current.features)
    return detect(
        baseline,
        rekeyed,
        alpha=alpha,
        psi_threshold=psi_threshold,
        js_threshold=js_threshold,
    )
