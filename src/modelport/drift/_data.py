"""What the drift functions take as data: a DataFrame or a mapping of name -> values.

pandas is not imported: a DataFrame is read through ``columns`` and ``frame[name]``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

Category: TypeAlias = str | int | float | bool


class FrameLike(Protocol):
    """A pandas DataFrame, as far as the drift functions read one."""

    @property
    def columns(self) -> Iterable[Any]:
        """The column names."""

    def __getitem__(self, key: Any, /) -> Any:
        """One column's values."""


Data: TypeAlias = Mapping[str, npt.ArrayLike | Sequence[object]] | FrameLike

# pandas' missing markers, recognised by name so that pandas need not be imported.
_PANDAS_MISSING = frozenset({"NAType", "NaTType"})


def columns(data: Data, what: str) -> dict[str, np.ndarray]:
    """The features of ``data`` as 1-d numpy arrays of one length.

    Raises:
        ValueError: Not a DataFrame or mapping, no features, a name that is not a string, a
            column that is not 1-d, or columns of different lengths.
    """
    if isinstance(data, Mapping):
        items = list(data.items())
    elif hasattr(data, "columns"):
        items = [(name, data[name]) for name in data.columns]
    else:
        raise ValueError(
            f"{what} must be a pandas DataFrame or a mapping of feature name -> values, "
            f"got {type(data).__name__}"
        )
    if not items:
        raise ValueError(f"{what} has no features")
    arrays: dict[str, np.ndarray] = {}
    for name, values in items:
        if not isinstance(name, str):
            raise ValueError(f"{what}: feature names must be strings, got {name!r}")
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"{what}: feature {name!r} must be 1-d, got shape {array.shape}")
        arrays[name] = array
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{what}: the features have different lengths {lengths}")
    return arrays


def check_names(expected: Iterable[str], given: Iterable[str], what: str) -> None:
    """Raise a ValueError naming the features one side has and the other lacks."""
    want, have = list(expected), set(given)
    unknown = sorted(have - set(want))
    absent = [name for name in want if name not in have]
    if unknown or absent:
        parts = [f"unknown features {unknown}"] if unknown else []
        parts += [f"missing features {absent}"] if absent else []
        raise ValueError(f"{what} does not match the reference: {'; '.join(parts)}")


def is_missing(value: object) -> bool:
    """Whether one categorical value is missing: None, NaN, or pandas' NA and NaT."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in _PANDAS_MISSING


def looks_numeric(values: np.ndarray, name: str) -> bool:
    """Whether a feature is numeric when the caller did not say it is categorical.

    Integers and floats are numeric; booleans and strings categorical; an object array is
    numeric when every value that is not missing is a number (pandas' nullable integers).

    Raises:
        ValueError: Dates, durations, complex numbers or other types a profile cannot hold.
    """
    kind = values.dtype.kind
    if kind in "iuf":
        return True
    if kind in "bUS":
        return False
    if kind == "O":
        present = [v for v in values.tolist() if not is_missing(v)]
        return bool(present) and all(
            isinstance(v, int | float | np.integer | np.floating)
            and not isinstance(v, bool | np.bool_)
            for v in present
        )
    raise ValueError(
        f"feature {name!r} has values of type {values.dtype}: convert them to numbers or strings"
    )


def to_float(values: np.ndarray, name: str) -> np.ndarray:
    """A numeric feature's values as floats, missing values as NaN.

    Raises:
        ValueError: A value that is not a number.
    """
    if values.dtype.kind in "biuf":
        return values.astype(float, copy=False)
    if values.dtype.kind == "O":
        cleaned = [math.nan if is_missing(v) else v for v in values.tolist()]
        try:
            return np.asarray(cleaned, dtype=float)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"feature {name!r} is numeric in the reference but holds non-numbers")


def count_categories(values: np.ndarray, name: str) -> tuple[dict[Category, int], int]:
    """How often each value occurs, and how many are missing.

    Raises:
        ValueError: A value a category cannot be (only str, int, float and bool can).
    """
    kind = values.dtype.kind
    missing = 0
    if kind == "f":
        nan = np.isnan(values)
        missing = int(nan.sum())
        values = values[~nan]
    if kind in "biufU":
        uniques, counts = np.unique(values, return_counts=True)
        return dict(zip(uniques.tolist(), counts.tolist(), strict=True)), missing
    if kind != "O":
        raise ValueError(
            f"feature {name!r} has values of type {values.dtype}: categories must be "
            "str, int, float or bool"
        )
    found: dict[Category, int] = {}
    for value, count in Counter(values.tolist()).items():
        if is_missing(value):
            missing += count
        elif isinstance(value, str | int | float):  # bool is an int
            found[value] = found.get(value, 0) + count
        else:
            raise ValueError(
                f"feature {name!r} holds {value!r} ({type(value).__name__}): categories must "
                "be str, int, float or bool"
            )
    return found, missing
