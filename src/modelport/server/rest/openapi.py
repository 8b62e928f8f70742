"""The REST API's OpenAPI description, served at ``/v2/openapi.json``.

This module holds each route's operation (summary, tag, body, responses, with the statuses the
server really answers; ``server/rest/errors.py`` maps the error kinds behind them), and
:func:`openapi_document` builds the document from the route table
(:data:`modelport.server.rest.routes.ROUTES`): paths, path parameters, operation ids and which
routes need a credential all come from the table. The body schemas live in
:mod:`._openapi_schemas`. Another route table (the control plane's) gets its document from the
same function with its own title, description, tags and schemas.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel

from modelport import __version__
from modelport.server.rest._openapi_schemas import SCHEMAS, ref

if TYPE_CHECKING:
    from modelport.server.rest.routes import Route

__all__ = ["model_schemas", "openapi_document"]

Schema = dict[str, Any]

_JSON: Final = "application/json"
_BINARY: Final = "application/octet-stream"
_OPEN: Final[list[dict[str, list[str]]]] = []  # no credential needed

_DESCRIPTION: Final = """\
Open Inference Protocol (v2) over REST, with the binary tensor data, model repository and \
statistics extensions.

Every error answers `{"error": "<message>"}`. Every route except the server's health probes \
needs `Authorization: Bearer <key>` (an API key or an OIDC token); the probes need one too when \
the server sets `security.auth.open_probes` off, and `/metrics` needs none when the server sets \
`security.auth.open_metrics` on. A route called with a method it does not serve answers 405 with \
`Allow`, an unknown path 404; GET routes also answer HEAD; one trailing `/` is ignored."""

_RETRY_AFTER: Final[Schema] = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1},
}
_HEADER_LENGTH: Final = "Inference-Header-Content-Length"
_TAGS: Final = ("server", "health", "models", "inference", "statistics", "repository", "monitoring")


def _json(schema: Schema) -> dict[str, Schema]:
    return {_JSON: {"schema": schema}}


def _reply(description: str, schema: Schema, headers: dict[str, Schema] | None = None) -> Schema:
    """A JSON response."""
    response: Schema = {"description": description, "content": _json(schema)}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: dict[str, Schema] | None = None) -> Schema:
    return _reply(description, ref("Error"), headers)


_AUTH_ERRORS: Final[dict[str, Schema]] = {
    "401": _error(
        "No credential, or one that is malformed, unknown, expired or revoked.",
        {"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "403": _error("The caller lacks the role or scope for this route."),
    "429": _error("Over the caller's rate limit.", {"Retry-After": _RETRY_AFTER}),
}
_BODY_ERRORS: Final[dict[str, Schema]] = {
    "400": _error("The request is malformed (inference: or does not fit the model)."),
    "413": _error(
        "The body is over the server's size limit (inference: or the inputs are over the row "
        "or element limits)."
    ),
}
_NOT_FOUND: Final = _error("Unknown model or version.")
_NOT_READY: Final = _error("The model version is known but not loaded.")


def _operation(
    summary: str,
    tag: str,
    responses: dict[str, Schema],
    *,
    body: Schema | None = None,
    parameters: list[Schema] | None = None,
) -> Schema:
    """One operation, before the route table adds its id, path parameters and security."""
    operation: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    return operation


_PATH_PARAMETERS: Final[dict[str, str]] = {
    "model_name": "Served model name.",
    "model_version": "Served version (default: the newest).",
    "name": "The resource's name.",
}


def _path_parameter(name: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": _PATH_PARAMETERS[name],
        # One path segment: the router splits the raw path on "/" before decoding it.
        "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
    }


def _statistics_reply() -> Schema:
    return _reply("Statistics of every hosted version asked for.", ref("Statistics"))


def _json_body(name: str) -> Schema:
    """An optional JSON body; an empty body reads as ``{}``."""
    return {"required": False, "content": _json(ref(name))}


def _infer() -> Schema:
    header_length: Schema = {
        "name": _HEADER_LENGTH,
        "in": "header",
        "required": False,
        "description": (
            "Binary tensor extension: the byte length of the JSON header that starts the body; "
            "the raw tensor data follows it. 0: the whole body is the raw data of a "
            "single-input model's input."
        ),
        "schema": {"type": "integer", "minimum": 0},
    }
    body = {
        "required": True,
        "content": {
            _JSON: {"schema": ref("InferenceRequest")},
            _BINARY: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": f"A JSON header of {_HEADER_LENGTH} bytes, then raw tensors.",
                }
            },
        },
    }
    ok = {
        "description": (
            "The outputs. When any output is in binary form the body is the JSON header "
            f"followed by raw data, and {_HEADER_LENGTH} gives the header's length."
        ),
        "headers": {_HEADER_LENGTH: {"schema": {"type": "integer", "minimum": 1}}},
        "content": {
            _JSON: {"schema": ref("InferenceResponse")},
            _BINARY: {"schema": {"type": "string", "format": "binary"}},
        },
    }
    responses = {
        "200": ok,
        **_BODY_ERRORS,
        "404": _NOT_FOUND,
        "500": _error("The model failed on valid input."),
        "503": _error(
            "The version is not ready, or its queue is full (then with Retry-After).",
            {"Retry-After": _RETRY_AFTER},
        ),
        "504": _error("The request's timeout passed before it ran; it was not run."),
    }
    return _operation("Inference", "inference", responses, body=body, parameters=[header_length])


def _repository_change(action: str, responses: dict[str, Schema]) -> Schema:
    return _operation(
        f"{action.capitalize()} a model",
        "repository",
        {
            "200": _reply(f"{action.capitalize()}ed in every worker.", ref("Empty")),
            **_BODY_ERRORS,
            **responses,
        },
        body=_json_body(f"Repository{action.capitalize()}Request"),
    )


