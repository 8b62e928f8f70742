"""The issue's synthetic data: 20 features (15 numeric, 5 categorical), shifted or not."""

from __future__ import annotations

import math

import numpy as np

NUMERIC = 15
# (levels, shape) of the 5 categorical features; their frequencies are not uniform, so that
# mixing them with their reverse order changes them.
CATEGORICAL = ((3, "harmonic"), (4, "geometric"), (5, "linear"), (6, "harmonic"), (8, "geometric"))
SHIFTED_NUMERIC = ("x0", "x5", "x12")
SHIFTED_CATEGORICAL = "c0"


def frequencies(levels: int, shape: str) -> np.ndarray:
    if shape == "harmonic":
        p = 1 / np.arange(1, levels + 1)
    elif shape == "geometric":
        p = 0.6 ** np.arange(levels)
    else:
        p = np.arange(levels, 0, -1).astype(float)
    return p / p.sum()


def _numeric(rng: np.random.Generator, j: int, rows: int) -> tuple[np.ndarray, float]:
    """Feature j's values and its population standard deviation."""
    if j < 10:  # normals of assorted location and scale
        scale = 0.5 + j
        return rng.normal(10.0 * j - 30.0, scale, size=rows), scale
    if j < 13:  # skewed: lognormal(0, 0.5)
        return rng.lognormal(0.0, 0.5, size=rows), math.sqrt((math.e**0.25 - 1) * math.e**0.25)
    return rng.gamma(4.0, 1.0, size=rows), 2.0  # gamma(4): sd 2


def make(
    rng: np.random.Generator,
    rows: int,
    shift: float = 0.0,
    mix: float = 0.0,
    shifted: tuple[str, ...] | None = None,
) -> dict[str, np.ndarray]:
    """Rows of the 20 features: numeric ones in ``shifted`` moved by ``shift`` sd, categorical
    ones in ``shifted`` drawn from their frequencies mixed ``mix`` with their reverse order
    (``shifted`` None: every feature). Feature x3 has 1% NaN, c2 1% None."""
    data: dict[str, np.ndarray] = {}
    for j in range(NUMERIC):
        name = f"x{j}"
        values, sd = _numeric(rng, j, rows)
        if shifted is None or name in shifted:
            values = values + shift * sd
        data[name] = values
    data["x3"][rng.random(rows) < 0.01] = np.nan
    for j, (levels, shape) in enumerate(CATEGORICAL):
        name = f"c{j}"
        p = frequencies(levels, shape)
        if shifted is None or name in shifted:
            p = (1 - mix) * p + mix * p[::-1]
        labels = np.array([f"{name}_{i}" for i in range(levels)])
        data[name] = labels[rng.choice(levels, size=rows, p=p)]
    data["c2"] = data["c2"].astype(object)
    data["c2"][rng.random(rows) < 0.01] = None
    return data
