"""Bad bodies raise InvalidInput naming the problem and what was expected; nothing else escapes."""

from __future__ import annotations

import struct
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.core.datatypes import Datatype
from modelport.core.errors import InvalidInput
from modelport.core.signature import TensorSpec
from modelport.protocol.rest import (
    decode_infer_request,
    decode_infer_response,
    decode_json_object,
    decode_raw_input,
)


def _one(**fields: Any) -> bytes:
    """A request with one input named x: INT32, shape [2], data [1, 2], overridden by fields."""
    tensor: dict[str, Any] = {"name": "x", "datatype": "INT32", "shape": [2], "data": [1, 2]}
    tensor.update(fields)
    return orjson.dumps({"inputs": [{k: v for k, v in tensor.items() if v is not _DROP}]})


_DROP: Any = object()


def _binary(datatype: str, shape: list[int], size: Any, raw: bytes) -> tuple[bytes, int]:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": datatype,
                    "shape": shape,
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    )
    return header + raw, len(header)


JSON_CASES: list[tuple[str, bytes, str]] = [
    (
        "truncated json",
        b'{"inputs": [',
        "invalid JSON in request body at position 12: unexpected end of data",
    ),
    ("not utf-8", b'{"id": "\xff"}', "invalid JSON in request body at position"),
    (
        "trailing comma",
        b'{"inputs": [1,]}',
        "invalid JSON in request body at position 13: trailing comma",
    ),
    ("top-level list", b"[]", "the request body must be a JSON object, got a list"),
    ("top-level string", b'"hi"', "the request body must be a JSON object, got the string 'hi'"),
    ("empty body", b"", "invalid JSON in request body at position 0"),
    ("missing inputs", b"{}", "'inputs' is missing; expected a list of one tensor per model input"),
    ("empty inputs", b'{"inputs": []}', "'inputs' is an empty list; expected a list of one tensor"),
    (
        "inputs not list",
        b'{"inputs": {}}',
        "'inputs' must be a list of tensors, got an object",
    ),
    ("input not object", b'{"inputs": [1]}', "inputs[0] must be an object, got 1"),
    ("missing name", _one(name=_DROP), "inputs[0]: 'name' must be a non-empty string, got null"),
    ("empty name", _one(name=""), "inputs[0]: 'name' must be a non-empty string"),
    ("name not string", _one(name=3), "inputs[0]: 'name' must be a non-empty string, got 3"),
    ("missing datatype", _one(datatype=_DROP), "input 'x': 'datatype' is missing"),
    (
        "unknown datatype",
        _one(datatype="FP8"),
        "input 'x': unknown datatype 'FP8'; expected one of BOOL",
    ),
    ("lowercase datatype", _one(datatype="fp32"), "unknown datatype 'fp32'; expected one of"),
    (
        "missing shape",
        _one(shape=_DROP),
        "input 'x': 'shape' is missing; expected a list of non-negative integers",
    ),
    (
        "shape not list",
        _one(shape=3),
        "input 'x': 'shape' must be a list of non-negative integers, got 3",
    ),
    (
        "negative dim",
        _one(shape=[-1]),
        "shape [-1] contains -1; dimensions must be non-negative integers",
    ),
    ("float dim", _one(shape=[2.0]), "contains 2.0; dimensions must be non-negative integers"),
    ("bool dim", _one(shape=[True]), "contains true; dimensions must be non-negative integers"),
    (
        "too many dims",
        _one(shape=[1] * 65, data=[1]),
        "shape has 65 dimensions; at most 64 allowed",
    ),
    ("huge empty shape", _one(shape=[0, 2**40, 2**40], data=[]), "is too large"),
    (
        "no data",
        _one(data=_DROP),
        "input 'x' has neither 'data' nor parameters.binary_data_size; expected one",
    ),
    (
        "shared memory",
        _one(data=_DROP, parameters={"shared_memory_region": "r"}),
        "shared-memory tensors are not supported",
    ),
    (
        "data and binary",
        _one(parameters={"binary_data_size": 8}),
        "has both 'data' and parameters.binary_data_size",
    ),
    (
        "too few elements",
        _one(shape=[2, 3], data=[1, 2, 3, 4, 5]),
        "input 'x': shape [2, 3] needs 6 elements but data has 5",
    ),
    (
        "too many elements",
        _one(shape=[2], data=[1, 2, 3]),
        "shape [2] needs 2 elements but data has 3",
    ),
    (
        "ragged",
        _one(shape=[2, 3], data=[[1, 2, 3], [4, 5]]),
        "data[1] has 2 items but shape [2, 3] needs 3 there",
    ),
    (
        "nested other shape",
        _one(shape=[2, 3], data=[[1, 2], [3, 4], [5, 6]]),
        "data has 3 items but shape [2, 3] needs 2 there",
    ),
    (
        "leaf where list due",
        _one(shape=[2, 2], data=[[1, 2], 3]),
        "data[1] is 3 but shape [2, 2] needs a list of 2 there",
    ),
    (
        "nested too deep",
        _one(shape=[2], data=[[1], [2]]),
        "element 0 of data is a list; INT32 expects integers",
    ),
    (
        "scalar for list",
        _one(shape=[2], data=5),
        "'data' must be a list (flat or nested as shape [2]), got 5",
    ),
    ("float into int", _one(data=[1, 1.5]), "element 1 of data is 1.5; INT32 expects integers"),
    (
        "bool into int",
        _one(datatype="INT64", data=[1, True]),
        "element 1 of data is true; INT64 expects integers (true/false are only valid for BOOL)",
    ),
    (
        "all bools into int",
        _one(data=[True, False]),
        "element 0 of data is true; INT32 expects integers",
    ),
    (
        "bool into float",
        _one(datatype="FP32", data=[True, 1.0]),
        "element 0 of data is true; FP32 expects numbers",
    ),
    (
        "bool into float int mix",
        _one(datatype="FP64", data=[2, False]),
        "element 1 of data is false; FP64 expects numbers",
    ),
    (
        "int into bool",
        _one(datatype="BOOL", data=[1, 0]),
        "element 0 of data is 1; BOOL expects true or false",
    ),
    (
        "string into float",
        _one(datatype="FP64", data=["1.5", 2]),
        "element 0 of data is the string '1.5'; FP64 expects numbers",
    ),
    ("null into int", _one(data=[None, 1]), "element 0 of data is null; INT32 expects integers"),
    (
        "object into int",
        _one(data=[{}, 1]),
        "element 0 of data is an object; INT32 expects integers",
    ),
    (
        "uint8 overflow",
        _one(datatype="UINT8", data=[1, 256]),
        "element 1 of data is 256; that is out of range for UINT8; expected [0, 255]",
    ),
    (
        "negative unsigned",
        _one(datatype="UINT32", data=[-1, 2]),
        "element 0 of data is -1; that is out of range for UINT32",
    ),
    (
        "int8 underflow",
        _one(datatype="INT8", data=[-129, 0]),
        "out of range for INT8; expected [-128, 127]",
    ),
    (
        "int64 overflow",
        _one(datatype="INT64", data=[2**63, 0]),
        "element 0 of data is 9223372036854775808; that is out of range for INT64",
    ),
    (
        "int64 mixed signs",
        _one(datatype="UINT64", data=[-1, 2**63]),
        "element 0 of data is -1; that is out of range for UINT64",
    ),
    (
        "fp16 overflow",
        _one(datatype="FP16", data=[1.0, 70000.0]),
        "element 1 of data is 70000.0; that is out of range for FP16 (largest finite value 65504.0)",
    ),
    ("fp32 overflow", _one(datatype="FP32", data=[1e39, 1]), "out of range for FP32"),
    (
        "bytes not string",
        _one(datatype="BYTES", data=["a", 5]),
        "element 1 of data is 5; BYTES expects strings",
    ),
    (
        "bf16 json",
        _one(datatype="BF16", data=[1.0, 2.0]),
        "input 'x': BF16 is only supported in binary form",
    ),
    (
        "id not string",
        b'{"id": 5, "inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]}',
        "request: 'id' must be a string, got 5",
    ),
    (
        "parameters not object",
        b'{"parameters": [], "inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]}',
        "request: 'parameters' must be an object, got a list",
    ),
    (
        "nested parameter",
        b'{"parameters": {"a": {}}, "inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]}',
        "request: parameter 'a' is an object; parameter values must be strings, numbers or booleans",
    ),
    (
        "null input parameter",
        _one(parameters={"a": None}),
        "input 'x': parameter 'a' is null; parameter values must be",
    ),
    (
        "binary_data_output string",
        b'{"parameters": {"binary_data_output": "yes"}, "inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]}',
        "parameter 'binary_data_output' must be true or false, got the string 'yes'",
    ),
    (
        "outputs not list",
        b'{"outputs": {}, "inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]}',
        "'outputs' must be a list of objects, got an object",
    ),
    (
        "output not object",
        b'{"outputs": ["y"], "inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]}',
        "outputs[0] must be an object, got the string 'y'",
    ),
    (
        "output without name",
        b'{"outputs": [{}], "inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]}',
        "outputs[0]: 'name' must be a non-empty string, got null",
    ),
    (
        "binary_data not bool",
        b'{"outputs": [{"name": "y", "parameters": {"binary_data": 1}}], "inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]}',
        "requested output 'y': parameter 'binary_data' must be true or false, got 1",
    ),
    (
        "duplicate output",
        b'{"outputs": [{"name": "y"}, {"name": "y"}], "inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]}',
        "output 'y' is requested more than once",
    ),
    ("deep json", b"[" * 5000 + b"]" * 5000, "invalid JSON in request body"),
]


