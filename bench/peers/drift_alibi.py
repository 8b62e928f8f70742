"""Alibi Detect's TabularDrift on one size of the benchmark's windows (its own venv).

``TabularDrift(x_ref, categories_per_feature={...: None})`` with its defaults: a KS test per
numeric feature, a chi-square test per categorical one, p_val 0.05 with the Bonferroni
correction. It takes one numeric matrix, so the categorical columns become integer codes (the
reference's categories; a missing value, c2's None, is code -1, a category of its own), in the
timed part for a window; NaN stays NaN (x3), as the detector is given it. The detector, made
once with the reference matrix, is ``setup_s``. A feature's verdict is its p-value below the
corrected level that ``predict`` reports (``data["threshold"]``, 0.05 / 20): the per-feature
side of its default batch verdict, which is "any feature below it".
"""

from __future__ import annotations

import warnings
from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd
from drift_common import CATEGORICAL, FEATURES, NUMERIC, Verdicts, arguments, run

warnings.filterwarnings("ignore")
from alibi_detect.cd import TabularDrift  # noqa: E402  (its import warns about extras)


def main() -> None:
    args = arguments()
    categories: dict[str, list[str]] = {}

    def matrix(frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(FEATURES)))
        for j, name in enumerate(NUMERIC):
            out[:, j] = frame[name].to_numpy(dtype=float)
        for j, name in enumerate(CATEGORICAL, start=len(NUMERIC)):
            out[:, j] = pd.Categorical(frame[name], categories=categories[name]).codes
        return out

    def prepare(reference: pd.DataFrame) -> Any:
        for name in CATEGORICAL:
            categories[name] = sorted(reference[name].dropna().unique())
        cat = {FEATURES.index(name): None for name in CATEGORICAL}
        return TabularDrift(matrix(reference), categories_per_feature=cat)

    def score(detector: Any, window: pd.DataFrame) -> Verdicts:
        data = detector.predict(matrix(window))["data"]
        level = data["threshold"]
        return {
            name: (bool(p < level), float(p), "chi2" if name in CATEGORICAL else "ks")
            for name, p in zip(FEATURES, data["p_val"], strict=True)
        }

    run("alibi-detect", version("alibi-detect"), "pandas", prepare, score, args)


if __name__ == "__main__":
    main()
