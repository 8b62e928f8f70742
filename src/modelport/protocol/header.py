"""The JSON header of a REST inference body: parsing and field validation.

An Open Inference Protocol REST body starts with a JSON object (the whole body unless the binary
tensor extension is in use). This module turns that object's fields into checked Python values and
raises :class:`InvalidInput` naming the field and what was expected. The tensor values themselves
are decoded by :mod:`modelport.protocol.tensor_data` (JSON) and :mod:`modelport.protocol.binary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import orjson

from modelport.core.datatypes import Datatype, parse_datatype
from modelport.core.errors import InvalidInput
from modelport.core.inference import Parameters, RequestedOutput

__all__ = [
    "DATATYPES",
    "MAX_EXTENT",
    "MAX_DIMS",
    "TensorHeader",
    "check_request_parameters",
    "json_summary",
    "load_json",
    "optional_string",
    "parse_parameters",
    "parse_requested_outputs",
    "parse_tensor_header",
    "shape_problem",
]

MAX_DIMS: Final = 64
"""The most dimensions a tensor may have (numpy's limit)."""

_MISSING: Final = object()
# numpy refuses arrays whose byte size would not fit in an int64, even when a zero dimension makes
# them empty; checking the product of the non-zero dimensions keeps that a clean InvalidInput.
MAX_EXTENT: Final = 2**60
_PARAMETER_TYPES: Final = (str, int, float)  # bool is an int
DATATYPES: Final = {datatype.value: datatype for datatype in Datatype}


def json_summary(value: object) -> str:
    """Return a short summary of a parsed JSON value for messages (``a list``, ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:20] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, int | float):
        return repr(value)
    return type(value).__name__


def load_json(buffer: bytes | memoryview, what: str) -> Any:
    """Parse ``buffer`` as JSON.

    Args:
        buffer: The JSON text, UTF-8 encoded.
        what: What the text is, for messages ("request body").

    Returns:
        The parsed value.

    Raises:
        InvalidInput: The text is not valid JSON or not valid UTF-8.
    """
    try:
        return orjson.loads(buffer)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"invalid JSON in {what} at position {exc.pos}: {exc.msg}; expected a JSON object"
        ) from None


def optional_string(doc: dict[str, Any], key: str, what: str) -> str | None:
    """Return ``doc[key]`` when it is a string, ``None`` when absent or null.

    Raises:
        InvalidInput: The value is present and not a string.
    """
    value = doc.get(key)
    if value is None or isinstance(value, str):
        return value
    raise InvalidInput(f"{what}: {key!r} must be a string, got {json_summary(value)}")


def parse_parameters(raw: object, what: str) -> Parameters:
    """Check a ``parameters`` object: string keys, string/number/bool values.

    Args:
        raw: The JSON value (``None`` when absent).
        what: Where the object sits, for messages ("request", "input 'x'").

    Returns:
        A new dict of the parameters (empty when absent or null).

    Raises:
        InvalidInput: ``raw`` is not an object, or a value is not a string, number or bool.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"{what}: 'parameters' must be an object, got {json_summary(raw)}")
    for key, value in raw.items():
        if not isinstance(value, _PARAMETER_TYPES):
            raise InvalidInput(
                f"{what}: parameter {key!r} is {json_summary(value)}; "
                "parameter values must be strings, numbers or booleans"
            )
    return dict(raw)


@dataclass(slots=True)
class TensorHeader:
    """The checked JSON description of one tensor, before its values are decoded.

    Attributes:
        what: How messages name the tensor (``"input 'x'"``).
        name: Tensor name.
        datatype: Protocol datatype.
        shape: Dimensions, all non-negative.
        parameters: Tensor parameters without ``binary_data_size``.
        data: The JSON ``data`` value; only meaningful when ``binary_size`` is ``None``.
        binary_size: ``parameters.binary_data_size`` when the values travel in binary form.
    """

    what: str
    name: str
    datatype: Datatype
    shape: tuple[int, ...]
    parameters: Parameters
    data: Any
    binary_size: int | None


def shape_problem(raw: object) -> str | None:
    """Say what is wrong with a JSON ``shape`` value, or return ``None`` when it is valid.

    Valid: a list of at most ``MAX_DIMS`` non-negative integers whose non-zero dimensions
    multiply to at most ``MAX_EXTENT``.
    """
    if not isinstance(raw, list):
        return f"'shape' must be a list of non-negative integers, got {json_summary(raw)}"
    if len(raw) > MAX_DIMS:
        return f"shape has {len(raw)} dimensions; at most {MAX_DIMS} allowed"
    for dim in raw:
        if type(dim) is not int or dim < 0:
            return (
                f"shape {raw} contains {json_summary(dim)}; "
                "dimensions must be non-negative integers"
            )
    # The product of the non-zero dimensions; the generator only runs when a dimension is zero.
    if (math.prod(raw) or math.prod(d for d in raw if d)) > MAX_EXTENT:
        return f"shape {raw} is too large (more than 2**60 elements)"
    return None