@pytest.mark.parametrize(
    ("body", "fragment"), [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES]
)
def test_bad_json_request(body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_infer_request(body, None)
    assert fragment in str(info.value)


BINARY_CASES: list[tuple[str, bytes, int | None, str]] = [
    (
        "size beyond body",
        *_binary("FP32", [4], 16, b"\x00" * 8),
        "input 'x' has binary_data_size 16 but only 8 bytes remain in the body",
    ),
    (
        "leftover bytes",
        *_binary("FP32", [2], 8, b"\x00" * 12),
        "the body has 4 bytes left after the binary tensor data",
    ),
    (
        "size does not match shape",
        *_binary("INT32", [3], 8, b"\x00" * 8),
        "shape [3] of INT32 needs 12 bytes (3 elements of 4) but binary_data_size is 8",
    ),
    (
        "size not multiple",
        *_binary("FP32", [2], 6, b"\x00" * 6),
        "needs 8 bytes (2 elements of 4) but binary_data_size is 6",
    ),
    (
        "negative size",
        *_binary("FP32", [2], -1, b""),
        "binary_data_size must be a non-negative integer, got -1",
    ),
    (
        "string size",
        *_binary("FP32", [2], "8", b"\x00" * 8),
        "binary_data_size must be a non-negative integer, got the string '8'",
    ),
    (
        "bytes cut length",
        *_binary("BYTES", [2], 6, b"\x01\x00\x00\x00a\x00"),
        "BYTES element 1 has a cut-off length prefix (1 bytes left",
    ),
    (
        "bytes long element",
        *_binary("BYTES", [1], 6, b"\x0a\x00\x00\x00ab"),
        "BYTES element 0 declares 10 bytes but only 2 remain",
    ),
    (
        "bytes too few",
        *_binary("BYTES", [2], 5, b"\x01\x00\x00\x00a"),
        "shape [2] needs 2 BYTES elements but its binary data holds 1",
    ),
    (
        "bytes too many",
        *_binary("BYTES", [1], 8, b"\x00" * 8),
        "shape [1] needs 1 BYTES elements but its binary data holds more than 1",
    ),
    (
        "bytes empty shape with data",
        *_binary("BYTES", [0], 4, b"\x00" * 4),
        "shape [0] needs 0 BYTES elements",
    ),
]


@pytest.mark.parametrize(
    ("body", "header_length", "fragment"),
    [c[1:] for c in BINARY_CASES],
    ids=[c[0] for c in BINARY_CASES],
)
def test_bad_binary_request(body: bytes, header_length: int | None, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_infer_request(body, header_length)
    assert fragment in str(info.value)


_OK = b'{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[1]}]}'


@pytest.mark.parametrize(
    ("header_length", "fragment"),
    [
        (
            len(_OK) + 1,
            f"Inference-Header-Content-Length is {len(_OK) + 1} but the request body has only {len(_OK)} bytes",
        ),
        (-1, "Inference-Header-Content-Length is -1; expected the byte length of the JSON header"),
        (
            0,
            "Inference-Header-Content-Length is 0; expected the byte length of the JSON header (0 marks a raw binary body",
        ),
        (10, "invalid JSON in request body at position 10: unexpected end of data"),
    ],
)
def test_bad_header_length(header_length: int, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_infer_request(_OK, header_length)
    assert fragment in str(info.value)


def test_binary_input_without_header_length_hints_at_the_header() -> None:
    body, _ = _binary("INT8", [1], 1, b"")
    with pytest.raises(InvalidInput, match="no Inference-Header-Content-Length was given"):
        decode_infer_request(body, None)


@pytest.mark.parametrize(
    ("spec", "body", "fragment"),
    [
        (
            TensorSpec("x", Datatype.FP32, (-1,)),
            b"\x00" * 6,
            "input 'x': the raw body has 6 bytes, which is not a multiple of the FP32 element size 4",
        ),
        (TensorSpec("x", Datatype.FP32, (-1, -1)), b"\x00" * 8, "has 2 variable dimensions"),
        (
            TensorSpec("x", Datatype.INT8, (2, 2)),
            b"\x00" * 2,
            "shape [2, 2] needs 4 elements but the body holds 2",
        ),
        (
            TensorSpec("x", Datatype.INT8, (-1, 3)),
            b"\x00" * 4,
            "the body holds 4 elements, which is not a multiple of 3",
        ),
        (TensorSpec("x", Datatype.INT8, (-1, 0)), b"", "has a zero dimension"),
        (
            TensorSpec("s", Datatype.BYTES, (-1,)),
            b"\x05\x00\x00\x00ab",
            "BYTES element 0 declares 5 bytes but only 2 remain",
        ),
        (
            TensorSpec("s", Datatype.BYTES, (-1,)),
            b"\x00\x00\x00\x00\x00\x00",
            "BYTES element 1 has a cut-off length prefix (2 bytes left",
        ),
    ],
)
def test_bad_raw_input(spec: TensorSpec, body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_raw_input(body, spec)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("body", "header_length", "fragment"),
    [
        (
            b'{"error": "model m is not ready"}',
            None,
            "the server answered with an error: model m is not ready",
        ),
        (b'{"model_name": "m"}', None, "response: 'outputs' must be a list of tensors, got null"),
        (b'{"outputs": []}', None, "response: 'model_name' must be a string, got null"),
        (
            b'{"model_name": "m", "model_version": 1, "outputs": []}',
            None,
            "response: 'model_version' must be a string, got 1",
        ),
        (
            b'{"model_name": "m", "outputs": [{"name": "y", "datatype": "FP32", "shape": [1], "data": ["a"]}]}',
            None,
            "output 'y': element 0 of data is the string 'a'; FP32 expects numbers",
        ),
        (
            b'{"model_name": "m", "outputs": []}',
            0,
            "Inference-Header-Content-Length is 0; expected the byte length of the JSON header",
        ),
        (b"nope", None, "invalid JSON in response body at position 0"),
    ],
)
def test_bad_response(body: bytes, header_length: int | None, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_infer_response(body, header_length)
    assert fragment in str(info.value)


def test_decode_json_object() -> None:
    assert decode_json_object(b"", "repository load request") == {}
    assert decode_json_object(b" \n", "repository load request") == {}
    assert decode_json_object(b'{"ready": true}', "repository index request") == {"ready": True}
    with pytest.raises(
        InvalidInput, match=r"the repository index request must be a JSON object, got a list"
    ):
        decode_json_object(b"[1]", "repository index request")
    with pytest.raises(
        InvalidInput, match=r"invalid JSON in repository load request at position 1"
    ):
        decode_json_object(b"{bad", "repository load request")


def test_there_are_enough_distinct_bad_input_cases() -> None:
    assert len(JSON_CASES) + len(BINARY_CASES) >= 25


# --- fuzz: whatever arrives, only InvalidInput may escape ---

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
_datatypes = st.sampled_from([d.value for d in Datatype] + ["NOPE", 3])
_shape = st.one_of(st.lists(st.integers(min_value=-2, max_value=4), max_size=3), _json)
_tensor = st.fixed_dictionaries(
    {"name": st.one_of(st.just("x"), _json), "datatype": _datatypes, "shape": _shape},
    optional={
        "data": _json,
        "parameters": st.one_of(
            st.fixed_dictionaries(
                {"binary_data_size": st.one_of(st.integers(min_value=-1, max_value=40), _json)}
            ),
            _json,
        ),
    },
)
_request = st.fixed_dictionaries(
    {"inputs": st.one_of(st.lists(_tensor, max_size=3), _json)},
    optional={"id": _json, "parameters": _json, "outputs": _json},
)


@settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    _request, st.binary(max_size=48), st.one_of(st.none(), st.integers(min_value=-2, max_value=400))
)
def test_fuzz_only_invalid_input_escapes(
    doc: dict[str, Any], tail: bytes, header_length: int | None
) -> None:
    header = orjson.dumps(doc)
    body = header + tail
    if header_length is not None and header_length >= len(header) - 2:
        header_length = len(header)  # mostly keep the header whole, so the tensors get checked
    for decode in (decode_infer_request, decode_infer_response):
        try:
            decode(body, header_length)
        except InvalidInput:
            pass


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.binary(max_size=64),
    st.sampled_from(list(Datatype)),
    st.lists(st.integers(min_value=-1, max_value=3), max_size=3),
)
def test_fuzz_raw_input(body: bytes, datatype: Datatype, shape: list[int]) -> None:
    try:
        decode_raw_input(body, TensorSpec("x", datatype, tuple(shape)))
    except InvalidInput:
        pass


def test_fuzz_bytes_framing_against_struct() -> None:
    raw = struct.pack("<I", 3) + b"abc" + struct.pack("<I", 0)
    body, header_length = _binary("BYTES", [2], len(raw), raw)
    assert decode_infer_request(body, header_length).inputs[0].data.tolist() == [b"abc", b""]


_value = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-300, max_value=300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.none(),
)
_nested = st.recursive(
    st.lists(_value, max_size=4),
    lambda inner: st.lists(inner, min_size=1, max_size=3),
    max_leaves=16,
)
_well_formed_tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a", "b"]),
        "datatype": st.sampled_from([d.value for d in Datatype]),
        "shape": st.lists(st.integers(min_value=0, max_value=3), max_size=3),
    }
).flatmap(
    lambda t: st.one_of(
        st.builds(lambda d: {**t, "data": d}, _nested),
        st.builds(
            lambda n: {**t, "parameters": {"binary_data_size": n}},
            st.integers(min_value=0, max_value=40),
        ),
    )
)


@settings(
    max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(_well_formed_tensor, min_size=1, max_size=3), st.binary(max_size=64))
def test_fuzz_well_formed_headers_only_invalid_input_escapes(
    tensors: list[dict[str, Any]], tail: bytes
) -> None:
    header = orjson.dumps({"inputs": tensors})
    for header_length in (len(header), None):
        try:
            request = decode_infer_request(header + tail, header_length)
        except InvalidInput:
            continue
        for tensor, raw in zip(request.inputs, tensors, strict=True):
            assert tensor.data.shape == tuple(raw["shape"])
