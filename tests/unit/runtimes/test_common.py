from __future__ import annotations

import numpy as np
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import ConfigError, InferenceFailed, InvalidInput
from modelport.core.signature import TensorSpec
from modelport.runtimes._common import (
    coerce_output,
    decode_text,
    pick_input,
    require_artifact,
    select_outputs,
    to_bytes_array,
)
from modelport.runtimes.base import RuntimeConfig


def test_select_outputs() -> None:
    assert select_outputs([], ("a", "b")) == ("a", "b")
    assert select_outputs(["b", "b"], ("a", "b")) == ("b",)
    # One requested name (the common request, answered without the general check).
    assert select_outputs(["b"], ("a", "b")) == ("b",)
    assert select_outputs({"a"}, ("a", "b")) == ("a",)
    with pytest.raises(InvalidInput, match="unknown output 'c'; the model has 'a', 'b'"):
        select_outputs(["c"], ("a", "b"))


def test_pick_input() -> None:
    x = np.zeros(1)
    assert pick_input({"input": x}, "input") is x
    assert pick_input({"other": x}, "input") is x
    with pytest.raises(InvalidInput, match="missing input 'input'"):
        pick_input({"a": x, "b": x}, "input")


def test_text_round_trip() -> None:
    raw = np.array([[b"a", b"b\xc3\xa9"]], dtype=object)
    text = decode_text(raw)
    assert text.tolist() == [["a", "bé"]]
    back = to_bytes_array(np.array(["a", "bé"]))
    assert back.dtype == object
    assert back.tolist() == [b"a", "bé".encode()]
    with pytest.raises(InvalidInput, match="UTF-8"):
        decode_text(np.array([b"\xff"], dtype=object))
    with pytest.raises(InvalidInput, match="int"):
        decode_text(np.array([1], dtype=object))


def test_coerce_output() -> None:
    spec = TensorSpec("y", Datatype.FP32, (-1,))
    assert coerce_output("y", np.array([1.0]), spec).dtype == np.float32
    with pytest.raises(InferenceFailed, match="'y' cannot be converted to FP32"):
        coerce_output("y", np.array(["x"]), spec)
    assert coerce_output("y", np.array(["x"]), None).tolist() == [b"x"]


def test_require_artifact() -> None:
    with pytest.raises(ConfigError, match="needs an artifact"):
        require_artifact(RuntimeConfig(artifact=None), "onnx")
