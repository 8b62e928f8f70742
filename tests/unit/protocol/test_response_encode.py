"""encode_infer_response against known bodies, and its binary-output choices."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import InferenceFailed
from modelport.core.inference import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelport.protocol.rest import encode_infer_response


def _request(
    outputs: list[RequestedOutput] | None = None, binary_data_output: bool | None = None
) -> InferenceRequest:
    parameters = {} if binary_data_output is None else {"binary_data_output": binary_data_output}
    x = Tensor("x", Datatype.INT8, (1,), np.array([1], dtype=np.int8))
    return InferenceRequest(inputs=[x], parameters=parameters, outputs=outputs)


def _response() -> InferenceResponse:
    return InferenceResponse(
        model_name="m",
        outputs=[
            Tensor("y", Datatype.FP32, (2,), np.array([1.5, -2.0], dtype=np.float32)),
            Tensor("z", Datatype.INT32, (1, 2), np.array([[7, 8]], dtype=np.int32)),
        ],
    )


def _binary_names(body: bytes, header_length: int | None) -> list[str]:
    header = orjson.loads(body[:header_length] if header_length is not None else body)
    return [o["name"] for o in header["outputs"] if "binary_data_size" in o.get("parameters", {})]


def test_pure_json_known_body() -> None:
    body, header_length = encode_infer_response(_response(), None)
    assert header_length is None
    assert body == (
        b'{"model_name":"m","outputs":['
        b'{"name":"y","datatype":"FP32","shape":[2],"data":[1.5,-2.0]},'
        b'{"name":"z","datatype":"INT32","shape":[1,2],"data":[7,8]}]}'
    )


def test_optional_top_level_fields() -> None:
    response = _response()
    response.id = "abc"
    response.model_version = "3"
    response.parameters = {"sequence_end": True}
    doc = orjson.loads(encode_infer_response(response, None)[0])
    assert doc["id"] == "abc" and doc["model_version"] == "3"
    assert doc["parameters"] == {"sequence_end": True}
    plain = orjson.loads(encode_infer_response(_response(), None)[0])
    assert set(plain) == {"model_name", "outputs"}


def test_request_level_binary_known_body() -> None:
    body, header_length = encode_infer_response(_response(), _request(binary_data_output=True))
    assert header_length is not None
    header = body[:header_length]
    assert header == (
        b'{"model_name":"m","outputs":['
        b'{"name":"y","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},'
        b'{"name":"z","datatype":"INT32","shape":[1,2],"parameters":{"binary_data_size":8}}]}'
    )
    assert body[header_length:] == struct.pack("<2f", 1.5, -2.0) + struct.pack("<2i", 7, 8)


@pytest.mark.parametrize(
    ("outputs", "binary_data_output", "expected"),
    [
        (None, None, []),
        (None, False, []),
        (None, True, ["y", "z"]),
        ([RequestedOutput("y", {"binary_data": True})], None, ["y"]),
        ([RequestedOutput("y", {"binary_data": False})], True, ["z"]),
        ([RequestedOutput("y", {"binary_data": False}), RequestedOutput("z")], True, ["z"]),
        ([RequestedOutput("z", {"binary_data": True}), RequestedOutput("y")], False, ["z"]),
    ],
)
def test_binary_choice_per_output_wins(
    outputs: list[RequestedOutput] | None, binary_data_output: bool | None, expected: list[str]
) -> None:
    body, header_length = encode_infer_response(_response(), _request(outputs, binary_data_output))
    assert _binary_names(body, header_length) == expected
    assert (header_length is None) == (not expected)


def test_binary_outputs_are_appended_in_output_order() -> None:
    request = _request(
        [RequestedOutput("z", {"binary_data": True}), RequestedOutput("y", {"binary_data": True})]
    )
    body, header_length = encode_infer_response(_response(), request)
    assert header_length is not None
    assert body[header_length:] == struct.pack("<2f", 1.5, -2.0) + struct.pack("<2i", 7, 8)


def test_bf16_is_always_binary() -> None:
    response = InferenceResponse(
        "m", [Tensor("h", Datatype.BF16, (2,), np.array([0x3F80, 0xC000], dtype=np.uint16))]
    )
    request = _request([RequestedOutput("h", {"binary_data": False})])
    body, header_length = encode_infer_response(response, request)
    assert header_length is not None
    assert _binary_names(body, header_length) == ["h"]
    assert body[header_length:] == b"\x80\x3f\x00\xc0"


def test_bf16_from_floats_is_rounded() -> None:
    values = np.array([1.0, -2.0, 1.00390625, np.inf], dtype=np.float32)  # 1 + 2**-8 ties to even
    response = InferenceResponse("m", [Tensor("h", Datatype.BF16, (4,), values)])
    body, header_length = encode_infer_response(response, None)
    assert header_length is not None
    assert np.frombuffer(body[header_length:], dtype="<u2").tolist() == [
        0x3F80,
        0xC000,
        0x3F80,
        0x7F80,
    ]


def test_non_utf8_bytes_force_binary_and_utf8_stays_json() -> None:
    bad = np.array([b"ok", b"\xff\xfe"], dtype=object)
    good = np.array(["h\u00e9", b""], dtype=object)  # str elements are UTF-8 encoded
    response = InferenceResponse(
        "m", [Tensor("bad", Datatype.BYTES, (2,), bad), Tensor("good", Datatype.BYTES, (2,), good)]
    )
    body, header_length = encode_infer_response(response, None)
    assert header_length is not None
    header = orjson.loads(body[:header_length])
    bad_json, good_json = header["outputs"]
    assert bad_json["parameters"] == {"binary_data_size": 12} and "data" not in bad_json
    assert good_json["data"] == ["h\u00e9", ""]
    assert body[header_length:] == b"\x02\x00\x00\x00ok\x02\x00\x00\x00\xff\xfe"


def test_any_numeric_dtype_is_cast_to_the_datatype() -> None:
    response = InferenceResponse(
        "m",
        [
            Tensor("f", Datatype.FP32, (3,), np.array([1, 2, 3], dtype=np.int64)),
            Tensor("i", Datatype.INT16, (2,), np.array([1.0, -2.0])),
            Tensor("b", Datatype.BOOL, (2,), np.array([0, 3])),
            Tensor("h", Datatype.FP16, (1,), np.array([0.1], dtype=np.float64)),
        ],
    )
    body, header_length = encode_infer_response(response, _request(binary_data_output=True))
    assert header_length is not None
    raw = body[header_length:]
    assert (
        raw
        == struct.pack("<3f", 1, 2, 3)
        + struct.pack("<2h", 1, -2)
        + b"\x00\x01"
        + np.float16(0.1).tobytes()
    )


def test_float16_json_and_nan_becomes_null() -> None:
    response = InferenceResponse(
        "m",
        [
            Tensor("h", Datatype.FP16, (2,), np.array([0.5, np.nan], dtype=np.float16)),
            Tensor("d", Datatype.FP64, (2,), np.array([np.inf, 0.25])),
        ],
    )
    doc = orjson.loads(encode_infer_response(response, None)[0])
    assert doc["outputs"][0]["data"] == [0.5, None]
    assert doc["outputs"][1]["data"] == [None, 0.25]


def test_json_data_is_flat_row_major_even_for_non_contiguous_arrays() -> None:
    data = np.arange(6, dtype=np.int32).reshape(3, 2).T  # Fortran-ordered view
    response = InferenceResponse("m", [Tensor("t", Datatype.INT32, (2, 3), data)])
    doc = orjson.loads(encode_infer_response(response, None)[0])
    assert doc["outputs"][0]["data"] == [0, 2, 4, 1, 3, 5]
    assert doc["outputs"][0]["shape"] == [2, 3]


def test_output_parameters_kept_and_stale_binary_size_dropped() -> None:
    t = Tensor(
        "y",
        Datatype.INT8,
        (1,),
        np.array([1], dtype=np.int8),
        {"binary_data_size": 99, "unit": "m"},
    )
    doc = orjson.loads(encode_infer_response(InferenceResponse("m", [t]), None)[0])
    assert doc["outputs"][0]["parameters"] == {"unit": "m"}
    assert doc["outputs"][0]["data"] == [1]


def test_scalar_and_empty_outputs() -> None:
    response = InferenceResponse(
        "m",
        [
            Tensor("s", Datatype.FP64, (), np.array(2.5)),
            Tensor("e", Datatype.INT32, (2, 0), np.zeros((2, 0), dtype=np.int32)),
            Tensor("eb", Datatype.BYTES, (0,), np.array([], dtype=object)),
        ],
    )
    doc = orjson.loads(encode_infer_response(response, None)[0])
    assert [o["data"] for o in doc["outputs"]] == [[2.5], [], []]
    body, header_length = encode_infer_response(response, _request(binary_data_output=True))
    assert header_length is not None and body[header_length:] == struct.pack("<d", 2.5)
    sizes = [
        o["parameters"]["binary_data_size"] for o in orjson.loads(body[:header_length])["outputs"]
    ]
    assert sizes == [8, 0, 0]


@pytest.mark.parametrize(
    ("tensor", "fragment"),
    [
        (
            Tensor("y", Datatype.FP32, (3,), np.zeros(2)),
            "shape [3] needs 3 elements but data has 2",
        ),
        (
            Tensor("y", Datatype.BYTES, (1,), np.array([5], dtype=object)),
            "BYTES element 0 is a int; expected bytes or str",
        ),
        (Tensor("y", Datatype.INT32, (1,), np.array(["a"])), "INT32 data must be numeric"),
        (Tensor("y", Datatype.FP32, (-1,), np.zeros(1)), "negative dimension"),
    ],
)
def test_unencodable_outputs_raise_inference_failed(tensor: Tensor, fragment: str) -> None:
    with pytest.raises(InferenceFailed, match="cannot be encoded") as info:
        encode_infer_response(InferenceResponse("m", [tensor]), None)
    assert fragment in str(info.value)
    assert "output 'y'" in str(info.value)
