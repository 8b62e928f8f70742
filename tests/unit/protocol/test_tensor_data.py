"""modelport.protocol.tensor_data: JSON data decoding and array normalisation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.core.datatypes import Datatype
from modelport.core.errors import InvalidInput
from modelport.protocol import tensor_data
from modelport.protocol.tensor_data import (
    array_from_json,
    coerce_array,
    float_to_bf16_bits,
    json_data,
)

_NUMERIC = [dt for dt in Datatype if dt not in (Datatype.BYTES, Datatype.BF16)]


def test_bf16_rounding_known_answers() -> None:
    values = np.array([1.0, -2.0, 0.1, 1.00390625, 1.01171875, np.inf, -np.inf, 3.4e38, np.nan])
    bits = float_to_bf16_bits(values).tolist()
    # 0.1 -> 0x3DCD; 1+2**-8 is a tie, to even (0x3F80); 1+3*2**-8 is a tie, to even (0x3F82);
    # the largest floats round up to infinity; NaN stays a (quiet) NaN
    assert bits == [0x3F80, 0xC000, 0x3DCD, 0x3F80, 0x3F82, 0x7F80, 0xFF80, 0x7F80, 0x7FC0]


def test_coerce_array_bytes_from_str_bytes_and_numpy_strings() -> None:
    for data in (["a", b"b\x00"], np.array(["a", "b\x00"], dtype=object), [b"a", b"b\x00"]):
        out = coerce_array(data, Datatype.BYTES, (2,), "t")
        assert out.dtype == object and out.tolist() == [b"a", b"b\x00"]
    out = coerce_array(np.array(["x", "yz"]), Datatype.BYTES, (1, 2), "t")
    assert out.tolist() == [[b"x", b"yz"]]


def test_coerce_array_bf16_from_raw_bits_and_floats() -> None:
    raw = coerce_array(np.array([0x3F80], dtype=np.uint16), Datatype.BF16, (1,), "t")
    rounded = coerce_array(np.array([1.0], dtype=np.float64), Datatype.BF16, (1,), "t")
    assert raw.tolist() == rounded.tolist() == [0x3F80]
    with pytest.raises(InvalidInput, match="BF16 data must be floats or 16-bit raw patterns"):
        coerce_array(np.array([1], dtype=np.int64), Datatype.BF16, (1,), "t")


def test_json_data_forms() -> None:
    numeric = json_data(np.array([[1, 2]], dtype=np.int8), Datatype.INT8)
    assert isinstance(numeric, np.ndarray) and numeric.tolist() == [1, 2]
    assert json_data(np.array([b"\xc3\xa9"], dtype=object), Datatype.BYTES) == ["\u00e9"]
    assert json_data(np.array([b"\xff"], dtype=object), Datatype.BYTES) is None
    assert json_data(np.array([1], dtype=np.uint16), Datatype.BF16) is None


def test_decoded_arrays_own_exactly_their_dtype() -> None:
    for datatype in _NUMERIC:
        data: list[Any] = [True, False] if datatype is Datatype.BOOL else [1, 2]
        out = array_from_json(data, datatype, (2,), "t")
        assert out.dtype.name == {
            Datatype.BOOL: "bool",
            Datatype.FP16: "float16",
            Datatype.FP32: "float32",
            Datatype.FP64: "float64",
        }.get(datatype, datatype.value.lower())


# The fast path may only accept what the element-by-element path accepts, with the same result.
_leaf = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-200, max_value=300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-7e4, max_value=7e4),
    st.none(),
)


@settings(max_examples=600, deadline=None, database=None)
@given(
    st.sampled_from(_NUMERIC),
    st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=2),
    st.data(),
)
def test_fast_path_agrees_with_checked_path(
    datatype: Datatype, shape: list[int], draw: st.DataObject
) -> None:
    count = int(np.prod(shape))
    homogeneous = draw.draw(st.booleans())
    if homogeneous:
        leaf = draw.draw(
            st.sampled_from([st.booleans(), st.integers(-300, 300), st.floats(-1e5, 1e5)])
        )
        flat = draw.draw(st.lists(leaf, min_size=count, max_size=count))
    else:
        flat = draw.draw(st.lists(_leaf, min_size=count, max_size=count))
    data: Any = flat
    if len(shape) == 2 and draw.draw(st.booleans()):
        data = [flat[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]
    expected_shape = tuple(shape)
    for may_hold_bools in (True, False):
        if not may_hold_bools and any(type(v) is bool for v in flat):
            continue  # the caller only passes False when the JSON text has no true/false
        fast = tensor_data.numeric_from_json_fast(data, datatype, expected_shape, may_hold_bools)
        try:
            checked = tensor_data._numeric_checked(data, datatype, expected_shape, "t")
        except InvalidInput:
            assert fast is None
            continue
        if fast is not None:
            assert fast.dtype == checked.dtype and fast.shape == checked.shape
            np.testing.assert_array_equal(fast, checked)
