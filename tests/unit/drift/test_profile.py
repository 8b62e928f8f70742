"""Reference profiles, windows counted into them, and their JSON form."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from modelport import drift


class Frame:
    """What the drift functions read of a pandas DataFrame (pandas is not a dependency)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def columns(self) -> list[str]:
        return list(self._data)

    def __getitem__(self, name: str) -> Any:
        return self._data[name]


class NAType:
    """Named as pandas' missing marker is."""


def test_numeric_features_get_the_reference_deciles() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(3, 2, size=10_000)
    feature = drift.profile({"x": x})["x"]
    assert isinstance(feature, drift.NumericProfile)
    assert feature.edges == tuple(np.quantile(x, np.arange(1, 10) / 10, method="inverted_cdf"))
    assert feature.counts == (1000,) * 10
    assert sum(feature.proportions) == pytest.approx(1.0)
    assert (feature.min, feature.max, feature.missing) == (x.min(), x.max(), 0)
    assert len(drift.profile({"x": x}, bins=4)["x"].counts) == 4


def test_bins_are_right_closed_open_ended_and_merge_where_quantiles_coincide() -> None:
    x = np.array([0.0] * 60 + [1.0, 2.0, 3.0, 4.0] * 10)
    feature = drift.profile({"x": x})["x"]
    assert isinstance(feature, drift.NumericProfile)
    assert feature.edges == (0.0, 1.0, 2.0, 3.0)  # quantiles that are values, merged
    assert feature.counts == (60, 10, 10, 10, 10)  # right-closed: every 0 in (-inf, 0]
    window = drift.profile({"x": x}).count({"x": [-1e9, 0.0, 0.5, 4.0, 1e9]})
    counts = window.features[0]
    assert counts.counts == (2, 1, 0, 0, 2)  # 4 and 1e9 in the open last bin (3, inf)
    assert counts.out_of_range == 2  # below the reference's minimum, above its maximum


def test_categorical_features_most_frequent_first_and_other_bucket() -> None:
    values = np.array(["b"] * 5 + ["a"] * 3 + ["c"] * 3 + ["d"])
    profile = drift.profile({"colour": values}, max_categories=3)
    feature = profile["colour"]
    assert isinstance(feature, drift.CategoricalProfile)
    assert feature.categories == ("b", "a", "c")  # ties in a fixed order
    assert feature.counts == (5, 3, 3, 1)  # "d" beyond max_categories: other
    window = profile.count({"colour": np.array(["a", "z", "z", "b"], dtype=object)})
    assert window.features[0].counts == (1, 1, 0, 2)
    assert window.features[0].out_of_range == 2


def test_kinds_are_inferred_unless_declared() -> None:
    data = {
        "ints": np.array([1, 2, 3, 2]),
        "codes": np.array([1, 2, 3, 2]),
        "flags": np.array([True, False, True, True]),
        "text": np.array(["a", "b", "a", "a"]),
        "nullable": np.array([1, None, 3, 4], dtype=object),
        "mixed": np.array([1, "a", None, 2], dtype=object),
    }
    profile = drift.profile(data, categorical=["codes"])
    kinds = {f.name: f.kind for f in profile.features}
    assert kinds == {
        "ints": "numeric",
        "codes": "categorical",
        "flags": "categorical",
        "text": "categorical",
        "nullable": "numeric",
        "mixed": "categorical",
    }
    assert profile.categorical == ("codes", "flags", "text", "mixed")
    codes = profile["codes"]
    assert isinstance(codes, drift.CategoricalProfile) and codes.categories == (2, 1, 3)
    # A float 2.0 in a window is the category 2.
    window = profile.count({**data, "codes": np.array([2.0, 2.0, 1.0, 9.0])})
    assert window.features[1].counts == (2, 1, 0, 1)


def test_missing_values_are_counted_apart() -> None:
    data = {
        "x": np.array([1.0, math.nan, math.inf, 2.0, 3.0]),
        "c": np.array(["a", None, math.nan, NAType(), "b"], dtype=object),
    }
    profile = drift.profile(data)
    assert (profile["x"].missing, profile["x"].total) == (2, 3)
    assert (profile["c"].missing, profile["c"].total) == (3, 2)
    window = profile.count({"x": [None, 2.0], "c": [None, "a"]})
    assert [(f.missing, f.total) for f in window.features] == [(1, 1), (1, 1)]


