"""modelport.protocol.binary: framing and raw layouts, known answers."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.core.datatypes import Datatype
from modelport.core.errors import InvalidInput
from modelport.protocol.binary import (
    array_from_buffer,
    array_to_buffer,
    pack_bytes,
    resolve_shape,
    unpack_bytes,
)


def test_pack_bytes_known_answer() -> None:
    assert pack_bytes([b"", b"ab", "\u00e9".encode()], "t") == (
        b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00ab" + b"\x02\x00\x00\x00\xc3\xa9"
    )
    assert pack_bytes([], "t") == b""


def test_unpack_bytes_known_answer_with_offset() -> None:
    buffer = b"JUNK" + b"\x01\x00\x00\x00z" + b"\x00\x00\x00\x00" + b"TAIL"
    assert unpack_bytes(buffer, 4, 9, "t") == [b"z", b""]


@pytest.mark.parametrize("tail", [b"\x00", b"\x00\x00", b"\x00\x00\x00"])
def test_unpack_bytes_rejects_stray_tail_bytes(tail: bytes) -> None:
    buffer = b"\x00\x00\x00\x00" + tail
    with pytest.raises(InvalidInput, match="cut-off length prefix"):
        unpack_bytes(buffer, 0, len(buffer), "t")
    with pytest.raises(InvalidInput, match="cut-off length prefix"):
        unpack_bytes(buffer, 0, len(buffer), "t", limit=5)


def test_unpack_bytes_stops_after_limit_plus_one() -> None:
    buffer = b"\x00\x00\x00\x00" * 10
    assert len(unpack_bytes(buffer, 0, len(buffer), "t", limit=2)) == 3


@pytest.mark.parametrize(
    ("datatype", "values", "raw"),
    [
        (Datatype.BOOL, [True, False], b"\x01\x00"),
        (Datatype.UINT16, [1, 65535], b"\x01\x00\xff\xff"),
        (Datatype.INT32, [-1, 2], b"\xff\xff\xff\xff\x02\x00\x00\x00"),
        (Datatype.INT64, [1], b"\x01" + b"\x00" * 7),
        (Datatype.FP16, [1.0], b"\x00\x3c"),
        (Datatype.FP32, [1.0], b"\x00\x00\x80\x3f"),
        (Datatype.FP64, [-2.0], struct.pack("<d", -2.0)),
        (Datatype.BF16, [0x3F80], b"\x80\x3f"),
    ],
)
def test_fixed_size_layouts_are_little_endian(
    datatype: Datatype, values: list[object], raw: bytes
) -> None:
    array = array_from_buffer(b"xx" + raw, 2, len(raw), datatype, (len(values),), "t")
    assert array.tolist() == values
    assert bytes(array_to_buffer(array, datatype, "t")) == raw


def test_array_to_buffer_of_non_contiguous_array_is_row_major() -> None:
    array = np.arange(6, dtype="<i2").reshape(2, 3).T
    assert bytes(array_to_buffer(array, Datatype.INT16, "t")) == struct.pack(
        "<6h", 0, 3, 1, 4, 2, 5
    )


def test_array_from_buffer_empty() -> None:
    array = array_from_buffer(b"", 0, 0, Datatype.FP32, (3, 0), "t")
    assert array.shape == (3, 0) and array.dtype == np.float32


@pytest.mark.parametrize(
    ("spec", "count", "expected"),
    [((-1, 3), 6, (2, 3)), ((2, -1), 0, (2, 0)), ((4,), 4, (4,)), ((-1,), 0, (0,)), ((), 1, ())],
)
def test_resolve_shape(spec: tuple[int, ...], count: int, expected: tuple[int, ...]) -> None:
    assert resolve_shape(spec, count, "t") == expected


def test_resolve_shape_rejects_two_variable_dimensions() -> None:
    with pytest.raises(InvalidInput, match="2 variable dimensions"):
        resolve_shape((-1, -1), 4, "t")


@settings(max_examples=500, deadline=None, database=None)
@given(
    st.one_of(
        st.binary(max_size=40),
        st.lists(st.binary(max_size=6), max_size=6).map(lambda items: pack_bytes(items, "t")),
    ),
    st.binary(max_size=3),
)
def test_unpack_accepts_exactly_what_pack_produces(buffer: bytes, tail: bytes) -> None:
    body = buffer + tail
    try:
        items = unpack_bytes(body, 0, len(body), "t")
    except InvalidInput:
        return
    assert pack_bytes(items, "t") == body
