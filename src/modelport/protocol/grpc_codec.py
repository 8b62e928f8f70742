"""gRPC codecs of the Open Inference Protocol: protobuf messages <-> the core inference types.

Both directions are here, as in :mod:`modelport.protocol.rest`: the server decodes requests and
encodes responses, a client encodes requests and decodes responses. Tensor values travel either
typed, in ``contents`` (one repeated field per datatype family), or raw, one entry per tensor in
``raw_input_contents`` / ``raw_output_contents`` laid out as the binary tensor extension lays
them out (the helpers of :mod:`modelport.protocol.binary` do that part). Bad input raises
:class:`InvalidInput` with a message naming the tensor and what was expected.

Rules and choices:

- A request's values are all raw or all typed: an input with typed contents next to
  ``raw_input_contents`` is an error, as is a raw entry count that differs from the input count.
- INT8/16/32 use ``int_contents``, UINT8/16/32 ``uint_contents`` (range-checked); FP16 and BF16
  have no typed field and travel raw only.
- The server answers raw (``raw_output_contents``), which tritonclient reads first.
- Parameters map to the ``InferParameter`` kinds both ways; an ``int`` outside int64 but inside
  uint64 goes as ``uint64_param``.
- ``timeout`` is Triton's request parameter, in microseconds; 0 means none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from modelport.core.datatypes import Datatype, element_size, parse_datatype, to_numpy_dtype
from modelport.core.errors import InferenceFailed, InvalidInput
from modelport.core.inference import (
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestedOutput,
    Tensor,
)
from modelport.protocol.binary import array_from_buffer, array_to_buffer
from modelport.protocol.grpc_gen import inference_pb2 as pb
from modelport.protocol.header import MAX_DIMS, MAX_EXTENT
from modelport.protocol.model_config import model_config
from modelport.protocol.tensor_data import coerce_array, object_array

__all__ = [
    "check_repository",
    "decode_infer_request",
    "decode_infer_response",
    "decode_parameters",
    "decode_repository_request",
    "encode_infer_request",
    "encode_infer_response",
    "encode_model_config",
    "encode_model_metadata",
    "encode_model_statistics",
    "encode_parameters",
    "encode_repository_index",
    "encode_server_metadata",
    "model_target",
    "timeout_seconds",
]

_CONTENTS: Final[dict[Datatype, str]] = {
    Datatype.BOOL: "bool_contents",
    Datatype.INT8: "int_contents",
    Datatype.INT16: "int_contents",
    Datatype.INT32: "int_contents",
    Datatype.INT64: "int64_contents",
    Datatype.UINT8: "uint_contents",
    Datatype.UINT16: "uint_contents",
    Datatype.UINT32: "uint_contents",
    Datatype.UINT64: "uint64_contents",
    Datatype.FP32: "fp32_contents",
    Datatype.FP64: "fp64_contents",
    Datatype.BYTES: "bytes_contents",
}
_FIELDS: Final = tuple(dict.fromkeys(_CONTENTS.values()))
_NARROW: Final = frozenset({Datatype.INT8, Datatype.INT16, Datatype.UINT8, Datatype.UINT16})
_PARAMETER_KINDS: Final = "bool_param, int64_param, string_param, double_param or uint64_param"


def model_target(name: str, version: str) -> tuple[str, str | None]:
    """Return ``(name, version)`` from a request's fields; an empty version means the default.

    Raises:
        InvalidInput: The model name is empty.
    """
    if not name:
        raise InvalidInput("the model name is empty; expected the name of a hosted model")
    return name, version or None


def _oneof_values(parameters: Mapping[str, Any], what: str, kinds: str) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for key, value in parameters.items():
        choice = value.WhichOneof("parameter_choice")
        if choice is None:
            raise InvalidInput(f"{what}: parameter {key!r} has no value; expected {kinds}")
        decoded[key] = getattr(value, choice)
    return decoded


def decode_parameters(parameters: Mapping[str, Any], what: str) -> Parameters:
    """Return a ``map<string, InferParameter>`` as plain values.

    Raises:
        InvalidInput: A parameter has no value set.
    """
    return _oneof_values(parameters, what, _PARAMETER_KINDS)


def encode_parameters(parameters: Mapping[str, object], target: Any, what: str) -> None:
    """Write ``parameters`` into a ``map<string, InferParameter>`` field.

    Raises:
        InvalidInput: A value is not a bool, string, float or 64-bit integer.
    """
    for key, value in parameters.items():
        entry = target[key]
        if isinstance(value, bool):
            entry.bool_param = value
        elif isinstance(value, int | np.integer) and -(2**63) <= value < 2**64:
            if value < 2**63:
                entry.int64_param = int(value)
            else:
                entry.uint64_param = int(value)
        elif isinstance(value, float):
            entry.double_param = value
        elif isinstance(value, str):
            entry.string_param = value
        else:
            del target[key]
            raise InvalidInput(
                f"{what}: parameter {key!r} is {value!r}; expected a bool, string, float or "
                "integer within 64 bits"
            )


def timeout_seconds(parameters: Parameters) -> float | None:
    """Return the ``timeout`` parameter (microseconds) in seconds, or ``None`` when unset or 0.

    Raises:
        InvalidInput: The value is not a non-negative integer.
    """
    value = parameters.get("timeout")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidInput(
            f"parameter 'timeout' must be a non-negative number of microseconds, got {value!r}"
        )
    return value / 1e6 if value else None


def _shape(dims: Iterable[int], what: str) -> tuple[int, ...]:
    shape = tuple(dims)
    if len(shape) > MAX_DIMS:
        raise InvalidInput(f"{what}: shape has {len(shape)} dimensions; at most {MAX_DIMS} allowed")
    for dim in shape:
        if dim < 0:
            raise InvalidInput(
                f"{what}: shape {list(shape)} contains {dim}; dimensions must be non-negative"
            )
    if math.prod(d for d in shape if d) > MAX_EXTENT:
        raise InvalidInput(f"{what}: shape {list(shape)} is too large (more than 2**60 elements)")
    return shape


def _holds_values(contents: Any) -> bool:
    return any(len(getattr(contents, field)) for field in _FIELDS)


def _from_contents(
    contents: Any, datatype: Datatype, shape: tuple[int, ...], what: str, raw_name: str
) -> np.ndarray:
    """Decode typed ``contents``; only the datatype's own field may hold values."""
    field = _CONTENTS.get(datatype)
    if field is None:
        raise InvalidInput(
            f"{what}: {datatype} has no typed contents field; send its values in {raw_name}"
        )
    for other in _FIELDS:
        held = len(getattr(contents, other))
        if other != field and held:
            raise InvalidInput(
                f"{what}: {datatype} values belong in contents.{field}, "
                f"but contents.{other} holds {held} values"
            )
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise InvalidInput(
            f"{what}: shape {list(shape)} needs {count} elements but contents.{field} "
            f"has {len(values)}"
        )
    if datatype is Datatype.BYTES:
        return object_array(list(values), shape)
    target = to_numpy_dtype(datatype)
    if datatype not in _NARROW:
        return np.fromiter(values, dtype=target, count=count).reshape(shape)
    wide = np.fromiter(values, dtype=np.int64, count=count)
    info = np.iinfo(target.type)  # type: ignore[type-var]  # narrow ints only, see _NARROW
    bad = np.flatnonzero((wide < info.min) | (wide > info.max))
    if bad.size:
        index = int(bad[0])
        raise InvalidInput(
            f"{what}: element {index} of contents.{field} is {int(wide[index])}, out of range "
            f"for {datatype}; expected [{info.min}, {info.max}]"
        )
    return wide.astype(target).reshape(shape)


