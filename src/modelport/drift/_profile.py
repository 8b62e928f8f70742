"""Reference profiles and the windows counted into their bins.

A :class:`Profile` is what drift is measured against, built once from the reference data; a
window of served rows is reduced to :class:`WindowCounts` over the profile's bins, counts that
add up across workers, replicas and time, so that scoring a window never rereads its rows.
Both turn into JSON-ready dicts (``to_dict``) and back (``from_dict``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, TypeAlias

import numpy as np

from modelport.drift._counts import (
    FeatureCounts,
    WindowCounts,
    check_counts,
    read_field,
    read_format,
)
from modelport.drift._data import (
    Category,
    Data,
    check_names,
    columns,
    count_categories,
    looks_numeric,
    to_float,
)

PROFILE_FORMAT = "modelport.drift.profile/1"


class _Counted:
    """What both kinds of feature profile share: counts per bin (or category, then other)."""

    __slots__ = ()
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        """The reference's values that are not missing."""
        return sum(self.counts)

    @property
    def proportions(self) -> tuple[float, ...]:
        """The reference's share of values per bin (or category, then the other bucket)."""
        return tuple(c / self.total for c in self.counts)


@dataclass(frozen=True, slots=True)
class NumericProfile(_Counted):
    """A numeric feature of the reference.

    Bin ``i`` holds the values ``x`` with ``edges[i - 1] < x <= edges[i]``; the first and last
    bins are open-ended, so every number falls in one.

    Attributes:
        name: The feature.
        edges: The inner bin edges: the reference's quantiles (values of the reference, the
            inverse of its distribution function), increasing, duplicates merged.
        counts: The reference's values per bin (one more than the edges).
        missing: The reference's missing values (NaN, None, infinite numbers).
        min: The reference's smallest value.
        max: The reference's largest value.
    """

    kind: ClassVar[Literal["numeric"]] = "numeric"
    name: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    missing: int
    min: float
    max: float
    _edges: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        what = f"numeric feature {self.name!r}"
        edges = np.asarray(self.edges, dtype=float)
        if not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
            raise ValueError(f"{what}: edges must be finite and increasing")
        check_counts(self.counts, edges.size + 1, what)
        if sum(self.counts) == 0 or self.missing < 0:
            raise ValueError(f"{what}: the reference needs values, and missing >= 0")
        if not (math.isfinite(self.min) and math.isfinite(self.max) and self.min <= self.max):
            raise ValueError(f"{what}: min and max must be finite, min <= max")
        object.__setattr__(self, "_edges", edges)

    def count(self, values: np.ndarray) -> FeatureCounts:
        """Count a window's values of this feature into the reference's bins."""
        x = to_float(values, self.name)
        finite = np.isfinite(x)
        if not finite.all():
            x = x[finite]
        counts = np.bincount(
            np.searchsorted(self._edges, x, side="left"), minlength=len(self.counts)
        )
        outside = int(np.count_nonzero(x < self.min) + np.count_nonzero(x > self.max))
        return FeatureCounts(self.name, tuple(counts.tolist()), values.size - x.size, outside)

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready data."""
        return {
            "name": self.name,
            "kind": self.kind,
            "edges": list(self.edges),
            "counts": list(self.counts),
            "missing": self.missing,
            "min": self.min,
            "max": self.max,
        }


@dataclass(frozen=True, slots=True)
class CategoricalProfile(_Counted):
    """A categorical feature of the reference.

    Attributes:
        name: The feature.
        categories: The reference's categories, the most frequent first.
        counts: The reference's values per category, then the "other" bucket (one more than
            the categories): what the profile does not keep (beyond ``max_categories``), and
            in a window every category the reference did not have.
        missing: The reference's missing values (None, NaN).
    """

    kind: ClassVar[Literal["categorical"]] = "categorical"
    name: str
    categories: tuple[Category, ...]
    counts: tuple[int, ...]
    missing: int
    _index: dict[Category, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        what = f"categorical feature {self.name!r}"
        for value in self.categories:
            if not isinstance(value, str | int | float) or (
                isinstance(value, float) and not math.isfinite(value)
            ):
                raise ValueError(f"{what}: category {value!r} is not a str, int, bool or float")
        index = {value: i for i, value in enumerate(self.categories)}
        if len(index) != len(self.categories):
            raise ValueError(f"{what}: categories must be distinct")
        check_counts(self.counts, len(self.categories) + 1, what)
        if sum(self.counts) == 0 or self.missing < 0:
            raise ValueError(f"{what}: the reference needs values, and missing >= 0")
        object.__setattr__(self, "_index", index)

    def count(self, values: np.ndarray) -> FeatureCounts:
        """Count a window's values of this feature into the reference's categories."""
        found, missing = count_categories(values, self.name)
        other = len(self.categories)
        counts = [0] * (other + 1)
        for value, n in found.items():
            counts[self._index.get(value, other)] += n
        return FeatureCounts(self.name, tuple(counts), missing, counts[other])

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready data."""
        return {
            "name": self.name,
            "kind": self.kind,
            "categories": list(self.categories),
            "counts": list(self.counts),
            "missing": self.missing,
        }


