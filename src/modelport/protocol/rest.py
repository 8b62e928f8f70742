"""REST codecs of the Open Inference Protocol: JSON bodies and the binary tensor extension.

Both directions are here: the server decodes requests and encodes responses, the client (our CLI
and tests) encodes requests and decodes responses. A body is a JSON header, optionally followed by
raw tensor data; ``header_length`` is the value of the ``Inference-Header-Content-Length`` HTTP
header and is ``None`` when the whole body is JSON. Bad input raises :class:`InvalidInput` with a
message that names the problem and what was expected; no other exception escapes for bad input.

Deviations and choices, all lenient towards peers' clients:

- ``null`` is accepted for optional fields (``id``, ``parameters``, ``outputs``) as if absent.
- ``null`` in FP data decodes as NaN, because JSON has no NaN/Infinity and the encoder writes
  them as ``null`` (orjson's behaviour). Use binary outputs to keep NaN and infinities exact.
- An empty ``outputs`` list means "all outputs", as in Triton.
- Binary BOOL bytes other than 0 and 1 decode as true.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import orjson

from modelport.core.datatypes import Datatype, element_size, to_numpy_dtype
from modelport.core.errors import InferenceFailed, InvalidInput
from modelport.core.inference import (
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestedOutput,
    Tensor,
)
from modelport.core.signature import TensorSpec
from modelport.protocol.binary import (
    array_from_buffer,
    array_to_buffer,
    resolve_shape,
    unpack_bytes,
)
from modelport.protocol.header import (
    DATATYPES,
    check_request_parameters,
    json_summary,
    load_json,
    optional_string,
    parse_parameters,
    parse_requested_outputs,
    parse_tensor_header,
    shape_problem,
)
from modelport.protocol.tensor_data import (
    array_from_json,
    coerce_array,
    json_data,
    numeric_from_json_fast,
    object_array,
)

__all__ = [
    "decode_infer_request",
    "decode_infer_response",
    "decode_json_object",
    "decode_raw_input",
    "encode_infer_request",
    "encode_infer_response",
]

_BINARY_DATA_SIZE: Final = "binary_data_size"
_HEADER: Final = "Inference-Header-Content-Length"

_Chunk = bytes | memoryview
_JSON_AS_IS: Final[dict[Datatype, np.dtype[Any]]] = {
    dt: to_numpy_dtype(dt) for dt in Datatype if dt not in (Datatype.BF16, Datatype.BYTES)
}
"""The numpy dtype of each datatype whose arrays go into JSON as they are (numeric and BOOL)."""


def _json_end(body: bytes, header_length: int | None, role: str) -> int:
    """Return where the JSON header of ``body`` ends."""
    if header_length is None:
        return len(body)
    if type(header_length) is not int or header_length < 0:
        raise InvalidInput(
            f"{_HEADER} is {header_length!r}; expected the byte length of the JSON header"
        )
    if header_length == 0:
        hint = ""
        if role == "request":
            hint = " (0 marks a raw binary body, which only a single-input model can take)"
        raise InvalidInput(f"{_HEADER} is 0; expected the byte length of the JSON header{hint}")
    if header_length > len(body):
        raise InvalidInput(
            f"{_HEADER} is {header_length} but the {role} body has only {len(body)} bytes; "
            "expected at most the body length"
        )
    return header_length


def _load_object(header: bytes, what: str) -> dict[str, Any]:
    doc = load_json(header, what)
    if not isinstance(doc, dict):
        raise InvalidInput(f"the {what} must be a JSON object, got {json_summary(doc)}")
    return doc


def _decode_tensors(
    items: list[Any], role: str, body: bytes, json_end: int, framed: bool
) -> list[Tensor]:
    """Decode the ``inputs`` or ``outputs`` of a body; binary data follows the JSON header."""
    # Without a true/false literal anywhere in the header, numeric data cannot hide a boolean,
    # and the per-element boolean check can be skipped (a byte search, done at most once).
    may_hold_bools: bool | None = None
    tensors: list[Tensor] = []
    append = tensors.append
    offset = json_end
    for index, item in enumerate(items):
        header = parse_tensor_header(item, index, role)
        size = header.binary_size
        if size is None:
            if may_hold_bools is None:
                may_hold_bools = (
                    body.find(b"true", 0, json_end) >= 0 or body.find(b"false", 0, json_end) >= 0
                )
            data = array_from_json(
                header.data,
                header.datatype,
                header.shape,
                header.what,
                may_hold_bools=may_hold_bools,
            )
        else:
            remaining = len(body) - offset
            if size > remaining:
                hint = "" if framed else f" (no {_HEADER} was given, so the body is all JSON)"
                raise InvalidInput(
                    f"{header.what} has binary_data_size {size} but only "
                    f"{remaining} bytes remain in the body{hint}"
                )
            data = array_from_buffer(body, offset, size, header.datatype, header.shape, header.what)
            offset += size
        append(Tensor(header.name, header.datatype, header.shape, data, header.parameters))
    if offset != len(body):
        raise InvalidInput(
            f"the body has {len(body) - offset} bytes left after the binary tensor data; expected "
            f"the {role}s' binary_data_size values to add up to the {len(body) - json_end} bytes "
            "after the JSON header"
        )
    return tensors


def decode_infer_request(body: bytes, header_length: int | None) -> InferenceRequest:
    """Decode an inference request body (server side).

    Args:
        body: The whole HTTP body.
        header_length: The ``Inference-Header-Content-Length`` value, or ``None`` when absent
            (the whole body is JSON). The binary data of the inputs that have
            ``parameters.binary_data_size`` follows the header, in the order the inputs are listed.

    Returns:
        The request. Fixed-size binary inputs are read-only views of ``body``; the
        ``binary_data_size`` parameter is dropped from decoded inputs, other parameters are kept.

    Raises:
        InvalidInput: The body is malformed: bad JSON or header length, missing or mistyped
            fields, data that does not fit its shape or datatype, binary sizes that do not add up.
    """
    if type(body) is not bytes:
        body = bytes(body)
    doc: Any = None
    if header_length is None:
        # The common request, all JSON, is parsed here and decoded in one pass when it is
        # plain; anything else, invalid JSON included, goes on to the general path below.
        end = len(body)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        else:
            if type(doc) is dict:
                plain = _decode_plain(doc, body)
                if plain is not None:
                    return plain
    else:
        end = _json_end(body, header_length, "request")
    if type(doc) is not dict:
        # Slicing copies the header, which costs less than parsing it (and, for a header of a
        # few hundred bytes, less than a memoryview); a whole-body slice is the body itself.
        doc = _load_object(body[:end], "request body")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput(_no_inputs(doc, inputs))
    request_id: str | None = None
    parameters: Parameters = {}
    outputs: list[RequestedOutput] | None = None
    if len(doc) > 1:  # more than "inputs": the optional fields need checking
        request_id = optional_string(doc, "id", "request")
        raw_parameters = doc.get("parameters")
        if raw_parameters is not None:
            parameters = parse_parameters(raw_parameters, "request")
            check_request_parameters(parameters)
        outputs = parse_requested_outputs(doc.get("outputs"))
    tensors = _decode_tensors(inputs, "input", body, end, header_length is not None)
    return InferenceRequest(tensors, request_id, parameters, outputs)


def _decode_plain(doc: dict[str, Any], body: bytes) -> InferenceRequest | None:
    """Decode the common request in one pass, or return ``None`` for the general decoder.

    The common request is all JSON: ``inputs`` of non-empty numeric tensors with exactly
    ``name``, ``datatype``, ``shape`` and ``data``; optionally an ``id`` string and ``outputs``;
    no request or input parameters. It is checked by the general decoder's own rule
    functions (:func:`shape_problem`, :func:`parse_requested_outputs`, the datatype table, the
    numeric fast path) without building the general path's per-tensor headers and messages;
    anything else, every error included, returns ``None``, and the general decoder then
    decodes it or words the error. ``tests/unit/protocol/test_fast_paths.py`` checks that both
    paths decode every request alike.
    """
    inputs = doc.get("inputs")
    request_id = doc.get("id")
    raw_outputs = doc.get("outputs")
    if (
        type(inputs) is not list
        or not inputs
        or len(doc) != 1 + (request_id is not None) + (raw_outputs is not None)
        or (request_id is not None and type(request_id) is not str)
    ):
        return None
    outputs = None
    if raw_outputs is not None:
        try:  # the general decoder's own rule, so the result is the same as its
            outputs = parse_requested_outputs(raw_outputs)
        except InvalidInput:
            return None
    may_hold_bools = body.find(b"true") >= 0 or body.find(b"false") >= 0
    tensors: list[Tensor] = []
    for item in inputs:
        tensor = _plain_tensor(item, may_hold_bools)
        if tensor is None:
            return None
        tensors.append(tensor)
    return InferenceRequest(tensors, request_id, {}, outputs)


def _plain_tensor(item: Any, may_hold_bools: bool) -> Tensor | None:
    """One input of the common request (see :func:`_decode_plain`), or ``None``."""
    if type(item) is not dict or len(item) != 4:
        return None
    name, raw_datatype = item.get("name"), item.get("datatype")
    raw_shape, data = item.get("shape"), item.get("data")
    if type(name) is not str or not name or type(raw_shape) is not list or type(data) is not list:
        return None
    datatype = DATATYPES.get(raw_datatype) if type(raw_datatype) is str else None
    # Empty tensors (a zero dimension) take the general path.
    if datatype is None or shape_problem(raw_shape) is not None or 0 in raw_shape:
        return None
    shape = tuple(raw_shape)
    array = numeric_from_json_fast(data, datatype, shape, may_hold_bools)
    if array is None:
        return None
    return Tensor(name, datatype, shape, array, {})


_TENSOR_EXAMPLE: Final = '{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [...]}'


def _no_inputs(doc: dict[str, Any], inputs: Any) -> str:
    """The message for a request without usable ``inputs``: what is wrong, what is expected."""
    expected = f"expected a list of one tensor per model input, such as [{_TENSOR_EXAMPLE}]"
    if "inputs" not in doc:
        return f"request: 'inputs' is missing; {expected}"
    if isinstance(inputs, list):
        return f"request: 'inputs' is an empty list; {expected}"
    return f"request: 'inputs' must be a list of tensors, got {json_summary(inputs)}; {expected}"


def decode_raw_input(body: bytes, spec: TensorSpec) -> InferenceRequest:
    """Decode a body that is one input's raw binary data (``Inference-Header-Content-Length: 0``).

    Args:
        body: The whole HTTP body.
        spec: The model's only input. A ``-1`` dimension, at most one, is inferred from the
            body's length (for BYTES, from its element count).

    Returns:
        A request with that single input and no id, parameters or requested outputs.

    Raises:
        InvalidInput: The body does not fit the spec's datatype and shape.
    """
    body = bytes(body) if not isinstance(body, bytes) else body
    what = f"input {spec.name!r}"
    if spec.datatype is Datatype.BYTES:
        items = unpack_bytes(body, 0, len(body), what)
        shape = resolve_shape(spec.shape, len(items), what)
        data = object_array(items, shape)
    else:
        size = element_size(spec.datatype) or 1
        if len(body) % size:
            raise InvalidInput(
                f"{what}: the raw body has {len(body)} bytes, which is not a multiple of the "
                f"{spec.datatype} element size {size}"
            )
        shape = resolve_shape(spec.shape, len(body) // size, what)
        data = array_from_buffer(body, 0, len(body), spec.datatype, shape, what)
    return InferenceRequest(inputs=[Tensor(spec.name, spec.datatype, shape, data)])


def _encode_tensor(tensor: Tensor, binary: bool, role: str) -> tuple[dict[str, Any], _Chunk | None]:
    datatype, data = tensor.datatype, tensor.data
    if (
        not binary
        and not tensor.parameters
        and type(data) is np.ndarray
        and data.dtype is _JSON_AS_IS.get(datatype)
        and data.shape == tensor.shape
    ):
        # The common tensor, an array of its datatype's own dtype and of its shape: coerce_array
        # would give it back as it is, and its JSON data is its flat row-major view (a copy
        # when it is not C-ordered). ``data.shape`` gives the dimensions as plain ints.
        return {
            "name": tensor.name,
            "datatype": datatype,
            "shape": data.shape,
            "data": data.ravel(),
        }, None
    what = f"{role} {tensor.name!r}"
    array = coerce_array(data, datatype, tensor.shape, what)
    # orjson writes a Datatype (a str enum) as its value, and coerce_array has shaped ``array`` as
    # ``tensor.shape``, so ``array.shape`` gives the dimensions as plain ints.
    entry: dict[str, Any] = {"name": tensor.name, "datatype": datatype, "shape": array.shape}
    parameters = tensor.parameters
    if parameters and _BINARY_DATA_SIZE in parameters:
        parameters = {k: v for k, v in parameters.items() if k != _BINARY_DATA_SIZE}
    if not binary:
        values = json_data(array, datatype)
        if values is not None:
            if parameters:
                entry["parameters"] = parameters
            entry["data"] = values
            return entry, None
    chunk = array_to_buffer(array, datatype, what)
    entry["parameters"] = {**parameters, _BINARY_DATA_SIZE: len(chunk)}
    return entry, chunk


def _assemble(doc: dict[str, Any], chunks: list[_Chunk]) -> tuple[bytes, int | None]:
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def encode_infer_response(
    response: InferenceResponse, request: InferenceRequest | None
) -> tuple[bytes, int | None]:
    """Encode an inference response (server side).

    An output goes in binary form when its requested output says ``binary_data: true``, or,
    when it says nothing, when the request says ``binary_data_output: true``; ``binary_data:
    false`` on an output overrides a request-level ``true``. Two kinds of output are always
    binary because JSON cannot carry them: BF16, and BYTES holding an element that is not valid
    UTF-8. JSON data is a flat row-major list; NaN and infinite floats become ``null``.

    Args:
        response: The response; output arrays of any numeric dtype are cast to their datatype,
            BYTES outputs may hold ``bytes`` or ``str``.
        request: The request being answered, for its binary choices; ``None`` means all JSON.

    Returns:
        ``(body, header_length)``. ``header_length`` is ``None`` for a pure JSON body, and then
        the server must not send ``Inference-Header-Content-Length``.

    Raises:
        InferenceFailed: An output cannot be encoded (wrong element count or value types).
    """
    # The request-level binary default, and the per-output choices that override it.
    default = False
    per_output: dict[str, bool] = {}
    if request is not None:
        if request.parameters:
            default = request.parameters.get("binary_data_output") is True
        for requested in request.outputs or ():
            if requested.parameters:
                flag = requested.parameters.get("binary_data")
                if isinstance(flag, bool):
                    per_output[requested.name] = flag
    doc: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        doc["model_version"] = response.model_version
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    outputs: list[dict[str, Any]] = []
    chunks: list[_Chunk] = []
    try:
        for tensor in response.outputs:
            binary = per_output.get(tensor.name, default) if per_output else default
            entry, chunk = _encode_tensor(tensor, binary, "output")
            outputs.append(entry)
            if chunk is not None:
                chunks.append(chunk)
        doc["outputs"] = outputs
        return _assemble(doc, chunks)
    except InvalidInput as exc:
        raise InferenceFailed(f"the model's response cannot be encoded: {exc}") from exc
    except orjson.JSONEncodeError as exc:
        raise InferenceFailed(f"the model's response cannot be encoded as JSON: {exc}") from exc


def encode_infer_request(
    request: InferenceRequest, binary_inputs: bool = False, binary_outputs: bool = False
) -> tuple[bytes, int | None]:
    """Encode an inference request (client side).

    Args:
        request: The request; input arrays are cast to their datatype like response outputs.
        binary_inputs: Send every input in binary form (BF16 inputs, and BYTES inputs that are not
            valid UTF-8, always go binary).
        binary_outputs: Ask for binary outputs with the request-level ``binary_data_output``;
            a requested output's own ``binary_data`` parameter still wins.

    Returns:
        ``(body, header_length)``; send ``Inference-Header-Content-Length: header_length``
        unless it is ``None``.

    Raises:
        InvalidInput: An input cannot be encoded, or a parameter cannot be written as JSON.
    """
    doc: dict[str, Any] = {}
    if request.id is not None:
        doc["id"] = request.id
    parameters = dict(request.parameters)
    if binary_outputs:
        parameters["binary_data_output"] = True
    if parameters:
        doc["parameters"] = parameters
    inputs: list[dict[str, Any]] = []
    chunks: list[_Chunk] = []
    for tensor in request.inputs:
        entry, chunk = _encode_tensor(tensor, binary_inputs, "input")
        inputs.append(entry)
        if chunk is not None:
            chunks.append(chunk)
    doc["inputs"] = inputs
    if request.outputs:
        doc["outputs"] = [_requested_output(requested) for requested in request.outputs]
    try:
        return _assemble(doc, chunks)
    except orjson.JSONEncodeError as exc:
        raise InvalidInput(f"the request cannot be encoded as JSON: {exc}") from None


def _requested_output(requested: RequestedOutput) -> dict[str, Any]:
    if requested.parameters:
        return {"name": requested.name, "parameters": requested.parameters}
    return {"name": requested.name}


def decode_infer_response(body: bytes, header_length: int | None) -> InferenceResponse:
    """Decode an inference response body (client side); the mirror of the request decoder.

    Args:
        body: The whole HTTP body.
        header_length: The ``Inference-Header-Content-Length`` value, or ``None`` when absent.

    Returns:
        The response; outputs decode exactly as request inputs do.

    Raises:
        InvalidInput: The body is malformed, or is an OIP error body ``{"error": ...}``.
    """
    body = bytes(body) if not isinstance(body, bytes) else body
    end = _json_end(body, header_length, "response")
    doc = _load_object(body[:end], "response body")
    outputs = doc.get("outputs")
    if outputs is None and isinstance(doc.get("error"), str):
        raise InvalidInput(f"the server answered with an error: {doc['error']}")
    if not isinstance(outputs, list):
        raise InvalidInput(
            f"response: 'outputs' must be a list of tensors, got {json_summary(outputs)}"
        )
    model_name = doc.get("model_name")
    if not isinstance(model_name, str):
        raise InvalidInput(
            f"response: 'model_name' must be a string, got {json_summary(model_name)}"
        )
    return InferenceResponse(
        model_name=model_name,
        model_version=optional_string(doc, "model_version", "response"),
        id=optional_string(doc, "id", "response"),
        parameters=parse_parameters(doc.get("parameters"), "response"),
        outputs=_decode_tensors(outputs, "output", body, end, header_length is not None),
    )


def decode_json_object(body: bytes, what: str) -> dict[str, Any]:
    """Decode a small control body (repository index, load, unload).

    Args:
        body: The HTTP body; empty (or only whitespace) means ``{}``.
        what: What the body is, for messages ("repository load request").

    Returns:
        The JSON object.

    Raises:
        InvalidInput: The body is not valid JSON or not a JSON object.
    """
    if not body.strip():
        return {}
    doc = load_json(body, what)
    if not isinstance(doc, dict):
        raise InvalidInput(f"the {what} must be a JSON object, got {json_summary(doc)}")
    return doc
