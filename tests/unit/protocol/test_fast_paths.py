"""The codec's fast paths: they take the common cases and hand everything else to the careful path.

Each test pins a case where a shortcut could differ from the element-by-element path: values at
the edges of a type's range, arrays that are not already right, and bodies where a shortcut's
proof does not hold.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.core.datatypes import Datatype, to_numpy_dtype
from modelport.core.errors import InferenceFailed, InvalidInput
from modelport.core.inference import InferenceRequest, InferenceResponse, Tensor
from modelport.protocol import tensor_data
from modelport.protocol.binary import array_from_buffer, array_to_buffer
from modelport.protocol.rest import decode_infer_request, encode_infer_response
from modelport.protocol.tensor_data import coerce_array, json_data

_NUMERIC = [dt for dt in Datatype if dt not in (Datatype.BYTES, Datatype.BF16)]
_F32_MAX = float(np.finfo(np.float32).max)
_F32_HALFWAY = _F32_MAX + 2.0**103  # the smallest value that rounds to infinity in float32


def _body(datatype: str, literal: bytes, flag: bool = False) -> bytes:
    """A one-input request whose data is ``[literal, 1]``; ``flag`` adds a true literal."""
    parameters = b'"parameters":{"binary_data_output":true},' if flag else b""
    return (
        b"{" + parameters + b'"inputs":[{"name":"x","datatype":"' + datatype.encode() + b'",'
        b'"shape":[2],"data":[' + literal + b",1]}]}"
    )


# (datatype, first value as JSON text, the decoded first value or the error message fragment)
EDGES: list[tuple[str, bytes, object]] = [
    ("FP32", b"3.4028235e38", _F32_MAX),  # above the largest float32, but rounds down to it
    ("FP32", b"-3.4028235e38", -_F32_MAX),
    ("FP32", b"3.4028236e38", "element 0 of data is 3.4028236e+38; that is out of range for FP32"),
    ("FP32", b"1" + b"0" * 40, "element 0 of data is 1e+40; that is out of range for FP32"),
    ("FP32", b"1e-50", 0.0),  # underflows to zero, as a cast does, without a warning
    ("FP32", b"16777217", 16777216.0),  # an integer rounded to the nearest float32
    ("FP16", b"65504", 65504.0),
    ("FP16", b"65519.0", 65504.0),  # rounds down to the largest float16
    ("FP16", b"65520.0", "element 0 of data is 65520.0; that is out of range for FP16"),
    ("FP16", b"65520", "element 0 of data is 65520; that is out of range for FP16"),
    ("FP16", b"-70000", "element 0 of data is -70000; that is out of range for FP16"),
    ("FP64", b"1" + b"0" * 40, 1e40),
    ("INT8", b"-128", -128),
    ("INT8", b"127", 127),
    ("INT8", b"128", "element 0 of data is 128; that is out of range for INT8"),
    ("INT8", b"-129", "element 0 of data is -129; that is out of range for INT8"),
    ("INT16", b"-32768", -32768),
    ("INT16", b"32768", "element 0 of data is 32768; that is out of range for INT16"),
    ("INT32", b"-2147483648", -(2**31)),
    ("INT32", b"2147483647", 2**31 - 1),
    ("INT32", b"2147483648", "element 0 of data is 2147483648; that is out of range for INT32"),
    ("INT32", b"9223372036854775808", "out of range for INT32"),  # a uint64 array
    ("INT64", b"-9223372036854775808", -(2**63)),
    ("INT64", b"9223372036854775808", "element 0 of data is 9223372036854775808; that is out"),
    ("UINT8", b"255", 255),
    ("UINT8", b"-1", "element 0 of data is -1; that is out of range for UINT8"),
    ("UINT32", b"4294967296", "that is out of range for UINT32"),
    ("UINT64", b"18446744073709551615", 2**64 - 1),
    ("UINT64", b"-1", "element 0 of data is -1; that is out of range for UINT64"),
    ("UINT64", b"18446744073709551616", "UINT64 expects integers"),  # orjson makes it a float
    ("INT32", b"1.0", "element 0 of data is 1.0; INT32 expects integers"),
    ("FP32", b"true", "element 0 of data is true; FP32 expects numbers"),
    ("FP32", b"null", float("nan")),
    ("FP32", b'"1.5"', "element 0 of data is the string '1.5'; FP32 expects numbers"),
    ("FP32", b"NaN", "invalid JSON in request body"),
    ("FP32", b"Infinity", "invalid JSON in request body"),
    ("FP64", b"1e400", "invalid JSON in request body"),
]


@pytest.mark.parametrize("flag", [False, True], ids=["no-bool-literal", "bool-literal"])
@pytest.mark.parametrize(("datatype", "literal", "expected"), EDGES)
def test_values_at_the_edge_of_each_range(
    datatype: str, literal: bytes, expected: object, flag: bool
) -> None:
    body = _body(datatype, literal, flag)
    if isinstance(expected, str):
        with pytest.raises(InvalidInput) as info:
            decode_infer_request(body, None)
        assert expected in str(info.value)
        return
    (x,) = decode_infer_request(body, None).inputs
    assert x.data.dtype == to_numpy_dtype(Datatype(datatype)) and x.data.shape == (2,)
    first = x.data.tolist()[0]
    if isinstance(expected, float) and np.isnan(expected):
        assert np.isnan(first)
    else:
        assert first == expected and type(first) is type(expected)


def test_bool_literal_outside_the_data_still_decodes_numbers() -> None:
    body = orjson.dumps(
        {
            "id": "true",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [[1, 2]]}],
        }
    )
    (x,) = decode_infer_request(body, None).inputs
    assert x.data.tolist() == [[1.0, 2.0]] and x.data.dtype == np.float32


def test_json_fp64_and_int64_arrays_are_writable_and_own_their_data() -> None:
    body = b'{"inputs":[{"name":"a","datatype":"FP64","shape":[2],"data":[1.5,2]},{"name":"b","datatype":"INT64","shape":[1,2],"data":[[1,2]]}]}'
    for tensor in decode_infer_request(body, None).inputs:
        assert tensor.data.flags.writeable and tensor.data.flags.c_contiguous


# Values at the edges of every numeric type, for the property below.
_EDGE_VALUES: list[Any] = [
    0,
    1,
    -1,
    127,
    128,
    -128,
    -129,
    255,
    256,
    32767,
    32768,
    -32768,
    -32769,
    65504,
    65519,
    65520,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**63,
    -(2**63),
    2**64 - 1,
    0.5,
    65504.0,
    65519.0,
    65520.0,
    -65520.0,
    _F32_MAX,
    -_F32_MAX,
    np.nextafter(_F32_HALFWAY, 0.0),
    _F32_HALFWAY,
    -_F32_HALFWAY,
    1e300,
    5e-324,
    -0.0,
]


@settings(max_examples=600, deadline=None, database=None)
@given(
    st.sampled_from(_NUMERIC),
    st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=2),
    st.data(),
)
def test_fast_path_agrees_with_checked_path_at_range_edges(
    datatype: Datatype, shape: list[int], draw: st.DataObject
) -> None:
    count = int(np.prod(shape))
    # JSON decodes to Python ints and floats only (numpy scalars cannot come off the wire).
    edges = [v if isinstance(v, int) else float(v) for v in _EDGE_VALUES]
    leaf = st.one_of(st.sampled_from(edges), st.integers(-300, 300), st.booleans())
    flat = draw.draw(st.lists(leaf, min_size=count, max_size=count))
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
            assert fast.tobytes() == checked.tobytes()  # bit-exact, -0.0 included


# --- coerce_array and json_data: arrays that are already right, and ones that are not ---


def test_coerce_array_returns_a_right_array_as_it_is() -> None:
    for datatype in _NUMERIC:
        array = np.zeros((2, 3), dtype=to_numpy_dtype(datatype))
        assert coerce_array(array, datatype, (2, 3), "t") is array
    raw_bf16 = np.array([0x3F80], dtype=np.uint16)
    assert coerce_array(raw_bf16, Datatype.BF16, (1,), "t") is raw_bf16


@pytest.mark.parametrize(
    ("data", "datatype", "shape", "expected"),
    [
        (np.arange(6, dtype=np.int32).reshape(3, 2).T, Datatype.INT32, (2, 3), [0, 2, 4, 1, 3, 5]),
        (np.arange(6, dtype=np.float32)[::2], Datatype.FP32, (3,), [0.0, 2.0, 4.0]),
        (np.array([1.5, 2.0], dtype=">f4"), Datatype.FP32, (2,), [1.5, 2.0]),
        (np.array([1.5, 1e300]), Datatype.FP32, (2,), [1.5, float("inf")]),
        (np.array([1, 2], dtype=np.int64), Datatype.FP16, (1, 2), [1.0, 2.0]),
        (np.array([300, -1]), Datatype.UINT8, (2,), [44, 255]),  # unsafe casting, as astype
        (np.array([0, 2]), Datatype.BOOL, (2,), [False, True]),
        (np.array([1.0, 2.0], dtype=np.float32), Datatype.FP32, (1, 2), [1.0, 2.0]),
        ([1, 2], Datatype.INT8, (2,), [1, 2]),
    ],
)
def test_coerce_array_casts_and_copies_what_is_not_right(
    data: Any, datatype: Datatype, shape: tuple[int, ...], expected: list[object]
) -> None:
    out = coerce_array(data, datatype, shape, "t")  # no overflow warning escapes
    assert out is not data
    assert out.dtype == to_numpy_dtype(datatype) and out.shape == shape
    assert out.flags.c_contiguous
    assert out.reshape(-1).tolist() == expected


def test_coerce_array_shape_errors_still_apply_to_right_dtypes() -> None:
    array = np.zeros(2, dtype=np.float32)
    with pytest.raises(InvalidInput, match="shape \\[3\\] needs 3 elements but data has 2"):
        coerce_array(array, Datatype.FP32, (3,), "t")
    with pytest.raises(InvalidInput, match="negative dimension"):
        coerce_array(array, Datatype.FP32, (-2,), "t")
    strings = np.array(["a"])
    with pytest.raises(InvalidInput, match="INT32 data must be numeric"):
        coerce_array(strings, Datatype.INT32, (1,), "t")


def test_coerce_array_checks_bytes_elements_even_in_an_object_array() -> None:
    items = np.array([b"a", 5], dtype=object)
    with pytest.raises(InvalidInput, match="BYTES element 1 is a int"):
        coerce_array(items, Datatype.BYTES, (2,), "t")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_json_data_of_every_float_width_serializes_with_orjson(dtype: type) -> None:
    array = np.array([[0.5, np.nan], [np.inf, -2.0]], dtype=dtype)
    flat = json_data(array, Datatype.FP16)
    assert isinstance(flat, np.ndarray) and flat.ndim == 1
    assert orjson.loads(orjson.dumps(flat, option=orjson.OPT_SERIALIZE_NUMPY)) == [
        0.5,
        None,
        None,
        -2.0,
    ]


def test_json_data_of_a_subclass_is_a_plain_array() -> None:
    masked = np.ma.array([1.0, 2.0], mask=[False, True])
    flat = json_data(masked, Datatype.FP64)
    assert type(flat) is np.ndarray and flat.tolist() == [1.0, 2.0]


# --- binary form ---


def test_binary_decode_is_a_zero_copy_view_at_any_offset_and_shape() -> None:
    raw = struct.pack("<6h", 1, -2, 3, -4, 5, -6)
    body = b"abc" + raw  # an odd offset: the view is unaligned
    array = array_from_buffer(body, 3, len(raw), Datatype.INT16, (2, 1, 3), "t")
    assert array.shape == (2, 1, 3) and array.dtype == np.dtype("<i2")
    assert array.reshape(-1).tolist() == [1, -2, 3, -4, 5, -6]
    assert not array.flags.writeable
    assert np.shares_memory(array, np.frombuffer(body, dtype=np.uint8))


def test_array_to_buffer_is_a_view_of_a_contiguous_array() -> None:
    array = np.arange(4, dtype="<f4").reshape(2, 2)
    chunk = array_to_buffer(array, Datatype.FP32, "t")
    assert isinstance(chunk, memoryview) and chunk.format == "B" and chunk.nbytes == 16
    assert np.shares_memory(np.frombuffer(chunk, dtype=np.uint8), array)
    assert bytes(chunk) == array.tobytes()


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((2, 0), dtype=np.float32),
        np.array(2.5, dtype=np.float32),
        np.arange(6, dtype=np.float32).reshape(2, 3).T,
        np.ma.array([1.0, 2.0], mask=[False, True], dtype=np.float32),
    ],
    ids=["empty-2d", "scalar", "fortran", "masked"],
)
def test_array_to_buffer_of_unusual_arrays(array: np.ndarray) -> None:
    chunk = array_to_buffer(array, Datatype.FP32, "t")
    assert bytes(chunk) == np.ascontiguousarray(array).tobytes()


# --- whole responses: the ONNX Runtime case and its near misses ---


def _classifier_response(label: Any, probabilities: Any) -> InferenceResponse:
    return InferenceResponse(
        "m",
        [
            Tensor("label", Datatype.INT64, (1,), label),
            Tensor("probabilities", Datatype.FP32, (1, 2), probabilities),
        ],
    )


_EXPECTED_JSON = (
    b'{"model_name":"m","outputs":['
    b'{"name":"label","datatype":"INT64","shape":[1],"data":[1]},'
    b'{"name":"probabilities","datatype":"FP32","shape":[1,2],"data":[0.25,0.75]}]}'
)


@pytest.mark.parametrize(
    ("label", "probabilities"),
    [
        (np.array([1], dtype=np.int64), np.array([[0.25, 0.75]], dtype=np.float32)),
        (np.array([1], dtype=np.int32), np.array([0.25, 0.75], dtype=np.float64)),
        (np.array([[1]], dtype=np.int64), np.array([[0.25], [0.75]], dtype=np.float32).T),
        ([1], [[0.25, 0.75]]),
    ],
    ids=["onnxruntime", "other-dtypes", "other-shapes-and-order", "lists"],
)
def test_classifier_response_json(label: Any, probabilities: Any) -> None:
    body, header_length = encode_infer_response(_classifier_response(label, probabilities), None)
    assert header_length is None
    assert body == _EXPECTED_JSON


def test_classifier_response_binary() -> None:
    response = _classifier_response(
        np.array([1], dtype=np.int64), np.array([[0.25, 0.75]], dtype=np.float32)
    )
    request = InferenceRequest(inputs=[], parameters={"binary_data_output": True})
    body, header_length = encode_infer_response(response, request)
    assert header_length is not None
    assert body[header_length:] == struct.pack("<q2f", 1, 0.25, 0.75)
    sizes = [o["parameters"] for o in orjson.loads(body[:header_length])["outputs"]]
    assert sizes == [{"binary_data_size": 8}, {"binary_data_size": 8}]


def test_output_parameters_are_not_changed_by_encoding() -> None:
    parameters: dict[str, Any] = {"unit": "m", "binary_data_size": 1}
    tensor = Tensor("y", Datatype.INT8, (1,), np.array([1], dtype=np.int8), parameters)
    request = InferenceRequest(inputs=[], parameters={"binary_data_output": True})
    for req in (None, request):
        encode_infer_response(InferenceResponse("m", [tensor]), req)
    assert parameters == {"unit": "m", "binary_data_size": 1}


def test_wrong_size_right_dtype_output_still_fails() -> None:
    response = _classifier_response(
        np.array([1, 2], dtype=np.int64), np.array([[0.25, 0.75]], dtype=np.float32)
    )
    with pytest.raises(InferenceFailed, match="output 'label': shape \\[1\\] needs 1 elements"):
        encode_infer_response(response, None)


# ---- the one-pass decoder of the common request (rest._decode_plain) ----

_PLAIN_DATATYPES = ["FP32", "FP64", "FP16", "INT64", "INT32", "INT8", "UINT8", "BOOL", "BYTES"]
_json_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.integers(-300, 300),
    st.booleans(),
    st.sampled_from([1e39, -70000, "1.5", None, [1.0]]),
)


@st.composite
def _plain_like_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Requests of the common form, often with one thing changed that the fast path declines."""
    rows, cols = draw(st.integers(0, 3)), draw(st.integers(1, 4))
    uniform = draw(st.sampled_from([st.floats(-1e6, 1e6, width=32), st.integers(-100, 100)]))
    values = st.one_of(uniform, _json_values) if draw(st.booleans()) else uniform
    data: Any = [[draw(values) for _ in range(cols)] for _ in range(rows)]
    if draw(st.booleans()):
        data = [v for row in data for v in row]  # flat data is allowed too
    tensor: dict[str, Any] = {
        "name": draw(st.sampled_from(["x", "input", ""])),
        "datatype": draw(st.sampled_from([*_PLAIN_DATATYPES, "FP99", 7])),
        "shape": draw(st.sampled_from([[rows, cols], [rows * cols], [rows, cols + 1], [-1, cols]])),
        "data": data,
    }
    if draw(st.integers(0, 5)) == 0:
        tensor["parameters"] = {"content_type": "np"}
    doc: dict[str, Any] = {"inputs": [tensor]}
    if draw(st.booleans()):
        doc["inputs"].append({**tensor, "name": "y"})
    extra = draw(
        st.sampled_from(
            [
                "none",
                "id",
                "null-id",
                "int-id",
                "outputs",
                "dup-outputs",
                "empty-outputs",
                "output-params",
                "parameters",
                "other",
            ]
        )
    )
    if extra == "id":
        doc["id"] = "r-1"
    elif extra == "null-id":
        doc["id"] = None
    elif extra == "int-id":
        doc["id"] = 5
    elif extra == "outputs":
        doc["outputs"] = [{"name": "p"}, {"name": "q"}]
    elif extra == "dup-outputs":
        doc["outputs"] = [{"name": "p"}, {"name": "p"}]
    elif extra == "empty-outputs":
        doc["outputs"] = []
    elif extra == "output-params":
        doc["outputs"] = [{"name": "p", "parameters": {"binary_data": True}}]
    elif extra == "parameters":
        doc["parameters"] = {"timeout": 5}
    elif extra == "other":
        doc["extra"] = 1
    return doc


