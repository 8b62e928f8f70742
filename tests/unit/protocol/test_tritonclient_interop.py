"""Cross-check the binary framing and JSON forms against NVIDIA's tritonclient HTTP library."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import tritonclient.http as triton

from modelport.core.datatypes import Datatype
from modelport.core.inference import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelport.protocol.rest import decode_infer_request, encode_infer_response

from .samples import JSON_DATATYPES, assert_same, sample


def _triton_array(datatype: Datatype, shape: tuple[int, ...]) -> np.ndarray:
    """The sample values as tritonclient wants them (BF16 as ml_dtypes.bfloat16)."""
    values = sample(datatype, shape)
    if datatype is Datatype.BF16:
        return values.view(ml_dtypes.bfloat16)
    return values


def _ours(datatype: Datatype, array: np.ndarray) -> np.ndarray:
    """tritonclient's numpy form -> ours (BF16 as raw uint16 bits, BYTES as bytes)."""
    if datatype is Datatype.BF16:
        return np.asarray(array).view(np.uint16)
    if datatype is Datatype.BYTES:
        flat = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1).tolist()]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(array.shape)
    return array


@pytest.mark.parametrize("shape", [(2, 3), (0,), (1, 0, 2)], ids=str)
@pytest.mark.parametrize("datatype", list(Datatype), ids=str)
def test_tritonclient_binary_request_decodes(datatype: Datatype, shape: tuple[int, ...]) -> None:
    array = _triton_array(datatype, shape)
    infer_input = triton.InferInput("x", list(shape), datatype.value)
    infer_input.set_data_from_numpy(array, binary_data=True)
    outputs = [triton.InferRequestedOutput("y", binary_data=True)]
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [infer_input], outputs=outputs
    )
    request = decode_infer_request(body, json_size)
    (x,) = request.inputs
    assert (x.name, x.datatype, x.shape, x.parameters) == ("x", datatype, shape, {})
    assert_same(x.data, sample(datatype, shape), datatype)
    assert request.outputs == [RequestedOutput("y", {"binary_data": True})]


@pytest.mark.parametrize("datatype", JSON_DATATYPES, ids=str)
def test_tritonclient_json_request_decodes(datatype: Datatype) -> None:
    if datatype is Datatype.BYTES:
        array = np.array([["a", "h\u00e9"], ["", "\u65e5\u672c"]], dtype=object)
    else:
        array = sample(datatype, (2, 3))
    infer_input = triton.InferInput("x", list(array.shape), datatype.value)
    infer_input.set_data_from_numpy(array, binary_data=False)
    body, json_size = triton.InferenceServerClient.generate_request_body([infer_input])
    assert json_size is None
    request = decode_infer_request(body, json_size)
    assert_same(request.inputs[0].data, _ours(datatype, array), datatype)
    # tritonclient asks for binary outputs when it names none
    assert request.parameters == {"binary_data_output": True} and request.outputs is None


def test_tritonclient_mixed_request_with_several_inputs() -> None:
    a = triton.InferInput("a", [2], "FP32").set_data_from_numpy(
        np.array([1.5, 2.5], dtype=np.float32)
    )
    b = triton.InferInput("b", [1, 2], "BYTES").set_data_from_numpy(
        np.array([[b"\xff", b""]], dtype=object)
    )
    c = triton.InferInput("c", [3], "INT64").set_data_from_numpy(
        np.array([1, -2, 3]), binary_data=False
    )
    d = triton.InferInput("d", [2], "BOOL").set_data_from_numpy(np.array([True, False]))
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [a, b, c, d], request_id="r7", parameters={"custom": "v"}
    )
    request = decode_infer_request(body, json_size)
    assert request.id == "r7" and request.parameters["custom"] == "v"
    got = {t.name: t.data.tolist() for t in request.inputs}
    assert got == {"a": [1.5, 2.5], "b": [[b"\xff", b""]], "c": [1, -2, 3], "d": [True, False]}


@pytest.mark.parametrize("shape", [(2, 3), (0,), (2, 0)], ids=str)
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", list(Datatype), ids=str)
def test_tritonclient_parses_our_response(
    datatype: Datatype, binary: bool, shape: tuple[int, ...]
) -> None:
    values = sample(datatype, shape)
    response = InferenceResponse(
        "m", [Tensor("y", datatype, shape, values)], model_version="1", id="r"
    )
    request = InferenceRequest(inputs=[], outputs=[RequestedOutput("y", {"binary_data": binary})])
    body, header_length = encode_infer_response(response, request)
    result = triton.InferResult.from_response_body(body, verbose=False, header_length=header_length)
    parsed = result.as_numpy("y")
    assert parsed.shape == shape
    assert_same(_ours(datatype, parsed).astype(values.dtype, copy=False), values, datatype)
    assert result.get_response()["id"] == "r" and result.get_response()["model_version"] == "1"


def test_tritonclient_reads_several_binary_and_json_outputs() -> None:
    outputs = [
        Tensor("p", Datatype.FP32, (2, 2), np.array([[0.25, 0.75], [1.0, 0.0]], dtype=np.float32)),
        Tensor("label", Datatype.BYTES, (2,), np.array(["cat", "d\u00f8g"], dtype=object)),
        Tensor("idx", Datatype.INT64, (2,), np.array([3, 9])),
        Tensor("raw", Datatype.BYTES, (1,), np.array([b"\x80\x81"], dtype=object)),
    ]
    request = InferenceRequest(
        inputs=[],
        parameters={"binary_data_output": True},
        outputs=[RequestedOutput("idx", {"binary_data": False})],
    )
    body, header_length = encode_infer_response(InferenceResponse("m", outputs), request)
    result = triton.InferResult.from_response_body(body, header_length=header_length)
    np.testing.assert_array_equal(result.as_numpy("p"), outputs[0].data)
    assert result.as_numpy("label").tolist() == [b"cat", "d\u00f8g".encode()]
    assert result.as_numpy("idx").tolist() == [3, 9]
    assert result.as_numpy("raw").tolist() == [b"\x80\x81"]
    assert "data" in result.get_output("idx")