def _parse_shape(raw: object, what: str) -> tuple[int, ...]:
    problem = shape_problem(raw)
    if problem is not None:
        raise InvalidInput(f"{what}: {problem}")
    return tuple(raw)  # type: ignore[arg-type]  # shape_problem proved it a list


def parse_tensor_header(raw: object, index: int, role: str) -> TensorHeader:
    """Check one element of an ``inputs`` or ``outputs`` list.

    Args:
        raw: The JSON value at ``inputs[index]`` (or ``outputs[index]``).
        index: Its position, for messages about nameless tensors.
        role: ``"input"`` or ``"output"``.

    Returns:
        The checked header.

    Raises:
        InvalidInput: A field is missing or malformed, or the tensor has both or neither of
            ``data`` and ``parameters.binary_data_size``.
    """
    if not isinstance(raw, dict):
        raise InvalidInput(f"{role}s[{index}] must be an object, got {json_summary(raw)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(
            f"{role}s[{index}]: 'name' must be a non-empty string, got {json_summary(name)}"
        )
    what = f"{role} {name!r}"
    raw_datatype = raw.get("datatype", _MISSING)
    datatype = DATATYPES.get(raw_datatype) if type(raw_datatype) is str else None
    if datatype is None:
        if raw_datatype is _MISSING:
            raise InvalidInput(f"{what}: 'datatype' is missing")
        try:
            datatype = parse_datatype(raw_datatype)
        except ValueError as exc:
            raise InvalidInput(f"{what}: {exc}") from None
    raw_shape = raw.get("shape", _MISSING)
    if raw_shape is _MISSING:
        raise InvalidInput(f"{what}: 'shape' is missing; expected a list of non-negative integers")
    shape = _parse_shape(raw_shape, what)
    raw_parameters = raw.get("parameters")
    if raw_parameters is None:
        parameters: Parameters = {}
        binary_size = None
    else:
        parameters = parse_parameters(raw_parameters, what)
        binary_size = parameters.pop("binary_data_size", None)
    data = raw.get("data", _MISSING)
    if binary_size is not None:
        if type(binary_size) is not int or binary_size < 0:
            raise InvalidInput(
                f"{what}: binary_data_size must be a non-negative integer, "
                f"got {json_summary(binary_size)}"
            )
        if data is not _MISSING:
            raise InvalidInput(
                f"{what} has both 'data' and parameters.binary_data_size; expected one of them"
            )
    elif data is _MISSING:
        hint = ""
        if "shared_memory_region" in parameters:
            hint = " (shared-memory tensors are not supported)"
        raise InvalidInput(
            f"{what} has neither 'data' nor parameters.binary_data_size{hint}; expected one of them"
        )
    return TensorHeader(what, name, datatype, shape, parameters, data, binary_size)


def _binary_flag(parameters: Parameters, key: str, what: str) -> None:
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(
            f"{what}: parameter {key!r} must be true or false, got {json_summary(value)}"
        )


def parse_requested_outputs(raw: object) -> list[RequestedOutput] | None:
    """Check a request's ``outputs`` list.

    Args:
        raw: The JSON value of ``outputs`` (``None`` when absent).

    Returns:
        The requested outputs, or ``None`` when the list is absent, null or empty (all outputs).

    Raises:
        InvalidInput: The list or an element is malformed, a name repeats, or ``binary_data`` is
            not a boolean.
    """
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidInput(f"'outputs' must be a list of objects, got {json_summary(raw)}")
    requested: list[RequestedOutput] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidInput(f"outputs[{index}] must be an object, got {json_summary(item)}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput(
                f"outputs[{index}]: 'name' must be a non-empty string, got {json_summary(name)}"
            )
        if index and any(r.name == name for r in requested):
            raise InvalidInput(f"output {name!r} is requested more than once; expected once")
        raw_parameters = item.get("parameters")
        if raw_parameters is None:  # the common case: a name alone
            requested.append(RequestedOutput(name=name, parameters={}))
            continue
        what = f"requested output {name!r}"
        parameters = parse_parameters(raw_parameters, what)
        _binary_flag(parameters, "binary_data", what)
        requested.append(RequestedOutput(name=name, parameters=parameters))
    # An empty list asks for nothing in particular; like Triton, treat it as "all outputs".
    return requested or None


def check_request_parameters(parameters: Parameters) -> None:
    """Check the request-level parameters this codec interprets (``binary_data_output``).

    Raises:
        InvalidInput: ``binary_data_output`` is present and not a boolean.
    """
    _binary_flag(parameters, "binary_data_output", "request")