# -- each route's operation (the route table in routes.py says which path it belongs to) --------

SERVER_METADATA: Final = _operation(
    "Server metadata",
    "server",
    {"200": _reply("Name, version and extensions.", ref("ServerMetadata"))},
)
LIVE: Final = _operation("Liveness", "health", {"200": _reply("Live.", ref("Live"))})
READY: Final = _operation(
    "Readiness: every hosted version is ready",
    "health",
    {
        "200": _reply("Ready.", ref("Ready")),
        "503": _reply("Some version is not ready.", ref("Ready")),
    },
)
ALL_STATISTICS: Final = _operation(
    "Statistics of every model", "statistics", {"200": _statistics_reply()}
)
MODEL_METADATA: Final = _operation(
    "Model metadata",
    "models",
    {
        "200": _reply("The model's name, versions, platform and signature.", ref("ModelMetadata")),
        "404": _NOT_FOUND,
        "503": _NOT_READY,
    },
)
MODEL_READY: Final = _operation(
    "Model readiness",
    "health",
    {
        "200": _reply("The version is ready.", ref("ModelReady")),
        "404": _NOT_FOUND,
        "503": _reply("The version is not ready.", ref("ModelReady")),
    },
)
MODEL_CONFIG: Final = _operation(
    "Model configuration (Triton's form, as tritonclient's get_model_config reads it)",
    "models",
    {
        "200": _reply("The model's configuration.", ref("ModelConfig")),
        "404": _NOT_FOUND,
        "503": _NOT_READY,
    },
)
MODEL_STATISTICS: Final = _operation(
    "Model statistics", "statistics", {"200": _statistics_reply(), "404": _NOT_FOUND}
)
INFER: Final = _infer()
REPOSITORY_INDEX: Final = _operation(
    "Hosted model versions and their states",
    "repository",
    {"200": _reply("Every hosted version.", ref("RepositoryIndex")), **_BODY_ERRORS},
    body=_json_body("RepositoryIndexRequest"),
)
REPOSITORY_LOAD: Final = _repository_change(
    "load",
    {
        "404": _error("Nothing registered under that name, version or alias."),
        "409": _error("The version is archived."),
        "422": _error("The artifact fails verification or does not load."),
        "501": _error("The model needs a framework or provider that is not installed."),
    },
)
REPOSITORY_UNLOAD: Final = _repository_change("unload", {"404": _error("The model is not hosted.")})
METRICS: Final = _operation(
    "Prometheus metrics",
    "monitoring",
    {
        "200": {
            "description": "Prometheus text exposition of every worker's metrics.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        "404": _error("Metrics are off in this server."),
    },
)
OPENAPI: Final = _operation(
    "This document",
    "server",
    {"200": _reply("The OpenAPI description of this API.", {"type": "object"})},
)


def _path_item_operation(route: Route) -> Schema:
    """The route's operation with its id, path parameters and security."""
    operation: Schema = {"operationId": route.operation_id, **copy.deepcopy(route.operation)}
    names = re.findall(r"\{(\w+)\}", route.path)
    parameters = [_path_parameter(name) for name in names] + operation.get("parameters", [])
    if parameters:
        operation["parameters"] = parameters
    responses = operation["responses"]
    if route.needs_credential:
        responses = {**responses, **_AUTH_ERRORS}
    else:
        operation["security"] = _OPEN
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def openapi_document(
    routes: Iterable[Route],
    *,
    title: str = "modelport",
    description: str = _DESCRIPTION,
    tags: Sequence[str] = _TAGS,
    schemas: Mapping[str, Schema] = SCHEMAS,
) -> dict[str, Any]:
    """Return the OpenAPI 3.0.3 document describing every route of a route table.

    Args:
        routes: The route table (the server's is :data:`modelport.server.rest.routes.ROUTES`).
        title: The document's ``info.title``.
        description: Its ``info.description`` (the Open Inference Protocol's by default).
        tags: The operations' tags, in the order they are listed.
        schemas: The ``components.schemas`` the operations refer to.

    Returns:
        A JSON-ready dict; a new one on every call, which the caller may change.
    """
    paths: dict[str, Schema] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _path_item_operation(route)
    document = {
        "openapi": "3.0.3",
        "info": {"title": title, "version": __version__, "description": description},
        "tags": [{"name": tag} for tag in tags],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (modelport keys create) or an OIDC access token.",
                }
            },
            "schemas": dict(schemas),
        },
    }
    return copy.deepcopy(document)


def model_schemas(model: type[BaseModel]) -> dict[str, Schema]:
    """``components.schemas`` entries for a pydantic model and every model it holds.

    The document is generated from the model itself (camelCase aliases, constraints, field
    descriptions), so it cannot drift from what the API accepts. pydantic writes JSON Schema
    2020-12; the few constructs OpenAPI 3.0.3 spells differently are rewritten: ``$defs`` become
    components, ``anyOf [X, null]`` becomes ``nullable``, ``const`` a one-value ``enum``, and a
    numeric ``exclusiveMinimum`` the 3.0 boolean form.
    """
    generated = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    schemas = {name: _openapi_30(schema) for name, schema in generated.pop("$defs", {}).items()}
    schemas[model.__name__] = _openapi_30(generated)
    return schemas


def _openapi_30(node: Any) -> Any:
    if isinstance(node, list):
        return [_openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _openapi_30(value) for key, value in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options and len(options) == 2:
        del node["anyOf"]
        (kept,) = [option for option in options if option != {"type": "null"}]
        node.update({"allOf": [kept]} if "$ref" in kept else kept)
        node["nullable"] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
            node[inclusive] = node[bound]
            node[bound] = True
    return node