FeatureProfile: TypeAlias = NumericProfile | CategoricalProfile


@dataclass(frozen=True, slots=True)
class Profile:
    """A reference profile: per feature its bins or categories, counts and missing values.

    Attributes:
        rows: The reference's rows.
        features: One profile per feature, in the reference's column order.
    """

    rows: int
    features: tuple[FeatureProfile, ...]
    _key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [feature.name for feature in self.features]
        if not names or len(set(names)) != len(names):
            raise ValueError("a profile needs features, with distinct names")
        for feature in self.features:
            if feature.total + feature.missing != self.rows:
                raise ValueError(f"feature {feature.name!r}: counts do not add up to the rows")
        digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode())
        object.__setattr__(self, "_key", digest.hexdigest()[:16])

    @property
    def key(self) -> str:
        """A digest of the profile, carried by the counts made with it."""
        return self._key

    @property
    def names(self) -> tuple[str, ...]:
        """The features' names."""
        return tuple(feature.name for feature in self.features)

    @property
    def categorical(self) -> tuple[str, ...]:
        """The categorical features' names."""
        return tuple(f.name for f in self.features if isinstance(f, CategoricalProfile))

    def __getitem__(self, name: str) -> FeatureProfile:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def count(self, data: Data) -> WindowCounts:
        """Count a window of rows into the profile's bins.

        Args:
            data: The window: a DataFrame or a mapping of name -> values, with exactly the
                profile's features. It may have no rows.

        Raises:
            ValueError: Other features than the profile's, or values that do not fit a feature
                (text in a numeric feature...).
        """
        arrays = columns(data, "the window")
        check_names(self.names, arrays, "the window")
        rows = len(next(iter(arrays.values())))
        return WindowCounts(self.key, rows, tuple(f.count(arrays[f.name]) for f in self.features))

    def rebased(self, window: WindowCounts) -> Profile:
        """A window as a reference: these bins and categories, the window's counts.

        To compare a window with the one before it (:func:`~modelport.drift.compare_windows`).
        The value range (what is out of range) stays the reference's.

        Raises:
            ValueError: Counts made with another profile, or a feature without a value in the
                window (it cannot be a reference).
        """
        if window.profile_key != self.key:
            raise ValueError("the window was counted with another profile")
        features: list[FeatureProfile] = []
        for feature, counted in zip(self.features, window.features, strict=True):
            if counted.total == 0:
                raise ValueError(f"feature {feature.name!r} has no value in the window")
            features.append(replace(feature, counts=counted.counts, missing=counted.missing))
        return Profile(window.rows, tuple(features))

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready data (``Profile.from_dict`` reads it back)."""
        features = [feature.to_dict() for feature in self.features]
        return {"format": PROFILE_FORMAT, "rows": self.rows, "features": features}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Read a profile written by :meth:`to_dict`.

        Raises:
            ValueError: Not a profile, or a field missing, of the wrong type or inconsistent.
        """
        data = read_format(data, PROFILE_FORMAT, "a drift profile")
        features: list[FeatureProfile] = []
        for item in read_field(data, "features", list, "profile"):
            if not isinstance(item, Mapping):
                raise ValueError("profile: each feature must be a mapping")
            name = read_field(item, "name", str, "profile feature")
            what = f"profile feature {name!r}"
            counts = tuple(read_field(item, "counts", list, what))
            missing = read_field(item, "missing", int, what)
            kind = item.get("kind")
            if kind == "numeric":
                edges = tuple(float(e) for e in read_field(item, "edges", list, what))
                low = float(read_field(item, "min", (int, float), what))
                high = float(read_field(item, "max", (int, float), what))
                features.append(NumericProfile(name, edges, counts, missing, low, high))
            elif kind == "categorical":
                categories = tuple(read_field(item, "categories", list, what))
                features.append(CategoricalProfile(name, categories, counts, missing))
            else:
                raise ValueError(f"{what}: kind must be 'numeric' or 'categorical'")
        return cls(read_field(data, "rows", int, "profile"), tuple(features))