def _from_raw(
    buffer: bytes, datatype: Datatype, shape: tuple[int, ...], what: str, raw_name: str
) -> np.ndarray:
    size = element_size(datatype)
    if size is not None:
        count = math.prod(shape)
        if len(buffer) != count * size:
            raise InvalidInput(
                f"{what}: shape {list(shape)} of {datatype} needs {count * size} bytes "
                f"({count} elements of {size}) but its {raw_name} entry has {len(buffer)}"
            )
    return array_from_buffer(buffer, 0, len(buffer), datatype, shape, what)


def _decode_tensors(messages: Sequence[Any], raw: Sequence[bytes], role: str) -> list[Tensor]:
    """Decode request inputs or response outputs with their raw entries, if any."""
    raw_name = f"raw_{role}_contents"
    owner = "request" if role == "input" else "response"
    if raw and len(raw) != len(messages):
        raise InvalidInput(
            f"the {owner} has {len(raw)} {raw_name} entries for {len(messages)} {role}s; "
            f"expected one per {role}, in {role} order"
        )
    tensors: list[Tensor] = []
    for index, message in enumerate(messages):
        if not message.name:
            raise InvalidInput(f"{role}s[{index}]: 'name' must be a non-empty string")
        what = f"{role} {message.name!r}"
        try:
            datatype = parse_datatype(message.datatype)
        except ValueError as exc:
            raise InvalidInput(f"{what}: {exc}") from None
        shape = _shape(message.shape, what)
        parameters = decode_parameters(message.parameters, what)
        contents = message.contents
        if raw:
            if _holds_values(contents):
                raise InvalidInput(
                    f"{what} has typed contents but the {owner} also has {raw_name}; "
                    f"send every {role}'s values one way, all in {raw_name} or all in contents"
                )
            data = _from_raw(raw[index], datatype, shape, what, raw_name)
        elif math.prod(shape) and not _holds_values(contents):
            raise InvalidInput(f"{what} has no values; expected them in contents or in {raw_name}")
        else:
            data = _from_contents(contents, datatype, shape, what, raw_name)
        tensors.append(Tensor(message.name, datatype, shape, data, parameters))
    return tensors


