"""decode_infer_request and decode_raw_input against hand-written bodies (known right answers)."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.inference import RequestedOutput
from modelport.core.signature import TensorSpec
from modelport.protocol.rest import decode_infer_request, decode_raw_input


def _json(doc: object) -> bytes:
    return orjson.dumps(doc)


def test_json_nested_fp32() -> None:
    body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[[1,2],[3,4.5]]}]}'
    request = decode_infer_request(body, None)
    (x,) = request.inputs
    assert (x.name, x.datatype, x.shape) == ("x", Datatype.FP32, (2, 2))
    assert x.data.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(x.data, [[1.0, 2.0], [3.0, 4.5]])
    assert request.id is None and request.parameters == {} and request.outputs is None


def test_json_flat_data_is_reshaped() -> None:
    body = b'{"inputs":[{"name":"x","datatype":"INT64","shape":[2,3],"data":[1,2,3,4,5,6]}]}'
    (x,) = decode_infer_request(body, None).inputs
    np.testing.assert_array_equal(x.data, [[1, 2, 3], [4, 5, 6]])
    assert x.data.dtype == np.dtype("<i8")


def test_json_three_dims_nested() -> None:
    data = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    body = _json({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [2, 2, 2], "data": data}]})
    (x,) = decode_infer_request(body, None).inputs
    np.testing.assert_array_equal(x.data, np.arange(1, 9).reshape(2, 2, 2))
    assert x.data.dtype == np.uint8


def test_scalar_shape_accepts_bare_value_and_one_element_list() -> None:
    for data in (7, [7]):
        body = _json({"inputs": [{"name": "x", "datatype": "INT32", "shape": [], "data": data}]})
        (x,) = decode_infer_request(body, None).inputs
        assert x.shape == () and x.data.shape == () and int(x.data) == 7


def test_bool_json() -> None:
    body = b'{"inputs":[{"name":"b","datatype":"BOOL","shape":[3],"data":[true,false,true]}]}'
    (b,) = decode_infer_request(body, None).inputs
    assert b.data.dtype == np.bool_
    assert b.data.tolist() == [True, False, True]


def test_ints_are_accepted_for_float_types() -> None:
    body = b'{"inputs":[{"name":"x","datatype":"FP16","shape":[3],"data":[1,2.5,-3]}]}'
    (x,) = decode_infer_request(body, None).inputs
    assert x.data.dtype == np.float16
    assert x.data.tolist() == [1.0, 2.5, -3.0]


def test_null_in_float_data_reads_as_nan() -> None:
    body = b'{"inputs":[{"name":"x","datatype":"FP64","shape":[2],"data":[null,1.5]}]}'
    (x,) = decode_infer_request(body, None).inputs
    assert np.isnan(x.data[0]) and x.data[1] == 1.5


def test_numbers_with_true_literal_elsewhere_in_body() -> None:
    # A true/false literal in the parameters turns on the check for booleans mixed into numbers;
    # valid numbers must still decode.
    body = _json(
        {
            "parameters": {"binary_data_output": True},
            "inputs": [
                {"name": "x", "datatype": "INT16", "shape": [2, 2], "data": [[1, -2], [3, 4]]},
                {"name": "y", "datatype": "FP32", "shape": [2], "data": [0.5, 1]},
            ],
        }
    )
    x, y = decode_infer_request(body, None).inputs
    np.testing.assert_array_equal(x.data, [[1, -2], [3, 4]])
    np.testing.assert_array_equal(y.data, [0.5, 1.0])


def test_bytes_json_are_utf8_encoded() -> None:
    body = _json(
        {
            "inputs": [
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [2, 2],
                    "data": [["", "a"], ["\u00e9", "\u65e5"]],
                }
            ]
        }
    )
    (s,) = decode_infer_request(body, None).inputs
    assert s.data.dtype == object and s.data.shape == (2, 2)
    assert s.data.reshape(-1).tolist() == [b"", b"a", b"\xc3\xa9", b"\xe6\x97\xa5"]


def test_bytes_json_keeps_trailing_nul() -> None:
    body = _json(
        {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [1], "data": ["a\u0000"]}]}
    )
    (s,) = decode_infer_request(body, None).inputs
    assert s.data.tolist() == [b"a\x00"]


@pytest.mark.parametrize(
    ("shape", "data"), [([0], []), ([2, 0], [[], []]), ([2, 0], []), ([0, 3], [])]
)
@pytest.mark.parametrize("datatype", ["BOOL", "INT32", "FP32", "BYTES"])
def test_empty_tensors_json(shape: list[int], data: list[object], datatype: str) -> None:
    body = _json({"inputs": [{"name": "e", "datatype": datatype, "shape": shape, "data": data}]})
    (e,) = decode_infer_request(body, None).inputs
    assert e.shape == tuple(shape) and e.data.shape == tuple(shape) and e.data.size == 0


def test_binary_fixed_size_known_bytes_and_zero_copy() -> None:
    raw = struct.pack("<3i", 1, -2, 2**31 - 1)
    header = _json(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "INT32",
                    "shape": [3],
                    "parameters": {"binary_data_size": 12},
                }
            ]
        }
    )
    body = header + raw
    (x,) = decode_infer_request(body, len(header)).inputs
    assert x.data.tolist() == [1, -2, 2**31 - 1]
    assert x.data.dtype == np.dtype("<i4")
    assert x.parameters == {}  # binary_data_size is consumed
    assert not x.data.flags.writeable  # a view of the body, not a copy
    assert np.shares_memory(x.data, np.frombuffer(body, dtype=np.uint8))


def test_binary_bool_bytes_and_nonzero_means_true() -> None:
    header = _json(
        {
            "inputs": [
                {
                    "name": "b",
                    "datatype": "BOOL",
                    "shape": [4],
                    "parameters": {"binary_data_size": 4},
                }
            ]
        }
    )
    (b,) = decode_infer_request(header + b"\x00\x01\x00\x01", len(header)).inputs
    assert b.data.tolist() == [False, True, False, True]
    (b,) = decode_infer_request(header + b"\x00\x02\xff\x01", len(header)).inputs
    assert b.data.dtype == np.bool_ and b.data.tolist() == [False, True, True, True]


def test_binary_bytes_framing_known_answer() -> None:
    raw = b"\x00\x00\x00\x00" + b"\x03\x00\x00\x00abc" + b"\x02\x00\x00\x00\xc3\xa9"
    header = _json(
        {
            "inputs": [
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [3],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    (s,) = decode_infer_request(header + raw, len(header)).inputs
    assert s.data.tolist() == [b"", b"abc", b"\xc3\xa9"]


def test_binary_bf16_is_raw_uint16_bits() -> None:
    header = _json(
        {
            "inputs": [
                {
                    "name": "h",
                    "datatype": "BF16",
                    "shape": [2],
                    "parameters": {"binary_data_size": 4},
                }
            ]
        }
    )
    (h,) = decode_infer_request(header + b"\x80\x3f\x00\xc0", len(header)).inputs
    assert h.data.dtype == np.dtype("<u2")
    assert h.data.tolist() == [0x3F80, 0xC000]


def test_mixed_binary_and_json_inputs_in_list_order() -> None:
    header = _json(
        {
            "id": "r-1",
            "parameters": {"priority": 2, "note": "hi", "ratio": 0.5, "flag": False},
            "inputs": [
                {
                    "name": "a",
                    "datatype": "FP64",
                    "shape": [1],
                    "parameters": {"binary_data_size": 8},
                },
                {
                    "name": "j",
                    "datatype": "INT8",
                    "shape": [2],
                    "data": [-1, 1],
                    "parameters": {"tag": "t"},
                },
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": 6, "tag": "u"},
                },
                {
                    "name": "e",
                    "datatype": "FP32",
                    "shape": [0],
                    "parameters": {"binary_data_size": 0},
                },
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}, {"name": "z"}],
        }
    )
    body = header + struct.pack("<d", 2.5) + b"\x02\x00\x00\x00hi"
    request = decode_infer_request(body, len(header))
    a, j, s, e = request.inputs
    assert a.data.tolist() == [2.5]
    assert j.data.tolist() == [-1, 1] and j.parameters == {"tag": "t"}
    assert s.data.tolist() == [b"hi"] and s.parameters == {"tag": "u"}
    assert e.data.shape == (0,) and e.data.dtype == np.float32
    assert request.id == "r-1"
    assert request.parameters == {"priority": 2, "note": "hi", "ratio": 0.5, "flag": False}
    assert request.outputs == [
        RequestedOutput("y", {"binary_data": True}),
        RequestedOutput("z", {}),
    ]


def test_header_length_equal_to_body_means_no_binary() -> None:
    body = b'{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[5]}]}'
    (x,) = decode_infer_request(body, len(body)).inputs
    assert x.data.tolist() == [5]


def test_null_optional_fields_are_absent_and_empty_outputs_mean_all() -> None:
    body = b'{"id":null,"parameters":null,"outputs":[],"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[5],"parameters":null}]}'
    request = decode_infer_request(body, None)
    assert request.id is None and request.parameters == {} and request.outputs is None
    assert request.inputs[0].parameters == {}


def test_unknown_fields_are_ignored() -> None:
    body = b'{"extra":1,"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[5],"more":{}}]}'
    (x,) = decode_infer_request(body, None).inputs
    assert x.data.tolist() == [5]


def test_bytearray_body_is_accepted() -> None:
    body = bytearray(b'{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[5]}]}')
    (x,) = decode_infer_request(body, None).inputs  # the server may hand over a bytearray
    assert x.data.tolist() == [5]


# --- raw single-input bodies (Inference-Header-Content-Length: 0) ---


def test_raw_input_infers_variable_dimension() -> None:
    spec = TensorSpec("x", Datatype.FP32, (-1, 2))
    request = decode_raw_input(struct.pack("<4f", 1, 2, 3, 4), spec)
    (x,) = request.inputs
    assert x.name == "x" and x.datatype is Datatype.FP32 and x.shape == (2, 2)
    np.testing.assert_array_equal(x.data, [[1, 2], [3, 4]])
    assert request.outputs is None and request.id is None


def test_raw_input_fixed_shape() -> None:
    spec = TensorSpec("x", Datatype.UINT8, (2, 2))
    (x,) = decode_raw_input(b"\x01\x02\x03\x04", spec).inputs
    assert x.shape == (2, 2) and x.data.tolist() == [[1, 2], [3, 4]]


def test_raw_input_bytes_counts_elements() -> None:
    spec = TensorSpec("s", Datatype.BYTES, (-1,))
    (s,) = decode_raw_input(b"\x01\x00\x00\x00a\x00\x00\x00\x00", spec).inputs
    assert s.shape == (2,) and s.data.tolist() == [b"a", b""]


def test_raw_input_empty_body() -> None:
    spec = TensorSpec("x", Datatype.FP32, (-1, 4))
    (x,) = decode_raw_input(b"", spec).inputs
    assert x.shape == (0, 4) and x.data.shape == (0, 4)


def test_raw_input_bf16() -> None:
    spec = TensorSpec("h", Datatype.BF16, (1, -1))
    (h,) = decode_raw_input(b"\x80\x3f\x00\xc0", spec).inputs
    assert h.shape == (1, 2) and h.data.tolist() == [[0x3F80, 0xC000]]