def _values(array: np.ndarray) -> object:
    # Bytes compare NaN equal to NaN; object arrays (BYTES) hold Python values.
    return array.tolist() if array.dtype == object else array.tobytes()


def _outcome(body: bytes, header_length: int | None) -> object:
    try:
        request = decode_infer_request(body, header_length)
    except InvalidInput as exc:
        return ("error", exc.message)
    tensors = [
        (t.name, t.datatype, t.shape, t.data.dtype, t.data.shape, _values(t.data), t.parameters)
        for t in request.inputs
    ]
    outputs = None if request.outputs is None else [(o.name, o.parameters) for o in request.outputs]
    return tensors, request.id, request.parameters, outputs


@settings(max_examples=400, deadline=None)
@given(_plain_like_requests())
def test_the_one_pass_decoder_agrees_with_the_general_one(doc: dict[str, Any]) -> None:
    body = orjson.dumps(doc)
    # A header length equal to the body's takes the general path for the same all-JSON body.
    assert _outcome(body, None) == _outcome(body, len(body))


def test_the_common_request_takes_the_one_pass_decoder() -> None:
    from modelport.protocol.rest import _decode_plain

    doc = {
        "id": "r-1",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [0.5, 1, 2]}],
        "outputs": [{"name": "probabilities"}],
    }
    request = _decode_plain(doc, orjson.dumps(doc))
    assert request is not None
    assert request.inputs[0].data.dtype == np.float32 and request.inputs[0].shape == (1, 3)
    assert request.id == "r-1" and [o.name for o in request.outputs or ()] == ["probabilities"]
    doc["parameters"] = {"binary_data_output": True}
    assert _decode_plain(doc, orjson.dumps(doc)) is None  # parameters: the general path