def _encode_tensor(target: Any, tensor: Tensor, raw: Any | None, role: str) -> None:
    """Fill one input/output message, appending its values to ``raw`` or to its contents."""
    what = f"{role} {tensor.name!r}"
    array = coerce_array(tensor.data, tensor.datatype, tensor.shape, what)
    target.name = tensor.name
    target.datatype = tensor.datatype.value
    target.shape.extend(int(dim) for dim in tensor.shape)
    parameters = {k: v for k, v in tensor.parameters.items() if k != "binary_data_size"}
    encode_parameters(parameters, target.parameters, what)
    if raw is not None:
        raw.append(bytes(array_to_buffer(array, tensor.datatype, what)))
        return
    field = _CONTENTS.get(tensor.datatype)
    if field is None:
        raise InvalidInput(
            f"{what}: {tensor.datatype} has no typed contents field; send it in raw_{role}_contents"
        )
    getattr(target.contents, field).extend(array.reshape(-1).tolist())


def _requested_outputs(items: Sequence[Any]) -> list[RequestedOutput] | None:
    requested: list[RequestedOutput] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not item.name:
            raise InvalidInput(f"outputs[{index}]: 'name' must be a non-empty string")
        if item.name in seen:
            raise InvalidInput(f"output {item.name!r} is requested more than once; expected once")
        seen.add(item.name)
        parameters = decode_parameters(item.parameters, f"requested output {item.name!r}")
        requested.append(RequestedOutput(item.name, parameters))
    # As over REST, an empty list asks for nothing in particular: every output.
    return requested or None


def decode_infer_request(message: Any) -> InferenceRequest:
    """Decode a ``ModelInferRequest`` (server side); the model is read by :func:`model_target`.

    Returns:
        The request; raw fixed-size inputs are read-only views of the message's bytes.

    Raises:
        InvalidInput: No inputs, a malformed tensor, mixed raw and typed values, values that do
            not fit their shape or datatype, a malformed parameter or requested output.
    """
    if not message.inputs:
        raise InvalidInput(
            "request: 'inputs' is empty; expected one tensor per model input (name, datatype, "
            "shape and contents or raw_input_contents)"
        )
    return InferenceRequest(
        inputs=_decode_tensors(message.inputs, message.raw_input_contents, "input"),
        id=message.id or None,
        parameters=decode_parameters(message.parameters, "request"),
        outputs=_requested_outputs(message.outputs),
    )


def encode_infer_response(response: InferenceResponse, raw: bool = True) -> Any:
    """Encode a ``ModelInferResponse`` (server side).

    Args:
        response: The response; outputs are cast to their datatype as over REST.
        raw: Answer in ``raw_output_contents`` (what tritonclient reads first); ``False`` uses
            typed contents, which FP16 and BF16 outputs cannot use.

    Raises:
        InferenceFailed: An output or parameter cannot be encoded.
    """
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version or "",
        id=response.id or "",
    )
    try:
        encode_parameters(response.parameters, message.parameters, "response")
        for tensor in response.outputs:
            target = message.outputs.add()
            _encode_tensor(target, tensor, message.raw_output_contents if raw else None, "output")
    except InvalidInput as exc:
        raise InferenceFailed(f"the model's response cannot be encoded: {exc}") from exc
    return message


