"""Window counts: a window's values over a profile's bins, which add up across windows.

Also what the profile and the counts share to read their JSON form back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

COUNTS_FORMAT = "modelport.drift.counts/1"


def check_counts(counts: tuple[int, ...], length: int, what: str) -> None:
    """Raise a ValueError unless there are ``length`` counts, each an int >= 0."""
    if len(counts) != length:
        raise ValueError(f"{what}: {len(counts)} counts for {length} bins")
    if any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in counts):
        raise ValueError(f"{what}: counts must be non-negative integers")


def read_field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """``data[key]``, which must be of type ``kind``, else a ValueError."""
    if key not in data:
        raise ValueError(f"{what}: {key!r} is missing")
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ValueError(f"{what}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def read_format(data: object, expected: str, what: str) -> Mapping[str, Any]:
    """``data``, if it is a mapping with the ``format`` expected, else a ValueError."""
    if not isinstance(data, Mapping) or data.get("format") != expected:
        raise ValueError(f"not {what}: expected a mapping with format {expected!r}")
    return data


@dataclass(frozen=True, slots=True)
class FeatureCounts:
    """One feature's counts in a window.

    Attributes:
        name: The feature.
        counts: Values per bin of the feature's profile (for a categorical feature, per
            category, then the "other" bucket).
        missing: Missing values (NaN, None, infinite numbers).
        out_of_range: Values outside the reference: numbers below its minimum or above its
            maximum, categories in the other bucket.
    """

    name: str
    counts: tuple[int, ...]
    missing: int
    out_of_range: int

    @property
    def total(self) -> int:
        """Values that are not missing."""
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """A window's counts over a profile's bins; windows add up (``a + b``, :meth:`merge`).

    Attributes:
        profile_key: The key of the profile the counts were made with.
        rows: The window's rows.
        features: One count per feature, in the profile's order.
    """

    profile_key: str
    rows: int
    features: tuple[FeatureCounts, ...]

    def __post_init__(self) -> None:
        if self.rows < 0:
            raise ValueError("a window's rows must be >= 0")
        for feature in self.features:
            check_counts(feature.counts, len(feature.counts), f"window feature {feature.name!r}")
            if feature.total + feature.missing != self.rows:
                raise ValueError(f"window feature {feature.name!r}: counts do not add up")
            if not 0 <= feature.out_of_range <= feature.total:
                raise ValueError(f"window feature {feature.name!r}: out_of_range out of range")

    def merge(self, *others: WindowCounts) -> WindowCounts:
        """The counts of this window and ``others`` together.

        Raises:
            ValueError: Counts made with another profile.
        """
        merged = self
        for other in others:
            if other.profile_key != self.profile_key:
                raise ValueError("cannot merge counts made with different profiles")
            features = tuple(
                FeatureCounts(
                    a.name,
                    tuple(x + y for x, y in zip(a.counts, b.counts, strict=True)),
                    a.missing + b.missing,
                    a.out_of_range + b.out_of_range,
                )
                for a, b in zip(merged.features, other.features, strict=True)
            )
            merged = WindowCounts(self.profile_key, merged.rows + other.rows, features)
        return merged

    def __add__(self, other: WindowCounts) -> WindowCounts:
        return self.merge(other)

    def to_dict(self) -> dict[str, Any]:
        """The counts as JSON-ready data (``WindowCounts.from_dict`` reads them back)."""
        return {
            "format": COUNTS_FORMAT,
            "profile": self.profile_key,
            "rows": self.rows,
            "features": [
                {
                    "name": f.name,
                    "counts": list(f.counts),
                    "missing": f.missing,
                    "out_of_range": f.out_of_range,
                }
                for f in self.features
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowCounts:
        """Read counts written by :meth:`to_dict`.

        Raises:
            ValueError: Not window counts, or a field missing, of the wrong type or
                inconsistent.
        """
        data = read_format(data, COUNTS_FORMAT, "drift window counts")
        features = []
        for item in read_field(data, "features", list, "counts"):
            if not isinstance(item, Mapping):
                raise ValueError("counts: each feature must be a mapping")
            name = read_field(item, "name", str, "counts feature")
            what = f"counts feature {name!r}"
            features.append(
                FeatureCounts(
                    name,
                    tuple(read_field(item, "counts", list, what)),
                    read_field(item, "missing", int, what),
                    read_field(item, "out_of_range", int, what),
                )
            )
        key, rows = (
            read_field(data, "profile", str, "counts"),
            read_field(data, "rows", int, "counts"),
        )
        return cls(key, rows, tuple(features))