@pytest.mark.parametrize(
    ("datatype", "data", "error"),
    [
        (Datatype.FP32, [1.0, 1e39], "out of range for FP32"),
        (Datatype.FP32, [1.0, True], "FP32 expects numbers"),
        (Datatype.FP32, [1.0, "2"], "FP32 expects numbers"),
        (Datatype.INT8, [1, 128], "INT8"),
        (Datatype.UINT64, [1, -1], "UINT64"),
        (Datatype.INT32, [1, 2.5], "INT32"),
        (Datatype.FP64, [1.0, 2.0, 3.0], "needs 2 elements but data has 3"),
    ],
)
def test_flat_data_the_array_pass_refuses_is_worded_by_the_checked_path(
    datatype: Datatype, data: list[Any], error: str
) -> None:
    assert tensor_data.numeric_from_json_fast(data, datatype, (1, 2), True) is None
    with pytest.raises(InvalidInput, match=error):
        tensor_data.array_from_json(data, datatype, (1, 2), "input 'x'")


def test_flat_data_takes_the_array_pass_with_the_checked_paths_values() -> None:
    data: list[Any] = [1, 2.5, -3e38, 2**60]
    fast = tensor_data.numeric_from_json_fast(data, Datatype.FP32, (2, 2), False)
    assert fast is not None and fast.dtype == np.float32 and fast.shape == (2, 2)
    assert fast.flags.writeable and fast.flags.c_contiguous
    np.testing.assert_array_equal(
        fast, tensor_data._numeric_checked(data, Datatype.FP32, (2, 2), "t")
    )
