"""The REST API's OpenAPI description, served at ``/v2/openapi.json``.

The document lists every route :class:`modelport.server.rest.app.RestApp` serves, with the
statuses the server really answers (see ``server/rest/errors.py`` for the error kinds behind
them). Every model route exists with and without ``/versions/{version}``; both spellings are
described, built by the same helper. The body schemas live in :mod:`._openapi_schemas`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Final

from modelport import __version__
from modelport.server.rest._openapi_schemas import SCHEMAS, ref

__all__ = ["openapi_document"]

Schema = dict[str, Any]
PathItemFactory = Callable[[str, list[Schema]], Schema]

_JSON: Final = "application/json"
_BINARY: Final = "application/octet-stream"
_OPEN: Final[list[dict[str, list[str]]]] = []  # no credential needed

_DESCRIPTION: Final = """\
Open Inference Protocol (v2) over REST, with the binary tensor data, model repository and \
statistics extensions.

Every error answers `{"error": "<message>"}`. Every route except the server's health probes \
needs `Authorization: Bearer <key>` (an API key or an OIDC token); the probes need one too when \
the server sets `security.auth.open_probes` off. A route called with a method it does not serve \
answers 405, an unknown path 404; GET routes also answer HEAD."""

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
    operation_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Schema],
    *,
    secured: bool = True,
    body: Schema | None = None,
    parameters: list[Schema] | None = None,
) -> Schema:
    """One operation; a secured one also documents the authentication errors."""
    operation: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    if secured:
        responses = {**responses, **_AUTH_ERRORS}
    else:
        operation["security"] = _OPEN
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _path_parameter(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        # One path segment: the router splits on "/", so a value cannot hold one.
        "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
    }


_MODEL: Final = _path_parameter("model_name", "Served model name.")
_VERSION: Final = _path_parameter("model_version", "Served version (default: the newest).")


def _model_routes(suffix: str, make: PathItemFactory) -> dict[str, Schema]:
    """The route ``/v2/models/{model_name}{suffix}`` and its ``/versions/{model_version}`` twin.

    Args:
        suffix: Path after the model (and version), ``""`` or ``"/infer"``...
        make: ``make(operation_id_prefix, parameters) -> path item``.
    """
    base = "/v2/models/{model_name}"
    return {
        base + suffix: make("model", [_MODEL]),
        base + "/versions/{model_version}" + suffix: make("model_version", [_MODEL, _VERSION]),
    }


def _model_metadata(prefix: str, parameters: list[Schema]) -> Schema:
    responses = {
        "200": _reply("The model's name, versions, platform and signature.", ref("ModelMetadata")),
        "404": _NOT_FOUND,
        "503": _NOT_READY,
    }
    get = _operation(
        f"{prefix}_metadata", "Model metadata", "models", responses, parameters=parameters
    )
    return {"get": get}


def _model_ready(prefix: str, parameters: list[Schema]) -> Schema:
    responses = {
        "200": _reply("The version is ready.", ref("ModelReady")),
        "404": _NOT_FOUND,
        "503": _reply("The version is not ready.", ref("ModelReady")),
    }
    get = _operation(
        f"{prefix}_ready", "Model readiness", "health", responses, parameters=parameters
    )
    return {"get": get}


def _model_statistics(prefix: str, parameters: list[Schema]) -> Schema:
    responses = {"200": _statistics_reply(), "404": _NOT_FOUND}
    get = _operation(
        f"{prefix}_statistics", "Model statistics", "statistics", responses, parameters=parameters
    )
    return {"get": get}


def _statistics_reply() -> Schema:
    return _reply("Statistics of every hosted version asked for.", ref("Statistics"))


def _infer(prefix: str, parameters: list[Schema]) -> Schema:
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
    post = _operation(
        f"{prefix}_infer",
        "Inference",
        "inference",
        responses,
        body=body,
        parameters=[*parameters, header_length],
    )
    return {"post": post}


def _json_body(name: str) -> Schema:
    """An optional JSON body; an empty body reads as ``{}``."""
    return {"required": False, "content": _json(ref(name))}


def _repository_change(action: str, responses: dict[str, Schema]) -> Schema:
    body = _json_body(f"Repository{action.capitalize()}Request")
    post = _operation(
        f"repository_model_{action}",
        f"{action.capitalize()} every version of a model",
        "repository",
        {
            "200": _reply(f"{action.capitalize()}ed in every worker.", ref("Empty")),
            **_BODY_ERRORS,
            **responses,
        },
        body=body,
        parameters=[_MODEL],
    )
    return {"post": post}


def _paths() -> dict[str, Schema]:
    server_metadata = _operation(
        "server_metadata",
        "Server metadata",
        "server",
        {"200": _reply("Name, version and extensions.", ref("ServerMetadata"))},
    )
    live = _operation(
        "server_live", "Liveness", "health", {"200": _reply("Live.", ref("Live"))}, secured=False
    )
    ready = _operation(
        "server_ready",
        "Readiness: every hosted version is ready",
        "health",
        {
            "200": _reply("Ready.", ref("Ready")),
            "503": _reply("Some version is not ready.", ref("Ready")),
        },
        secured=False,
    )
    all_statistics = _operation(
        "statistics", "Statistics of every model", "statistics", {"200": _statistics_reply()}
    )
    index = _operation(
        "repository_index",
        "Hosted model versions and their states",
        "repository",
        {"200": _reply("Every hosted version.", ref("RepositoryIndex")), **_BODY_ERRORS},
        body=_json_body("RepositoryIndexRequest"),
    )
    load = _repository_change(
        "load",
        {
            "404": _error("Nothing registered under that name, version or alias."),
            "409": _error("The version is archived."),
            "422": _error("The artifact fails verification or does not load."),
            "501": _error("The model needs a framework or provider that is not installed."),
        },
    )
    unload = _repository_change("unload", {"404": _error("The model is not hosted.")})
    metrics = _operation(
        "metrics",
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
    openapi = _operation(
        "openapi",
        "This document",
        "server",
        {"200": _reply("The OpenAPI description of this API.", {"type": "object"})},
    )
    return {
        "/v2": {"get": server_metadata},
        "/v2/health/live": {"get": live},
        "/v2/health/ready": {"get": ready},
        **_model_routes("", _model_metadata),
        **_model_routes("/ready", _model_ready),
        **_model_routes("/infer", _infer),
        "/v2/models/stats": {"get": all_statistics},
        **_model_routes("/stats", _model_statistics),
        "/v2/repository/index": {"post": index},
        "/v2/repository/models/{model_name}/load": load,
        "/v2/repository/models/{model_name}/unload": unload,
        "/metrics": {"get": metrics},
        "/v2/openapi.json": {"get": openapi},
    }


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.0.3 document describing every REST route.

    Returns:
        A JSON-ready dict; a new one on every call, which the caller may change.
    """
    document = {
        "openapi": "3.0.3",
        "info": {"title": "modelport", "version": __version__, "description": _DESCRIPTION},
        "tags": [{"name": tag} for tag in _TAGS],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (modelport keys create) or an OIDC access token.",
                }
            },
            "schemas": SCHEMAS,
        },
    }
    return copy.deepcopy(document)