def _numeric(name: str, values: np.ndarray, bins: int) -> NumericProfile:
    x = to_float(values, name)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ValueError(f"feature {name!r} has no values in the reference (all missing)")
    # Quantiles that are values of the reference (the inverse of its distribution function), so
    # that a discrete feature gets no bin between two of its values that holds none of them.
    edges = np.unique(np.quantile(x, np.arange(1, bins) / bins, method="inverted_cdf"))
    counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
    return NumericProfile(
        name,
        tuple(edges.tolist()),
        tuple(counts.tolist()),
        values.size - x.size,
        float(x.min()),
        float(x.max()),
    )


def _categorical(name: str, values: np.ndarray, max_categories: int) -> CategoricalProfile:
    found, missing = count_categories(values, name)
    if not found:
        raise ValueError(f"feature {name!r} has no values in the reference (all missing)")
    # Most frequent first; ties in a fixed order whatever the rows' order.
    ranked = sorted(found.items(), key=lambda kv: (-kv[1], type(kv[0]).__name__, str(kv[0])))
    kept, rest = ranked[:max_categories], ranked[max_categories:]
    counts = (*(n for _, n in kept), sum(n for _, n in rest))
    return CategoricalProfile(name, tuple(value for value, _ in kept), counts, missing)


def profile(
    data: Data,
    categorical: Collection[str] | None = None,
    bins: int = 10,
    max_categories: int = 50,
) -> Profile:
    """Profile reference data: what windows are later counted into and compared with.

    A numeric feature gets ``bins`` bins at the reference's quantiles (deciles by default;
    bins merge where quantiles coincide), its counts per bin, missing values and range. A
    categorical feature keeps its ``max_categories`` most frequent categories and their counts,
    the rest in an "other" bucket. Missing values are NaN, None and, in a numeric feature,
    infinite numbers (pandas' NA and NaT too). A model's prediction is just another feature.

    Args:
        data: The reference: a pandas DataFrame or a mapping of feature name -> values.
        categorical: The names of the categorical features. Features not named are numeric
            if their values are numbers (integers included), categorical otherwise (text,
            booleans).
        bins: Bins per numeric feature, at least 2.
        max_categories: The most categories kept per categorical feature, at least 1.

    Raises:
        ValueError: Bad data (see :meth:`Profile.count`), no rows, a feature with no values,
            ``categorical`` naming an unknown feature, or ``bins`` or ``max_categories`` out of
            range.
    """
    if bins < 2 or max_categories < 1:
        raise ValueError("bins must be >= 2 and max_categories >= 1")
    arrays = columns(data, "the reference")
    declared = set(categorical or ())
    if unknown := sorted(declared - set(arrays)):
        raise ValueError(f"categorical names unknown features {unknown}")
    rows = len(next(iter(arrays.values())))
    if rows == 0:
        raise ValueError("the reference has no rows")
    features: Iterable[FeatureProfile] = (
        _numeric(name, values, bins)
        if name not in declared and looks_numeric(values, name)
        else _categorical(name, values, max_categories)
        for name, values in arrays.items()
    )
    return Profile(rows, tuple(features))
