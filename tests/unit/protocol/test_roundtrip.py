"""Round trips through both directions of the REST codec, for every datatype and form."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelport.core.datatypes import Datatype, to_numpy_dtype
from modelport.core.inference import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelport.protocol.rest import (
    decode_infer_request,
    decode_infer_response,
    encode_infer_request,
    encode_infer_response,
)

from .samples import ALL_DATATYPES, assert_same, tensor

SHAPES = [(2, 3), (6,), (3, 1, 2), (0,), (2, 0), ()]


def _request_roundtrip(inputs: list[Tensor], binary: bool) -> tuple[InferenceRequest, int | None]:
    body, header_length = encode_infer_request(
        InferenceRequest(inputs=inputs), binary_inputs=binary
    )
    return decode_infer_request(body, header_length), header_length


def _response_roundtrip(
    outputs: list[Tensor], binary: bool
) -> tuple[InferenceResponse, int | None]:
    request = InferenceRequest(inputs=[], parameters={"binary_data_output": binary})
    body, header_length = encode_infer_response(InferenceResponse("m", outputs), request)
    return decode_infer_response(body, header_length), header_length


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", ALL_DATATYPES, ids=str)
def test_request_roundtrip_every_datatype(
    datatype: Datatype, binary: bool, shape: tuple[int, ...]
) -> None:
    original = tensor("x", datatype, shape)
    decoded, header_length = _request_roundtrip([original], binary)
    (x,) = decoded.inputs
    assert (x.name, x.datatype, x.shape, x.parameters) == ("x", datatype, shape, {})
    assert_same(x.data, original.data, datatype)
    # BF16 has no JSON form; everything else stays JSON unless asked otherwise
    assert (header_length is not None) == (binary or datatype is Datatype.BF16)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", ALL_DATATYPES, ids=str)
def test_response_roundtrip_every_datatype(
    datatype: Datatype, binary: bool, shape: tuple[int, ...]
) -> None:
    original = tensor("y", datatype, shape)
    decoded, header_length = _response_roundtrip([original], binary)
    (y,) = decoded.outputs
    assert (y.name, y.datatype, y.shape) == ("y", datatype, shape)
    assert decoded.model_name == "m"
    assert_same(y.data, original.data, datatype)
    assert (header_length is not None) == (binary or datatype is Datatype.BF16)


def test_request_with_all_datatypes_mixed_binary_and_json() -> None:
    inputs = [tensor(f"in_{dt.value.lower()}", dt) for dt in ALL_DATATYPES]
    for binary in (False, True):
        decoded, _ = _request_roundtrip(inputs, binary)
        assert [t.name for t in decoded.inputs] == [t.name for t in inputs]
        for got, want in zip(decoded.inputs, inputs, strict=True):
            assert_same(got.data, want.data, want.datatype)


def test_response_with_some_outputs_binary() -> None:
    outputs = [tensor(f"out_{dt.value.lower()}", dt) for dt in ALL_DATATYPES]
    binary_names = {"out_fp32", "out_bytes", "out_bool"}
    request = InferenceRequest(
        inputs=[],
        outputs=[RequestedOutput(t.name, {"binary_data": t.name in binary_names}) for t in outputs],
    )
    body, header_length = encode_infer_response(
        InferenceResponse("m", outputs, "2", "id-9"), request
    )
    assert header_length is not None
    header = orjson.loads(body[:header_length])
    sent_binary = {o["name"] for o in header["outputs"] if "data" not in o}
    assert sent_binary == binary_names | {"out_bf16"}
    decoded = decode_infer_response(body, header_length)
    assert (decoded.model_version, decoded.id) == ("2", "id-9")
    for got, want in zip(decoded.outputs, outputs, strict=True):
        assert_same(got.data, want.data, want.datatype)


def test_request_metadata_roundtrip() -> None:
    request = InferenceRequest(
        inputs=[tensor("x", Datatype.FP32)],
        id="req-1",
        parameters={"priority": 1, "tag": "a", "w": 0.5},
        outputs=[RequestedOutput("y", {"binary_data": False}), RequestedOutput("z")],
    )
    body, header_length = encode_infer_request(request, binary_outputs=True)
    assert header_length is None
    decoded = decode_infer_request(body, header_length)
    assert decoded.id == "req-1"
    assert decoded.parameters == {"priority": 1, "tag": "a", "w": 0.5, "binary_data_output": True}
    assert decoded.outputs == request.outputs


def test_per_input_parameters_survive_and_binary_size_is_recomputed() -> None:
    x = Tensor(
        "x",
        Datatype.INT32,
        (2,),
        np.array([1, 2], dtype=np.int32),
        {"binary_data_size": 3, "k": "v"},
    )
    decoded, header_length = _request_roundtrip([x], True)
    assert header_length is not None
    assert decoded.inputs[0].parameters == {"k": "v"}
    decoded, header_length = _request_roundtrip([x], False)
    assert header_length is None and decoded.inputs[0].parameters == {"k": "v"}


def test_non_utf8_bytes_input_goes_binary_even_in_json_mode() -> None:
    x = Tensor("s", Datatype.BYTES, (2,), np.array([b"\x80", b"ok"], dtype=object))
    decoded, header_length = _request_roundtrip([x], False)
    assert header_length is not None
    assert decoded.inputs[0].data.tolist() == [b"\x80", b"ok"]


# --- property: random datatypes, shapes and values ---

_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@st.composite
def _tensors(draw: st.DrawFn, json_safe: bool) -> Tensor:
    datatype = draw(st.sampled_from(ALL_DATATYPES))
    shape = draw(_shapes)
    count = int(np.prod(shape))
    if datatype is Datatype.BYTES:
        items = draw(st.lists(st.binary(max_size=8), min_size=count, max_size=count))
        data = np.empty(count, dtype=object)
        data[:] = items
        return Tensor("t", datatype, shape, data.reshape(shape))
    dtype = to_numpy_dtype(datatype)
    elements = None
    if dtype.kind == "f" and json_safe:
        elements = hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False)
    return Tensor("t", datatype, shape, draw(hnp.arrays(dtype, shape, elements=elements)))


def _same_bits(actual: np.ndarray, expected: np.ndarray, datatype: Datatype) -> None:
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if datatype is Datatype.BYTES:
        assert actual.reshape(-1).tolist() == expected.reshape(-1).tolist()
    else:
        assert actual.tobytes() == expected.tobytes()


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(_tensors(json_safe=False), min_size=1, max_size=3), st.booleans())
def test_property_binary_roundtrip_is_bit_exact(tensors: list[Tensor], as_response: bool) -> None:
    named = [Tensor(f"t{i}", t.datatype, t.shape, t.data) for i, t in enumerate(tensors)]
    if as_response:
        got = _response_roundtrip(named, True)[0].outputs
    else:
        got = _request_roundtrip(named, True)[0].inputs
    for actual, original in zip(got, named, strict=True):
        assert (actual.name, actual.datatype, actual.shape) == (
            original.name,
            original.datatype,
            original.shape,
        )
        _same_bits(actual.data, original.data, original.datatype)


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(_tensors(json_safe=True), min_size=1, max_size=3), st.booleans())
def test_property_json_roundtrip_is_exact(tensors: list[Tensor], as_response: bool) -> None:
    named = [Tensor(f"t{i}", t.datatype, t.shape, t.data) for i, t in enumerate(tensors)]
    if as_response:
        got = _response_roundtrip(named, False)[0].outputs
    else:
        got = _request_roundtrip(named, False)[0].inputs
    for actual, original in zip(got, named, strict=True):
        _same_bits(actual.data, original.data, original.datatype)
