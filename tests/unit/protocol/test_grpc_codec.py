"""The gRPC codec: every datatype both ways, raw and typed, bad input, and tritonclient's view."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import _utils as triton_utils
from tritonclient.grpc import service_pb2 as triton_pb

from modelport.core.datatypes import Datatype
from modelport.core.errors import InferenceFailed, InvalidInput
from modelport.core.inference import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelport.protocol import grpc_codec as codec
from modelport.protocol.grpc_gen import inference_pb2 as pb

from .samples import assert_same, sample

RAW_ONLY = {Datatype.FP16, Datatype.BF16}
TYPED = [dt for dt in Datatype if dt not in RAW_ONLY]
SHAPES = [(2, 3), (0,), (1, 0, 2)]
FORMS = [
    pytest.param(dt, raw, id=f"{dt}-{'raw' if raw else 'typed'}")
    for dt in Datatype
    for raw in (True, False)
    if raw or dt not in RAW_ONLY
]


def _wire(message: Any, kind: Any) -> Any:
    """Serialise and parse again as ``kind``, as the other end of a connection would."""
    return kind.FromString(message.SerializeToString())


def _request(*tensors: Tensor, **kwargs: Any) -> InferenceRequest:
    return InferenceRequest(inputs=list(tensors), **kwargs)


def _decode(request: InferenceRequest, raw: bool = True) -> InferenceRequest:
    message = codec.encode_infer_request(request, "m", raw=raw)
    return codec.decode_infer_request(_wire(message, pb.ModelInferRequest))


def _bad(message: Any, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        codec.decode_infer_request(message)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("datatype", "raw"), FORMS)
def test_request_round_trip(datatype: Datatype, raw: bool, shape: tuple[int, ...]) -> None:
    tensor = Tensor("x", datatype, shape, sample(datatype, shape))
    (x,) = _decode(_request(tensor), raw=raw).inputs
    assert (x.name, x.datatype, x.shape, x.parameters) == ("x", datatype, shape, {})
    assert_same(x.data, sample(datatype, shape), datatype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("datatype", "raw"), FORMS)
def test_response_round_trip(datatype: Datatype, raw: bool, shape: tuple[int, ...]) -> None:
    response = InferenceResponse(
        "m", [Tensor("y", datatype, shape, sample(datatype, shape))], model_version="3", id="r"
    )
    message = _wire(codec.encode_infer_response(response, raw=raw), pb.ModelInferResponse)
    assert len(message.raw_output_contents) == (1 if raw else 0)
    decoded = codec.decode_infer_response(message)
    assert (decoded.model_name, decoded.model_version, decoded.id) == ("m", "3", "r")
    (y,) = decoded.outputs
    assert (y.name, y.datatype, y.shape) == ("y", datatype, shape)
    assert_same(y.data, sample(datatype, shape), datatype)


def test_several_inputs_keep_their_order_and_raw_entries() -> None:
    tensors = [Tensor(dt.value.lower(), dt, (2, 3), sample(dt)) for dt in Datatype]
    decoded = _decode(_request(*tensors))
    assert [t.name for t in decoded.inputs] == [t.name for t in tensors]
    for got, sent in zip(decoded.inputs, tensors, strict=True):
        assert_same(got.data, sent.data, sent.datatype)


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_bytes_elements_survive_exactly(raw: bool) -> None:
    values = np.empty(5, dtype=object)
    values[:] = [b"", "日本語".encode(), b"\x00", b"\xff\xfe", b"a" * 1000]
    (x,) = _decode(_request(Tensor("s", Datatype.BYTES, (5,), values)), raw=raw).inputs
    assert x.data.tolist() == values.tolist()


def test_str_elements_of_a_response_are_sent_as_utf8() -> None:
    values = np.array(["héllo", ""], dtype=object)
    response = InferenceResponse("m", [Tensor("y", Datatype.BYTES, (2,), values)])
    (y,) = codec.decode_infer_response(codec.encode_infer_response(response)).outputs
    assert y.data.tolist() == ["héllo".encode(), b""]


PARAMETERS: dict[str, Any] = {
    "flag": True,
    "off": False,
    "count": -7,
    "big": 2**63 - 1,
    "huge": 2**64 - 1,
    "name": "héllo",
    "ratio": 0.25,
}


def test_parameters_of_every_kind_round_trip_at_every_level() -> None:
    tensor = Tensor("x", Datatype.INT32, (1,), np.array([1], np.int32), dict(PARAMETERS))
    request = _request(
        tensor,
        id="req-1",
        parameters=dict(PARAMETERS),
        outputs=[RequestedOutput("y", dict(PARAMETERS))],
    )
    message = codec.encode_infer_request(request, "m", "2")
    kinds = {k: v.WhichOneof("parameter_choice") for k, v in message.parameters.items()}
    assert kinds == {
        "flag": "bool_param",
        "off": "bool_param",
        "count": "int64_param",
        "big": "int64_param",
        "huge": "uint64_param",
        "name": "string_param",
        "ratio": "double_param",
    }
    decoded = codec.decode_infer_request(_wire(message, pb.ModelInferRequest))
    assert decoded.id == "req-1"
    assert decoded.parameters == PARAMETERS
    assert decoded.inputs[0].parameters == PARAMETERS
    assert decoded.outputs == [RequestedOutput("y", PARAMETERS)]
    assert all(type(decoded.parameters[k]) is type(v) for k, v in PARAMETERS.items())


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, None, [1]], ids=repr)
def test_parameters_that_do_not_fit_are_refused(value: Any) -> None:
    message = pb.ModelInferRequest()
    with pytest.raises(InvalidInput, match="parameter 'p'"):
        codec.encode_parameters({"p": value}, message.parameters, "request")
    assert "p" not in message.parameters


def test_response_parameters_that_do_not_fit_are_an_internal_failure() -> None:
    response = InferenceResponse("m", [], parameters={"p": 2**70})
    with pytest.raises(InferenceFailed, match="cannot be encoded.*parameter 'p'"):
        codec.encode_infer_response(response)


def test_no_requested_outputs_means_every_output() -> None:
    decoded = _decode(_request(Tensor("x", Datatype.INT8, (1,), np.array([1], np.int8))))
    assert decoded.outputs is None and decoded.id is None and decoded.parameters == {}


def _message(datatype: str = "FP32", shape: tuple[int, ...] = (2,)) -> Any:
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype=datatype, shape=shape)
    return message


def test_mixed_raw_and_typed_values_are_refused() -> None:
    message = _message()
    message.inputs[0].contents.fp32_contents.extend([1.0, 2.0])
    message.inputs.add(name="z", datatype="FP32", shape=[2])
    message.raw_input_contents.extend([np.zeros(2, np.float32).tobytes()] * 2)
    _bad(message, "input 'x' has typed contents but the request also has raw_input_contents")


def test_raw_entries_must_match_the_inputs() -> None:
    message = _message()
    message.inputs.add(name="z", datatype="FP32", shape=[2])
    message.raw_input_contents.append(np.zeros(2, np.float32).tobytes())
    _bad(message, "1 raw_input_contents entries for 2 inputs; expected one per input")


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([1.0], r"shape \[2\] needs 2 elements but contents.fp32_contents has 1"),
        ([1.0, 2.0, 3.0], r"needs 2 elements but contents.fp32_contents has 3"),
    ],
)
def test_typed_count_must_match_the_shape(values: list[float], match: str) -> None:
    message = _message()
    message.inputs[0].contents.fp32_contents.extend(values)
    _bad(message, match)


def test_raw_size_must_match_the_shape() -> None:
    message = _message("INT32", (2, 2))
    message.raw_input_contents.append(b"\x00" * 12)
    _bad(
        message,
        r"shape \[2, 2\] of INT32 needs 16 bytes \(4 elements of 4\) but its "
        "raw_input_contents entry has 12",
    )


def test_raw_bytes_framing_must_match_the_shape() -> None:
    message = _message("BYTES", (3,))
    message.raw_input_contents.append(b"\x01\x00\x00\x00a")
    _bad(message, r"shape \[3\] needs 3 BYTES elements but its binary data holds 1")


def test_values_are_required_for_a_non_empty_tensor() -> None:
    _bad(_message(), "input 'x' has no values; expected them in contents or in raw_input_contents")


@pytest.mark.parametrize("datatype", ["FP16", "BF16"])
def test_fp16_and_bf16_have_no_typed_form(datatype: str) -> None:
    message = _message(datatype)
    message.inputs[0].contents.fp32_contents.extend([1.0, 2.0])
    _bad(message, f"{datatype} has no typed contents field; send its values in raw_input_contents")
    tensor = Tensor("x", Datatype(datatype), (1,), np.zeros(1, np.uint16))
    with pytest.raises(InvalidInput, match=f"{datatype} has no typed contents field"):
        codec.encode_infer_request(_request(tensor), "m", raw=False)


def test_values_in_another_datatypes_field_are_refused() -> None:
    message = _message("INT64")
    message.inputs[0].contents.int_contents.extend([1, 2])
    _bad(
        message, "INT64 values belong in contents.int64_contents, but contents.int_contents holds 2"
    )


@pytest.mark.parametrize(
    ("datatype", "value", "bounds"),
    [
        ("INT8", 128, r"\[-128, 127\]"),
        ("INT16", -40000, r"\[-32768, 32767\]"),
        ("UINT8", 256, r"\[0, 255\]"),
        ("UINT16", 70000, r"\[0, 65535\]"),
    ],
)
def test_narrow_integers_are_range_checked(datatype: str, value: int, bounds: str) -> None:
    message = _message(datatype, (2,))
    field = "uint_contents" if datatype.startswith("U") else "int_contents"
    getattr(message.inputs[0].contents, field).extend([0, value])
    _bad(
        message,
        f"element 1 of contents.{field} is {value}, out of range for {datatype}; expected {bounds}",
    )


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.ClearField("inputs"), "'inputs' is empty"),
        (lambda m: setattr(m.inputs[0], "name", ""), r"inputs\[0\]: 'name' must be a non-empty"),
        (
            lambda m: setattr(m.inputs[0], "datatype", "FLOAT"),
            "input 'x': unknown datatype 'FLOAT'",
        ),
        (lambda m: m.inputs[0].shape.append(-1), r"shape \[2, -1\] contains -1"),
        (lambda m: m.inputs[0].shape.extend([1] * 70), "at most 64 allowed"),
        (lambda m: m.parameters["p"].Clear(), "request: parameter 'p' has no value"),
        (lambda m: m.outputs.add(name=""), r"outputs\[0\]: 'name' must be a non-empty"),
        (
            lambda m: [m.outputs.add(name="y") for _ in "ab"],
            "output 'y' is requested more than once",
        ),
    ],
)
def test_malformed_requests_are_refused(edit: Any, match: str) -> None:
    message = _message()
    message.inputs[0].contents.fp32_contents.extend([1.0, 2.0])
    edit(message)
    _bad(message, match)


def test_model_target_and_timeout() -> None:
    assert codec.model_target("iris", "") == ("iris", None)
    assert codec.model_target("iris", "2") == ("iris", "2")
    with pytest.raises(InvalidInput, match="model name is empty"):
        codec.model_target("", "1")
    assert codec.timeout_seconds({}) is None
    assert codec.timeout_seconds({"timeout": 0}) is None
    assert codec.timeout_seconds({"timeout": 2_500_000}) == 2.5
    for bad in (-1, True, "5"):
        with pytest.raises(InvalidInput, match="'timeout' must be a non-negative number"):
            codec.timeout_seconds({"timeout": bad})


# ---------------------------------------------------------------- tritonclient's view


def _triton_array(datatype: Datatype, shape: tuple[int, ...]) -> np.ndarray:
    values = sample(datatype, shape)
    return values.view(ml_dtypes.bfloat16) if datatype is Datatype.BF16 else values


@pytest.mark.parametrize("shape", [(2, 3), (0, 3)], ids=str)
@pytest.mark.parametrize("datatype", list(Datatype), ids=str)
def test_tritonclient_request_decodes(datatype: Datatype, shape: tuple[int, ...]) -> None:
    infer_input = triton.InferInput("x", list(shape), datatype.value)
    infer_input.set_data_from_numpy(_triton_array(datatype, shape))
    theirs = triton_utils._get_inference_request(
        model_name="m",
        inputs=[infer_input],
        model_version="2",
        request_id="r-9",
        outputs=[triton.InferRequestedOutput("y")],
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=3,
        timeout=1500,
        parameters={"mode": "fast", "scale": 0.5, "flag": True},
    )
    message = _wire(theirs, pb.ModelInferRequest)
    assert codec.model_target(message.model_name, message.model_version) == ("m", "2")
    request = codec.decode_infer_request(message)
    (x,) = request.inputs
    assert (x.name, x.datatype, x.shape) == ("x", datatype, shape)
    assert_same(x.data, sample(datatype, shape), datatype)
    assert request.id == "r-9"
    assert request.outputs == [RequestedOutput("y")]
    assert request.parameters == {
        "priority": 3,
        "timeout": 1500,
        "mode": "fast",
        "scale": 0.5,
        "flag": True,
    }
    assert codec.timeout_seconds(request.parameters) == 0.0015


@pytest.mark.parametrize("shape", [(2, 3), (0,)], ids=str)
@pytest.mark.parametrize("datatype", list(Datatype), ids=str)
def test_tritonclient_reads_our_response(datatype: Datatype, shape: tuple[int, ...]) -> None:
    response = InferenceResponse(
        "m", [Tensor("y", datatype, shape, sample(datatype, shape))], model_version="1", id="r"
    )
    result = triton.InferResult(
        _wire(codec.encode_infer_response(response), triton_pb.ModelInferResponse)
    )
    got = result.as_numpy("y")
    expected = _triton_array(datatype, shape)
    assert got.shape == shape
    if datatype is Datatype.BF16:
        assert got.dtype == ml_dtypes.bfloat16
        np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))
    elif datatype is Datatype.BYTES:
        assert got.tolist() == expected.tolist()
    else:
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    assert result.get_response().id == "r"
    assert result.get_output("y").datatype == datatype.value


def _fields(descriptor: Any) -> dict[str, tuple[int, int]]:
    return {f.name: (f.number, f.type) for f in descriptor.fields}


def _messages(descriptor: Any, prefix: str = "") -> dict[str, Any]:
    found = {}
    for message in descriptor.message_types_by_name.values() if prefix == "" else descriptor:
        found[message.full_name] = message
        found.update(_messages(message.nested_types, "nested"))
    return found


def test_every_field_has_tritonclient_number_and_type() -> None:
    from tritonclient.grpc import model_config_pb2 as triton_config

    ours = _messages(pb.DESCRIPTOR)
    theirs = {**_messages(triton_pb.DESCRIPTOR), **_messages(triton_config.DESCRIPTOR)}
    # The Open Inference Protocol's ModelMetadataResponse.properties (field 6) is newer than
    # Triton's copy; a field Triton's clients do not know is skipped by their parser.
    beyond_triton = {"inference.ModelMetadataResponse": {"properties"}}
    for name, message in ours.items():
        if name == "inference.ModelMetadataResponse.PropertiesEntry":
            continue
        assert name in theirs, name
        fields = {k: v for k, v in _fields(message).items() if k not in beyond_triton.get(name, ())}
        missing = {k: v for k, v in fields.items() if _fields(theirs[name]).get(k) != v}
        assert not missing, (name, missing)
    assert _fields(ours["inference.ModelMetadataResponse"])["properties"][0] == 6
    for enum in ("TYPE_INVALID", "TYPE_BOOL", "TYPE_FP16", "TYPE_STRING", "TYPE_BF16"):
        assert pb.DataType.Value(enum) == triton_config.DataType.Value(enum)
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    their_service = triton_pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method in service.methods:
        twin = their_service.methods_by_name[method.name]
        assert method.input_type.full_name == twin.input_type.full_name
        assert method.output_type.full_name == twin.output_type.full_name
        assert (method.client_streaming, method.server_streaming) == (
            twin.client_streaming,
            twin.server_streaming,
        )


# ---------------------------------------------------------------- metadata and control messages

METADATA = {
    "name": "m",
    "versions": ["1", "2"],
    "platform": "sklearn",
    "inputs": [{"name": "x", "datatype": "BYTES", "shape": [-1, 4]}],
    "outputs": [
        {"name": "y", "datatype": "BF16", "shape": [-1]},
        {"name": "z", "datatype": "FP64", "shape": [-1, 3]},
    ],
}


def test_model_metadata_and_config_as_tritonclient_reads_them() -> None:
    meta = _wire(codec.encode_model_metadata(METADATA), triton_pb.ModelMetadataResponse)
    assert (meta.name, list(meta.versions), meta.platform) == ("m", ["1", "2"], "sklearn")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("x", "BYTES", [-1, 4])]
    config = _wire(codec.encode_model_config(METADATA), triton_pb.ModelConfigResponse).config
    assert (config.name, config.platform, config.max_batch_size) == ("m", "sklearn", 0)
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [("x", 13, [-1, 4])]
    assert [(o.name, o.data_type) for o in config.output] == [("y", 14), ("z", 12)]


def test_statistics_index_and_server_metadata() -> None:
    entry = {
        "name": "m",
        "version": "1",
        "last_inference": 1_700_000_000_000,
        "inference_count": 9,
        "execution_count": 3,
        "inference_stats": {"success": {"count": 3, "ns": 1500}, "fail": {"count": 1, "ns": 20}},
    }
    stats = _wire(codec.encode_model_statistics([entry]), triton_pb.ModelStatisticsResponse)
    (s,) = stats.model_stats
    assert (s.name, s.version, s.last_inference, s.inference_count, s.execution_count) == (
        "m",
        "1",
        1_700_000_000_000,
        9,
        3,
    )
    assert (s.inference_stats.success.count, s.inference_stats.success.ns) == (3, 1500)
    assert (s.inference_stats.fail.count, s.inference_stats.fail.ns) == (1, 20)
    index = codec.encode_repository_index(
        [{"name": "m", "version": "1", "state": "READY", "reason": ""}]
    )
    assert [(m.name, m.version, m.state) for m in index.models] == [("m", "1", "READY")]
    server = codec.encode_server_metadata({"name": "s", "version": "1", "extensions": ["a"]})
    assert (server.name, list(server.extensions)) == ("s", ["a"])


def test_repository_requests() -> None:
    theirs = triton_pb.RepositoryModelLoadRequest(model_name="m")
    theirs.parameters["config"].string_param = "{}"
    theirs.parameters["file:1/model.onnx"].bytes_param = b"\x00\x01"
    theirs.parameters["n"].int64_param = 4
    theirs.parameters["f"].bool_param = True
    name, parameters = codec.decode_repository_request(_wire(theirs, pb.RepositoryModelLoadRequest))
    assert name == "m"
    assert parameters == {"config": "{}", "file:1/model.onnx": b"\x00\x01", "n": 4, "f": True}
    with pytest.raises(InvalidInput, match="repository_name 'other' is not supported"):
        codec.decode_repository_request(pb.RepositoryModelLoadRequest(repository_name="other"))
    with pytest.raises(InvalidInput, match="model_name is empty"):
        codec.decode_repository_request(pb.RepositoryModelUnloadRequest())