def test_windows_merge_into_the_counts_of_their_rows() -> None:
    rng = np.random.default_rng(2)
    reference = {"x": rng.normal(size=2000), "c": rng.choice(["a", "b", "c"], size=2000)}
    profile = drift.profile(reference)
    rows = {"x": rng.normal(0.3, size=900), "c": rng.choice(["a", "b", "new"], size=900)}
    rows["x"][::50] = np.nan
    parts = [profile.count({k: v[i : i + 300] for k, v in rows.items()}) for i in (0, 300, 600)]
    whole = profile.count(rows)
    assert parts[0] + parts[1] + parts[2] == whole
    assert parts[0].merge(parts[1], parts[2]) == whole
    assert whole.merge() == whole
    empty = profile.count({"x": [], "c": []})
    assert empty.rows == 0 and empty + whole == whole
    other = drift.profile({"x": rng.normal(size=100), "c": np.array(["a"] * 100)})
    with pytest.raises(ValueError, match="different profiles"):
        whole + other.count(rows)


def test_profiles_and_counts_round_trip_through_json() -> None:
    rng = np.random.default_rng(3)
    data = {
        "x": rng.normal(size=500),
        "n": rng.integers(0, 4, size=500),
        "c": rng.choice(["a", "b"], size=500).astype(object),
        "flag": rng.random(500) < 0.3,
    }
    data["c"][:7] = None
    profile = drift.profile(data, categorical=["n"])
    restored = drift.Profile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert restored == profile and restored.key == profile.key
    window = profile.count(data)
    again = drift.WindowCounts.from_dict(json.loads(json.dumps(window.to_dict())))
    assert again == window and again.profile_key == restored.key
    json.dumps(profile.to_dict(), allow_nan=False)  # strict JSON: no NaN or infinity


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other"), "not a drift profile"),
        (lambda d: d.pop("rows"), "'rows' is missing"),
        (lambda d: d.update(rows="5"), "'rows' has the wrong type"),
        (lambda d: d["features"][0].update(kind="text"), "kind must be"),
        (lambda d: d["features"][0]["counts"].append(1), "counts for"),
        (lambda d: d["features"][0].update(edges=[2.0, 1.0]), "increasing"),
        (lambda d: d["features"][0].update(missing=True), "wrong type"),
        (lambda d: d["features"][1].update(categories=["a", "a"]), "distinct"),
        (lambda d: d["features"][1].update(categories=[["a"], "b"]), "not a str"),
        (lambda d: d.update(rows=d["rows"] + 1), "do not add up"),
    ],
)
def test_bad_profile_dicts_are_refused(change: Any, message: str) -> None:
    data = drift.profile({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "b"]}).to_dict()
    change(data)
    with pytest.raises(ValueError, match=message):
        drift.Profile.from_dict(data)


def test_bad_counts_dicts_are_refused() -> None:
    profile = drift.profile({"x": [1.0, 2.0, 3.0]})
    good = profile.count({"x": [1.0, 5.0]}).to_dict()
    for change, message in [
        (lambda d: d.update(format="modelport.drift.profile/1"), "not drift window counts"),
        (lambda d: d["features"][0].update(missing=1), "do not add up"),
        (lambda d: d["features"][0].update(out_of_range=9), "out_of_range"),
        (lambda d: d["features"][0].update(counts=[-1, 3]), "non-negative"),
    ]:
        data = json.loads(json.dumps(good))
        change(data)
        with pytest.raises(ValueError, match=message):
            drift.WindowCounts.from_dict(data)


def test_data_frames_are_read_like_mappings() -> None:
    data = {"x": np.arange(20.0), "c": np.array(["a", "b"] * 10)}
    assert drift.profile(Frame(data)) == drift.profile(data)
    profile = drift.profile(data)
    assert profile.count(Frame(data)) == profile.count(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2, 3], "DataFrame or a mapping"),
        ({}, "no features"),
        ({1: [1.0]}, "names must be strings"),
        ({"x": [1.0, 2.0], "y": [1.0]}, "different lengths"),
        ({"x": [[1.0], [2.0]]}, "must be 1-d"),
        ({"x": []}, "no rows"),
        ({"x": [math.nan, None]}, "no values in the reference"),
        ({"t": np.array(["2024-01-01"], dtype="datetime64[D]")}, "convert them"),
        ({"c": np.array([b"a", b"b"])}, "categories must be"),
    ],
)
def test_bad_reference_data_is_refused(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        drift.profile(data)


def test_bad_windows_and_arguments_are_refused() -> None:
    profile = drift.profile({"x": [1.0, 2.0], "c": ["a", "b"]})
    with pytest.raises(ValueError, match=r"unknown features \['y'\]; missing features \['c'\]"):
        profile.count({"x": [1.0], "y": [2.0]})
    with pytest.raises(ValueError, match="holds non-numbers"):
        profile.count({"x": ["a"], "c": ["a"]})
    with pytest.raises(ValueError, match="categorical names unknown features"):
        drift.profile({"x": [1.0]}, categorical=["y"])
    with pytest.raises(ValueError, match="bins must be"):
        drift.profile({"x": [1.0]}, bins=1)
