"""JSON schemas of the REST bodies, for the OpenAPI document's ``components.schemas``.

Request schemas accept everything the server accepts (``null`` for the optional fields the codec
reads as absent, flat or nested ``data``, unknown extra fields) and no more where the server
rejects it, so that a fuzzer drawing from them reaches the decoder's real checks. Response schemas
describe what the server writes.
"""

from __future__ import annotations

from typing import Any, Final

from modelport.core.datatypes import Datatype
from modelport.protocol.header import MAX_DIMS

__all__ = ["SCHEMAS", "ref"]

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """Return a reference to ``components.schemas[name]``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def _array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


_STRING: Final[Schema] = {"type": "string"}
_NAME: Final[Schema] = {"type": "string", "minLength": 1}
_COUNT: Final[Schema] = {"type": "integer", "minimum": 0}
_SCALAR: Final[Schema] = {
    "anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}],
    # JSON has no NaN or infinity: FP values that are not finite travel as null.
    "nullable": True,
}

_PARAMETER_VALUE: Final[Schema] = {
    "description": "A parameter value: a string, a number or a boolean.",
    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}],
}


def _parameters(description: str, known: dict[str, Schema] | None = None) -> Schema:
    """A ``parameters`` object: ``known`` keys with their own types, any other scalar values."""
    return _nullable(
        _object(known or {}, description=description, additionalProperties=ref("ParameterValue"))
    )


_TENSOR_DATA: Final[Schema] = {
    "description": (
        "The tensor's values in row-major order, flat or nested as the shape; a 0-d tensor may "
        "give its one value bare. BOOL takes true/false, integer types integers in range, FP "
        "types numbers (null reads as NaN), BYTES strings."
    ),
    "anyOf": [
        _array({"anyOf": [_SCALAR, _array({"anyOf": [_SCALAR, _array({})]})]}),
        _SCALAR,
    ],
}

_SHAPE: Final[Schema] = _array(
    _COUNT,
    maxItems=MAX_DIMS,
    description=f"Dimensions, at most {MAX_DIMS}, each a non-negative integer.",
)

_METADATA_SHAPE: Final[Schema] = _array(
    {"type": "integer", "minimum": -1}, description="Dimensions; -1 marks a variable dimension."
)

_INPUT_PARAMETERS: Final[Schema] = _parameters(
    "Tensor parameters. binary_data_size (binary tensor extension) gives the size in bytes of "
    "the tensor's raw data, which follows the JSON header; such an input has no data.",
    {"binary_data_size": _COUNT},
)

_REQUEST_INPUT: Final[Schema] = _object(
    {
        "name": _NAME,
        "datatype": ref("Datatype"),
        "shape": _SHAPE,
        "parameters": _INPUT_PARAMETERS,
        "data": _TENSOR_DATA,
    },
    ("name", "datatype", "shape"),
    description="One input tensor; it has exactly one of data and parameters.binary_data_size.",
    anyOf=[
        {"required": ["data"]},
        {
            "required": ["parameters"],
            "properties": {"parameters": {"required": ["binary_data_size"]}},
        },
    ],
)

_REQUESTED_OUTPUT: Final[Schema] = _object(
    {
        "name": _NAME,
        "parameters": _parameters(
            "Output parameters; binary_data: true asks for this output in binary form.",
            {"binary_data": {"type": "boolean"}},
        ),
    },
    ("name",),
)

_INFERENCE_REQUEST: Final[Schema] = _object(
    {
        "id": _nullable({"type": "string", "description": "Echoed in the response."}),
        "parameters": _parameters(
            "Request parameters. binary_data_output: true asks for every output in binary "
            "form; timeout is a deadline in microseconds (0: none).",
            {
                "binary_data_output": {"type": "boolean"},
                "timeout": {"type": "number", "minimum": 0},
            },
        ),
        "inputs": _array(ref("RequestInput"), minItems=1),
        "outputs": _nullable(
            _array(
                ref("RequestedOutput"),
                uniqueItems=True,
                description="Outputs to return, each once; absent, null or empty: all of them.",
            )
        ),
    },
    ("inputs",),
)

_RESPONSE_OUTPUT: Final[Schema] = _object(
    {
        "name": _STRING,
        "datatype": ref("Datatype"),
        "shape": _array(_COUNT),
        "parameters": _parameters(
            "Output parameters; binary_data_size marks an output sent in binary form after the "
            "JSON header (it then has no data).",
            {"binary_data_size": _COUNT},
        ),
        "data": _array(_SCALAR, description="Flat row-major values."),
    },
    ("name", "datatype", "shape"),
)

_INFERENCE_RESPONSE: Final[Schema] = _object(
    {
        "model_name": _STRING,
        "model_version": _STRING,
        "id": _STRING,
        "parameters": _parameters("Response parameters."),
        "outputs": _array(ref("ResponseOutput")),
    },
    ("model_name", "outputs"),
)

_DURATION: Final[Schema] = _object(
    {"count": _COUNT, "ns": _COUNT}, ("count", "ns"), description="Events and their total time."
)

_MODEL_STATISTICS: Final[Schema] = _object(
    {
        "name": _STRING,
        "version": _STRING,
        "last_inference": {
            "type": "integer",
            "minimum": 0,
            "description": "Milliseconds since the epoch of the last request; 0 if none.",
        },
        "inference_count": _COUNT,
        "execution_count": _COUNT,
        "inference_stats": _object(
            {"success": ref("Duration"), "fail": ref("Duration")}, ("success", "fail")
        ),
    },
    ("name", "version", "last_inference", "inference_count", "execution_count", "inference_stats"),
)

SCHEMAS: Final[dict[str, Schema]] = {
    "Error": _object({"error": _STRING}, ("error",)),
    "Datatype": {"type": "string", "enum": [d.value for d in Datatype]},
    "ParameterValue": _PARAMETER_VALUE,
    "TensorMetadata": _object(
        {"name": _STRING, "datatype": ref("Datatype"), "shape": _METADATA_SHAPE},
        ("name", "datatype", "shape"),
    ),
    "ServerMetadata": _object(
        {"name": _STRING, "version": _STRING, "extensions": _array(_STRING)},
        ("name", "version", "extensions"),
    ),
    "ModelMetadata": _object(
        {
            "name": _STRING,
            "versions": _array(_STRING),
            "platform": _STRING,
            "inputs": _array(ref("TensorMetadata")),
            "outputs": _array(ref("TensorMetadata")),
            "properties": _object(
                {},
                description="What serves this version: version, runtime, batching.",
                additionalProperties=_STRING,
            ),
        },
        ("name", "platform", "inputs", "outputs"),
    ),
    "ModelConfigTensor": _object(
        {
            "name": _STRING,
            "data_type": {
                "type": "string",
                "description": "Triton's type name: TYPE_ and the datatype (BYTES is TYPE_STRING).",
            },
            "dims": _METADATA_SHAPE,
        },
        ("name", "data_type", "dims"),
    ),
    "ModelConfig": _object(
        {
            "name": _STRING,
            "platform": _STRING,
            "max_batch_size": {
                "type": "integer",
                "description": "0: the batch is the -1 leading dimension of dims.",
            },
            "input": _array(ref("ModelConfigTensor")),
            "output": _array(ref("ModelConfigTensor")),
        },
        ("name", "platform", "max_batch_size", "input", "output"),
    ),
    "Live": _object({"live": {"type": "boolean"}}, ("live",)),
    "Ready": _object({"ready": {"type": "boolean"}}, ("ready",)),
    "ModelReady": _object({"name": _STRING, "ready": {"type": "boolean"}}, ("name", "ready")),
    "RequestInput": _REQUEST_INPUT,
    "RequestedOutput": _REQUESTED_OUTPUT,
    "InferenceRequest": _INFERENCE_REQUEST,
    "ResponseOutput": _RESPONSE_OUTPUT,
    "InferenceResponse": _INFERENCE_RESPONSE,
    "Duration": _DURATION,
    "ModelStatistics": _MODEL_STATISTICS,
    "Statistics": _object({"model_stats": _array(ref("ModelStatistics"))}, ("model_stats",)),
    "RepositoryIndexRequest": _object(
        {"ready": {"type": "boolean", "description": "List only ready versions."}}
    ),
    "RepositoryIndex": _array(
        _object(
            {
                "name": _STRING,
                "version": _STRING,
                "state": {"type": "string", "enum": ["READY", "UNAVAILABLE", "LOADING"]},
                "reason": _STRING,
            },
            ("name", "state", "reason"),
        )
    ),
    "RepositoryLoadRequest": _object(
        {
            "parameters": _object(
                {
                    "version": {
                        "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}],
                        "description": "The registered version to load (default: the latest).",
                    },
                    "alias": {"type": "string", "description": "Load the version behind an alias."},
                },
                description="What to load: a version or an alias; other keys are refused.",
                additionalProperties=False,
            )
        },
        additionalProperties=False,
    ),
    "RepositoryUnloadRequest": _object(
        {"parameters": _object({}, description="Accepted for protocol compatibility.")},
        additionalProperties=False,
    ),
    "Empty": _object({}, description="An empty object."),
}
"""Every component schema, by name."""
