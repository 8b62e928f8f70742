"""Tensors to drift features, and a runtime's reference profile."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import pytest

from modelport.core.errors import InvalidInput
from modelport.drift import Profile, feature_columns
from modelport.service.reference import reference_profile


def test_tensors_become_named_features() -> None:
    inputs = {"input": np.arange(6.0).reshape(3, 2), "city": np.array(["a", "b", "a"], object)}
    outputs = {"label": np.array([0, 1, 1]), "probabilities": np.full((3, 2), 0.5)}
    columns, categorical = feature_columns(inputs, outputs)
    assert list(columns) == [
        "input[0]",
        "input[1]",
        "city",
        "output:label",
        "output:probabilities[0]",
        "output:probabilities[1]",
    ]
    assert categorical == ["city", "output:label"]  # text, and an integer output (a class)
    assert columns["input[1]"].tolist() == [1.0, 3.0, 5.0]
    wide = {"image": np.zeros((2, 28 * 28))}
    assert feature_columns(wide)[0] == {}  # not tabular: not profiled
    with pytest.raises(ValueError, match="rows where the others have 3"):
        feature_columns(inputs, {"label": np.array([0, 1])})


class Doubler:
    """A runtime answering twice its input, and a class label."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str]
    ) -> dict[str, np.ndarray]:
        self.calls += 1
        x = inputs["input"]
        return {"double": x * 2, "label": (x[:, 0] > 0).astype(np.int64)}


def test_a_reference_profile_covers_inputs_and_predictions_in_chunks() -> None:
    rng = np.random.default_rng(0)
    runtime = Doubler()
    made, rows = reference_profile(
        runtime, {"input": rng.normal(size=(25_000, 2))}, ["double", "label"]
    )
    assert rows == 25_000 and runtime.calls == 3  # 10,000 rows at a time
    assert isinstance(made, Profile)
    assert set(made.names) == {
        "input[0]", "input[1]", "output:double[0]", "output:double[1]", "output:label",
    }  # fmt: skip
    assert "output:label" in made.categorical
    with pytest.raises(InvalidInput, match="no rows"):
        reference_profile(runtime, {"input": np.zeros((0, 2))}, ["double"])