def encode_infer_request(
    request: InferenceRequest, model_name: str, model_version: str | None = None, raw: bool = True
) -> Any:
    """Encode a ``ModelInferRequest`` (client side).

    Args:
        request: The request.
        model_name: Model to call.
        model_version: Version, or ``None`` for the server's default.
        raw: Send values in ``raw_input_contents`` (as tritonclient does); ``False`` uses typed
            contents, which FP16 and BF16 inputs cannot use.

    Raises:
        InvalidInput: An input or parameter cannot be encoded.
    """
    message = pb.ModelInferRequest(
        model_name=model_name, model_version=model_version or "", id=request.id or ""
    )
    encode_parameters(request.parameters, message.parameters, "request")
    for tensor in request.inputs:
        _encode_tensor(
            message.inputs.add(), tensor, message.raw_input_contents if raw else None, "input"
        )
    for requested in request.outputs or ():
        entry = message.outputs.add(name=requested.name)
        encode_parameters(requested.parameters, entry.parameters, f"output {requested.name!r}")
    return message


def decode_infer_response(message: Any) -> InferenceResponse:
    """Decode a ``ModelInferResponse`` (client side); outputs decode as request inputs do.

    Raises:
        InvalidInput: The response is malformed.
    """
    return InferenceResponse(
        model_name=message.model_name,
        model_version=message.model_version or None,
        id=message.id or None,
        parameters=decode_parameters(message.parameters, "response"),
        outputs=_decode_tensors(message.outputs, message.raw_output_contents, "output"),
    )


def encode_server_metadata(metadata: Mapping[str, Any]) -> Any:
    """Encode ``DataPlane.server_metadata()`` as a ``ServerMetadataResponse``."""
    return pb.ServerMetadataResponse(
        name=metadata["name"], version=metadata["version"], extensions=metadata["extensions"]
    )


def encode_model_metadata(metadata: Mapping[str, Any]) -> Any:
    """Encode ``DataPlane.model_metadata()`` as a ``ModelMetadataResponse``."""
    tensor = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=metadata["name"],
        versions=metadata.get("versions", []),
        platform=metadata["platform"],
        inputs=[
            tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
            for t in metadata["inputs"]
        ],
        outputs=[
            tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
            for t in metadata["outputs"]
        ],
        properties=metadata.get("properties", {}),
    )


def encode_model_config(metadata: Mapping[str, Any]) -> Any:
    """Encode a model's metadata as Triton's ``ModelConfigResponse`` (see :func:`model_config`)."""
    config = model_config(metadata)
    message = pb.ModelConfig(
        name=config["name"], platform=config["platform"], max_batch_size=config["max_batch_size"]
    )
    for field, tensors in ((message.input, config["input"]), (message.output, config["output"])):
        for t in tensors:
            field.add(name=t["name"], data_type=pb.DataType.Value(t["data_type"]), dims=t["dims"])
    return pb.ModelConfigResponse(config=message)


def encode_model_statistics(entries: Iterable[Mapping[str, Any]]) -> Any:
    """Encode statistics in Triton's JSON form (``ModelStats.to_dict()``) as the message."""
    message = pb.ModelStatisticsResponse()
    for entry in entries:
        stats = message.model_stats.add(
            name=entry["name"],
            version=entry["version"],
            last_inference=entry["last_inference"],
            inference_count=entry["inference_count"],
            execution_count=entry["execution_count"],
        )
        for phase, duration in entry["inference_stats"].items():
            getattr(stats.inference_stats, phase).MergeFrom(
                pb.StatisticDuration(count=duration["count"], ns=duration["ns"])
            )
    return message


def encode_repository_index(models: Iterable[Mapping[str, Any]]) -> Any:
    """Encode ``DataPlane.repository_index()`` as a ``RepositoryIndexResponse``."""
    message = pb.RepositoryIndexResponse()
    for model in models:
        message.models.add(
            name=model["name"],
            version=model.get("version") or "",
            state=model["state"],
            reason=model.get("reason") or "",
        )
    return message


def check_repository(repository_name: str) -> None:
    """Check a repository request's ``repository_name``.

    Raises:
        InvalidInput: It is set: a server has one repository, which needs no name.
    """
    if repository_name:
        raise InvalidInput(
            f"repository_name {repository_name!r} is not supported; this server has one "
            "repository, leave it empty"
        )


def decode_repository_request(message: Any) -> tuple[str, dict[str, object]]:
    """Return the model name and parameters of a repository load or unload request.

    Raises:
        InvalidInput: ``repository_name`` is set (a server has one repository), the model name
            is empty, or a parameter has no value.
    """
    check_repository(message.repository_name)
    if not message.model_name:
        raise InvalidInput("model_name is empty; expected the name of a model to (un)load")
    kinds = "bool_param, int64_param, string_param or bytes_param"
    return message.model_name, _oneof_values(message.parameters, "repository request", kinds)
