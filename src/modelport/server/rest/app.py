"""The Open Inference Protocol over HTTP: an ASGI application built by :func:`create_app`.

Routes parse the wire format, call one :class:`DataPlane` method and serialise its answer. Every
endpoint exists with and without ``/versions/{version}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelport.core.errors import InvalidInput, ModelportError, PayloadTooLarge
from modelport.core.inference import InferenceRequest
from modelport.core.settings import ServerSettings
from modelport.protocol.rest import (
    decode_infer_request,
    decode_json_object,
    decode_raw_input,
    encode_infer_response,
)
from modelport.server.rest.errors import (
    handle_http_exception,
    handle_modelport_error,
    handle_unexpected,
)
from modelport.service.dataplane import DataPlane

__all__ = ["create_app"]

HEADER_LENGTH = "inference-header-content-length"


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


class _Routes:
    """Endpoints bound to one data plane and body limit."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.dp = dataplane
        self.max_body = max_body_bytes

    async def body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise InvalidInput(f"Content-Length {declared!r} is not a number") from None
            if size > self.max_body:
                raise PayloadTooLarge(
                    f"request body of {size} bytes exceeds the limit of {self.max_body} bytes"
                )
        chunks = bytearray()
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > self.max_body:
                raise PayloadTooLarge(f"request body exceeds the limit of {self.max_body} bytes")
        return bytes(chunks)

    async def server_metadata(self, request: Request) -> Response:
        return _json(self.dp.server_metadata())

    async def live(self, request: Request) -> Response:
        return _json({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self.dp.ready()
        return _json({"ready": ready}, 200 if ready else 503)

    async def model_metadata(self, request: Request) -> Response:
        name, version = _model_path(request)
        return _json(self.dp.model_metadata(name, version))

    async def model_ready(self, request: Request) -> Response:
        name, version = _model_path(request)
        ready = self.dp.model_ready(name, version)
        return _json({"name": name, "ready": ready}, 200 if ready else 503)

    async def infer(self, request: Request) -> Response:
        name, version = _model_path(request)
        body = await self.body(request)
        header = request.headers.get(HEADER_LENGTH)
        length = _header_length(header)
        infer_request = self._decode(name, version, body, length)
        response = await self.dp.infer(name, version, infer_request)
        body_out, json_length = encode_infer_response(response, infer_request)
        if json_length is None:
            return Response(body_out, media_type="application/json")
        return Response(
            body_out,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(json_length)},
        )

    def _decode(
        self, name: str, version: str | None, body: bytes, length: int | None
    ) -> InferenceRequest:
        if length == 0:
            signature = self.dp.model_signature(name, version)
            if len(signature.inputs) != 1:
                raise InvalidInput(
                    "Inference-Header-Content-Length: 0 sends one raw input, but model "
                    f"{name!r} has {len(signature.inputs)} inputs; send a JSON header"
                )
            return decode_raw_input(body, signature.inputs[0])
        return decode_infer_request(body, length)

    async def repository_index(self, request: Request) -> Response:
        payload = decode_json_object(await self.body(request), "repository index request")
        ready_only = payload.get("ready", False)
        if not isinstance(ready_only, bool):
            raise InvalidInput(f"'ready' must be true or false, got {ready_only!r}")
        return _json(self.dp.repository_index(ready_only))

    async def repository_load(self, request: Request) -> Response:
        name = request.path_params["model"]
        parameters = _parameters(await self.body(request), "repository load request")
        await run_in_threadpool(self.dp.load, name, parameters)
        return _json({})

    async def repository_unload(self, request: Request) -> Response:
        name = request.path_params["model"]
        _parameters(await self.body(request), "repository unload request")
        await run_in_threadpool(self.dp.unload, name)
        return _json({})


def _model_path(request: Request) -> tuple[str, str | None]:
    params = request.path_params
    return params["model"], params.get("version")


def _header_length(header: str | None) -> int | None:
    if header is None:
        return None
    try:
        value = int(header)
    except ValueError:
        raise InvalidInput(
            f"Inference-Header-Content-Length must be a non-negative integer, got {header!r}"
        ) from None
    if value < 0:
        raise InvalidInput(f"Inference-Header-Content-Length must be non-negative, got {value}")
    return value


def _parameters(body: bytes, what: str) -> dict[str, object]:
    payload = decode_json_object(body, what)
    parameters = payload.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidInput(
            f"{what}: 'parameters' must be an object, got {type(parameters).__name__}"
        )
    return parameters


Endpoint = Callable[[Request], Awaitable[Response]]


def _model_routes(suffix: str, endpoint: Endpoint, methods: list[str]) -> list[Route]:
    return [
        Route(f"/v2/models/{{model}}{suffix}", endpoint, methods=methods),
        Route(f"/v2/models/{{model}}/versions/{{version}}{suffix}", endpoint, methods=methods),
    ]


def create_app(settings: ServerSettings, dataplane: DataPlane) -> Starlette:
    """Build the REST application.

    Args:
        settings: Server settings (body limit).
        dataplane: The use cases behind the routes.

    Returns:
        An ASGI application.
    """
    r = _Routes(dataplane, settings.max_body_bytes)
    routes = [
        Route("/v2", r.server_metadata, methods=["GET"]),
        Route("/v2/health/live", r.live, methods=["GET"]),
        Route("/v2/health/ready", r.ready, methods=["GET"]),
        *_model_routes("/infer", r.infer, ["POST"]),
        *_model_routes("/ready", r.model_ready, ["GET"]),
        *_model_routes("", r.model_metadata, ["GET"]),
        Route("/v2/repository/index", r.repository_index, methods=["POST"]),
        Route("/v2/repository/models/{model}/load", r.repository_load, methods=["POST"]),
        Route("/v2/repository/models/{model}/unload", r.repository_unload, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={
            ModelportError: handle_modelport_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
    )
