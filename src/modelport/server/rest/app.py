"""The Open Inference Protocol over HTTP: an ASGI application built by :func:`create_app`.

Routes parse the wire format, call one :class:`DataPlane` method and serialise its answer. Every
model endpoint exists with and without ``/versions/{version}``.

========  ==============================================  ==========================
method    path                                            handler
========  ==============================================  ==========================
GET       /v2                                             server metadata
GET       /v2/health/live, /v2/health/ready               liveness, readiness
GET       /v2/models/{m}[/versions/{v}]                   model metadata
GET       /v2/models/{m}[/versions/{v}]/ready             model readiness
GET       /v2/models[/{m}[/versions/{v}]]/stats           inference statistics
POST      /v2/models/{m}[/versions/{v}]/infer             inference
POST      /v2/repository/index                            repository index
POST      /v2/repository/models/{m}/load | /unload        hot load / unload
GET       /metrics                                        Prometheus metrics
GET       /v2/openapi.json                                this API's OpenAPI description
========  ==============================================  ==========================
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Final

import orjson

from modelport.core.errors import InvalidInput, ModelportError
from modelport.core.inference import InferenceRequest
from modelport.core.settings import ServerSettings
from modelport.protocol.rest import (
    decode_infer_request,
    decode_json_object,
    decode_raw_input,
    encode_infer_response,
)
from modelport.security.rbac import Action
from modelport.server.rest.asgi import (
    Receive,
    Reply,
    Request,
    Scope,
    Send,
    parse_request,
    read_body,
)
from modelport.server.rest.errors import error_reply, reply_for
from modelport.server.rest.openapi import openapi_document
from modelport.service.access import AccessControl
from modelport.service.dataplane import DataPlane

__all__ = ["Hook", "RestApp", "create_app"]

log = logging.getLogger("modelport.server")

Hook = Callable[[], Awaitable[None]]
Handler = Callable[[Request], Awaitable[Reply]]
"""A route's handler; one about a model is that method with its path's arguments bound
positionally (``functools.partial`` merges keyword arguments into a new dict on every call)."""
_LISTING: Final = "\x00listing"
"""Route target of calls that list models: any grant of the role will do, and the answer is
filtered to the names the caller may see."""
Route = tuple[str, Handler, Action, str | None]
"""HTTP method, handler, what the call does, and the model it is about (or ``_LISTING``)."""
_BINARY = b"application/octet-stream"
_ROUTE_TABLE_SIZE: Final = 1024
"""Most request paths whose route is remembered (a model's endpoints take a handful)."""


class RestApp:
    """The ASGI application: routing, the endpoints, and lifespan hooks.

    Args:
        dataplane: The use cases behind the routes.
        access: Authentication, authorisation and audit of every call.
        max_body_bytes: Largest accepted request body.
        on_startup: Awaited in order when the server starts (before it accepts requests).
        on_shutdown: Awaited in order when the server stops.
    """

    def __init__(
        self,
        dataplane: DataPlane,
        access: AccessControl,
        max_body_bytes: int,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
    ) -> None:
        self.dp = dataplane
        self.access = access
        self.max_body = max_body_bytes
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self._openapi_body = orjson.dumps(openapi_document())
        self._routes: dict[str, Route] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        # One coroutine per request: the answer is worked out here, not in a helper coroutine.
        try:
            request = parse_request(scope, receive)
            route = self._route(request)
            if isinstance(route, Reply):
                reply = route
            else:
                _, handler, action, name = route
                # Who may do what is decided before anything about the model is looked up, so
                # a caller learns nothing about models outside its grants.
                if name is _LISTING:
                    request.identity = await self.access.check_listing_async(request.caller, action)
                else:
                    # A cached grant is answered without a coroutine; anything else is looked up.
                    identity = self.access.granted(request.caller, action, name)
                    if identity is None:
                        identity = await self.access.check_async(request.caller, action, name)
                    request.identity = identity
                reply = await handler(request)
        except ModelportError as exc:
            if exc.kind.value == "internal":
                log.error("%s %s failed: %s", scope["method"], scope["path"], exc)
            reply = reply_for(exc)
        except Exception as exc:  # a bug: log it, answer 500 without a traceback
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            reply = error_reply(500, f"internal error: {type(exc).__name__}")
        start, body = reply.messages()
        await send(start)
        await send(body)

    def _route(self, request: Request) -> Route | Reply:
        """Return the request's route, or the 404 / 405 answer when it has none."""
        route = self._routes.get(request.path)
        if route is None:
            route = self._match(request.path.split("/"))
            if route is None:
                return error_reply(404, f"no such endpoint: {request.method} {request.path}")
            # Matching depends on the path alone; a bounded table of paths seen keeps a flood
            # of distinct paths from growing it without limit.
            if len(self._routes) >= _ROUTE_TABLE_SIZE:
                self._routes.clear()
            self._routes[request.path] = route
        method = route[0]
        if request.method != method and not (method == "GET" and request.method == "HEAD"):
            return error_reply(405, f"method {request.method} is not allowed on {request.path}")
        return route

    def _match(self, parts: list[str]) -> Route | None:
        # parts[0] is "" (the path starts with "/"), parts[1] must be "v2" (or "metrics").
        n = len(parts)
        if n == 2 and parts == ["", "metrics"]:
            return "GET", self._metrics, Action.METADATA, None
        if n < 2 or parts[0] or parts[1] != "v2":
            return None
        if n == 2:
            return "GET", self._server_metadata, Action.METADATA, _LISTING
        if n == 3 and parts[2] == "openapi.json":
            return "GET", self._openapi, Action.METADATA, _LISTING
        if n == 4 and parts[2:4] == ["models", "stats"]:
            stats = partial(self._statistics, None, None)
            return "GET", stats, Action.METADATA, _LISTING
        if parts[2] == "models" and n >= 4 and parts[3]:
            return self._match_model(parts[3], parts[4:])
        if n == 4 and parts[2] == "health" and parts[3] in ("live", "ready"):
            return "GET", self._live if parts[3] == "live" else self._ready, Action.HEALTH, None
        if n == 4 and parts[2] == "repository" and parts[3] == "index":
            return "POST", self._repository_index, Action.MANAGE, _LISTING
        if n == 6 and parts[2] == "repository" and parts[3] == "models" and parts[4]:
            if parts[5] in ("load", "unload"):
                change = partial(self._repository_change, parts[4], parts[5])
                return "POST", change, Action.MANAGE, parts[4]
        return None

    def _match_model(self, model: str, rest: list[str]) -> Route | None:
        version: str | None = None
        if len(rest) >= 2 and rest[0] == "versions" and rest[1]:
            version, rest = rest[1], rest[2:]
        if not rest:
            return (
                "GET",
                partial(self._model_metadata, model, version),
                Action.METADATA,
                model,
            )
        if rest == ["ready"]:
            return (
                "GET",
                partial(self._model_ready, model, version),
                Action.METADATA,
                model,
            )
        if rest == ["infer"]:
            return "POST", partial(self._infer, model, version), Action.INFER, model
        if rest == ["stats"]:
            return (
                "GET",
                partial(self._statistics, model, version),
                Action.METADATA,
                model,
            )
        return None

    async def _server_metadata(self, request: Request) -> Reply:
        return Reply.json(self.dp.server_metadata())

    async def _openapi(self, request: Request) -> Reply:
        return Reply(200, self._openapi_body)

    async def _metrics(self, request: Request) -> Reply:
        text, content_type = self.dp.metrics_text()
        return Reply(200, text, content_type.encode())

    async def _live(self, request: Request) -> Reply:
        return Reply.json({"live": True})

    async def _ready(self, request: Request) -> Reply:
        ready = self.dp.ready()
        return Reply.json({"ready": ready}, 200 if ready else 503)

    async def _model_metadata(self, model: str, version: str | None, request: Request) -> Reply:
        return Reply.json(self.dp.model_metadata(model, version))

    async def _model_ready(self, model: str, version: str | None, request: Request) -> Reply:
        ready = self.dp.model_ready(model, version)
        return Reply.json({"name": model, "ready": ready}, 200 if ready else 503)

    async def _statistics(self, model: str | None, version: str | None, request: Request) -> Reply:
        stats = await self.dp.statistics(model, version)
        if model is None and self.access.enabled:
            names = self.access.visible(request.identity, {s["name"] for s in stats})
            stats = [s for s in stats if s["name"] in names]
        return Reply.json({"model_stats": stats})

    async def _infer(self, model: str, version: str | None, request: Request) -> Reply:
        body = await read_body(request, self.max_body)
        if request.header_length is None:  # all JSON, the common request
            infer_request = decode_infer_request(body, None)
        else:
            infer_request = self._decode(model, version, body, request.header_length)
        response = await self.dp.infer(model, version, infer_request)
        out, json_length = encode_infer_response(response, infer_request)
        if json_length is None:
            return Reply(200, out)
        header = ((b"inference-header-content-length", str(json_length).encode()),)
        return Reply(200, out, _BINARY, header)

    def _decode(
        self, model: str, version: str | None, body: bytes, header: str
    ) -> InferenceRequest:
        """Decode a body sent with an ``Inference-Header-Content-Length`` header."""
        length = _header_length(header)
        if length == 0:
            signature = self.dp.model_signature(model, version)
            if len(signature.inputs) != 1:
                raise InvalidInput(
                    "Inference-Header-Content-Length: 0 sends one raw input, but model "
                    f"{model!r} has {len(signature.inputs)} inputs; send a JSON header"
                )
            return decode_raw_input(body, signature.inputs[0])
        return decode_infer_request(body, length)

    async def _repository_index(self, request: Request) -> Reply:
        payload = decode_json_object(await read_body(request, self.max_body), "index request")
        ready_only = payload.get("ready", False)
        if not isinstance(ready_only, bool):
            raise InvalidInput(f"'ready' must be true or false, got {ready_only!r}")
        index = self.dp.repository_index(ready_only)
        if self.access.enabled:
            names = self.access.visible(request.identity, {m["name"] for m in index})
            index = [m for m in index if m["name"] in names]
        return Reply.json(index)

    async def _repository_change(self, model: str, action: str, request: Request) -> Reply:
        what = f"repository {action} request"
        payload = decode_json_object(await read_body(request, self.max_body), what)
        parameters = payload.get("parameters", {})
        if not isinstance(parameters, dict):
            raise InvalidInput(f"{what}: 'parameters' must be an object")
        work = self.dp.load(model, parameters) if action == "load" else self.dp.unload(model)
        await self.access.audited(request.identity, request.caller, f"model.{action}", model, work)
        return Reply.json({})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    await hook()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _header_length(header: str) -> int:
    try:
        value = int(header)
    except ValueError:
        raise InvalidInput(
            f"Inference-Header-Content-Length must be a non-negative integer, got {header!r}"
        ) from None
    if value < 0:
        raise InvalidInput(f"Inference-Header-Content-Length must be non-negative, got {value}")
    return value


def create_app(
    settings: ServerSettings,
    dataplane: DataPlane,
    access: AccessControl,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> RestApp:
    """Build the REST application.

    Args:
        settings: Server settings (body limit).
        dataplane: The use cases behind the routes.
        access: Authentication, authorisation and audit of every call.
        on_startup: Awaited when the server starts (load models, start gRPC...).
        on_shutdown: Awaited when it stops.

    Returns:
        An ASGI application.
    """
    return RestApp(dataplane, access, settings.max_body_bytes, on_startup, on_shutdown)
