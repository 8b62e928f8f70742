"""Drift: how far served data moved from a reference. Pure numpy and scipy.

Statistics, each returning a frozen :class:`StatisticResult` (``statistic``, and ``p_value``
for the tests) or :class:`MmdResult`:

- :func:`psi`: population stability index over the proportions of the same bins (Siddiqi,
  *Credit Risk Scorecards*, Wiley 2006; its sampling distribution: Yurdakul, *Statistical
  Properties of Population Stability Index*, Western Michigan University, 2018).
- :func:`ks_2samp`: two-sample Kolmogorov-Smirnov, exact p-value for small samples (scipy's;
  Hodges, Arkiv för Matematik 3, 1958).
- :func:`wasserstein`: first Wasserstein distance, optionally over the reference's standard
  deviation (Ramdas, García Trillos and Cuturi, "On Wasserstein two-sample testing", Entropy
  19, 2017).
- :func:`jensen_shannon`: Jensen-Shannon distance (Lin, IEEE Trans. Inf. Theory 37, 1991; the
  square root is a metric: Endres and Schindelin, IEEE Trans. Inf. Theory 49, 2003).
- :func:`hellinger`: Hellinger distance (Hellinger, J. reine angew. Math. 136, 1909).
- :func:`chi2_2samp`: two-sample chi-square test of homogeneity over the union of categories
  (Agresti, *Categorical Data Analysis*, 3rd ed., Wiley 2013, section 3.2).
- :func:`mmd`: maximum mean discrepancy of multivariate samples, Gaussian kernel with the
  median heuristic, permutation test on a bounded sample (Gretton, Borgwardt, Rasch, Schölkopf
  and Smola, "A kernel two-sample test", JMLR 13, 2012).

Profiles and windows: :func:`profile` reduces reference data to a :class:`Profile` (per numeric
feature the reference's decile bins, per categorical one its category counts, missing values
and range); ``Profile.count(rows)`` reduces a window to :class:`WindowCounts` over those bins,
which add up across workers, replicas and time, so a job never rereads rows. Both serialise to
JSON-ready dicts.

:func:`detect` gives each feature a :class:`FeatureDrift`: effect size, threshold, verdict,
missing and out-of-range rates. The rule, chosen so that verdicts do not flip with volume:

- The effect size is PSI over the reference's decile bins for a numeric feature, the
  Jensen-Shannon distance (natural log) over its categories for a categorical one; a feature
  drifted when it is above the threshold.
- Sampling noise inflates both: with no drift and k cells they are about ``chi2(k - 1) * (1/n +
  1/N)`` (PSI) and the square root of an eighth of that (squared Jensen-Shannon distance), for
  n window and N reference values. While the 99.9th percentile of that noise is above half the
  threshold, the window is small: its verdict also needs a test (KS on rows for numeric
  features, else the chi-square over the bins or categories) significant at alpha (0.05) over
  the number of features (Bonferroni; univariate tests with Bonferroni are a strong baseline:
  Rabanser, Günnemann and Lipton, "Failing loudly", NeurIPS 2019). With a 100,000-row
  reference, numeric features are tested up to about 5,900 window rows, categorical ones up to
  2,000 (3 categories) to 3,500 (8); a small reference keeps every window tested.
- Above that the effect size alone decides: more rows only make it more precise, so a shift
  below the threshold stays unflagged at a million rows.

The thresholds come from the issue's synthetic data (``tests/unit/drift/synthetic.py``: 100,000
reference rows, 15 numeric and 5 categorical features; windows of 10,000 to 1,000,000 rows):

- ``PSI_THRESHOLD = 0.01``. Over deciles, a normal moved by 0.2 sd has PSI 0.038 and by 0.02 sd
  0.0004 (0.1 sd gives 0.01; the customary 0.1 needs 0.32 sd, so it misses the 0.2 sd shift).
  Measured: shifted features 0.030 at the least, unshifted and tiny-shifted 0.0034 at the
  most: 3x margins either side (skewed features score higher: lognormal 0.1 at 0.2 sd).
- ``JS_THRESHOLD = 0.06``. The test's categoricals (3 to 8 levels, uneven frequencies) mixed
  30% with their reverse order score 0.088 to 0.23 (0.094 measured at the least, for 3
  levels), mixed 2% 0.006 to 0.026 (0.036 measured at the most, with noise): about 1.6x either
  side, the narrowest margin here; 5 harmonic levels reach 0.06 at a 14% mix.

Small windows are tests, and a test flags a real change when it can: with the tiny shift, 12
of 70 windows of 1,000 rows had a flag in our measurements (identical data: the 5% the tests
allow), 2 of 40 at 2,000 rows, none of 70 at 3,000 rows or more.

scipy is imported by the functions that use it, so neither ``import modelport`` nor
``import modelport.drift`` (for a profile's bins or window counts) loads it.
"""

from __future__ import annotations

from modelport.drift._counts import FeatureCounts, WindowCounts
from modelport.drift._detect import (
    JS_THRESHOLD,
    PSI_THRESHOLD,
    DriftReport,
    FeatureDrift,
    compare_windows,
    detect,
)
from modelport.drift._features import OUTPUT_PREFIX, feature_columns
from modelport.drift._profile import CategoricalProfile, NumericProfile, Profile, profile
from modelport.drift._statistics import (
    MmdResult,
    StatisticResult,
    chi2_2samp,
    hellinger,
    jensen_shannon,
    ks_2samp,
    mmd,
    psi,
    wasserstein,
)

__all__ = [
    "JS_THRESHOLD",
    "OUTPUT_PREFIX",
    "PSI_THRESHOLD",
    "CategoricalProfile",
    "DriftReport",
    "FeatureCounts",
    "FeatureDrift",
    "MmdResult",
    "NumericProfile",
    "Profile",
    "StatisticResult",
    "WindowCounts",
    "chi2_2samp",
    "compare_windows",
    "detect",
    "feature_columns",
    "hellinger",
    "jensen_shannon",
    "ks_2samp",
    "mmd",
    "profile",
    "psi",
    "wasserstein",
]
