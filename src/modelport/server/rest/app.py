"""The Open Inference Protocol over HTTP: an ASGI application built by :func:`create_app`.

Routes are the rows of :data:`modelport.server.rest.routes.ROUTES` (method, path template,
endpoint, action); this app routes with them, asks :meth:`AccessControl.admit` whether the caller
may take the route's action, and calls the route's endpoint, a method below that parses the wire
format, calls one :class:`DataPlane` method and serialises its answer.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import monotonic
from typing import TYPE_CHECKING, Any, Final

import orjson

from modelport.batching import RunMarks
from modelport.core.errors import InvalidInput, ModelportError, PayloadTooLarge
from modelport.core.inference import InferenceRequest
from modelport.core.settings import ServerSettings
from modelport.protocol.model_config import model_config
from modelport.protocol.rest import (
    decode_infer_request,
    decode_json_object,
    decode_raw_input,
    encode_infer_response,
)
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
from modelport.server.rest.routes import ROUTES, Route, Router, Target
from modelport.server.tracing import current
from modelport.service.access import AccessControl
from modelport.service.dataplane import DataPlane
from modelport.service.models import validate_load_request, validate_unload_request

if TYPE_CHECKING:
    from modelport.server._otel import Tracing

__all__ = ["Hook", "RestApp", "RoutedApp", "create_app"]

log = logging.getLogger("modelport.server")

Hook = Callable[[], Awaitable[None]]
Endpoint = Callable[..., Awaitable[Reply]]
"""A route's endpoint: ``endpoint(request)``, or ``endpoint(request, model, version)``."""
_MODEL: Final = Target.MODEL
_LISTING: Final = Target.LISTING
_BINARY = b"application/octet-stream"
_USE_BINARY: Final = (
    " for JSON (server.max_json_bytes); send large tensors in binary form "
    "(Inference-Header-Content-Length and parameters.binary_data_size), which is not parsed"
)


class RoutedApp:
    """An ASGI application driven by a route table: routing, authorisation, errors, lifespan.

    Each route's ``endpoint`` names a method of the subclass. A call is matched to its route,
    admitted by :meth:`AccessControl.admit` for the route's action (on the resource named in
    the path, when the route's target is :attr:`Target.MODEL`), and answered by the endpoint;
    a :class:`ModelportError` becomes its status and ``{"error": ...}`` body, anything else a 500
    without a traceback.

    Args:
        access: Authentication, authorisation and audit of every call.
        routes: The route table, in matching priority order.
        on_startup: Awaited in order when the server starts (before it accepts requests).
        on_shutdown: Awaited in order when the server stops.
        openapi: The document the ``openapi`` endpoint serves; by default the one
            :func:`openapi_document` makes of ``routes`` (the Open Inference Protocol's
            description).
    """

    def __init__(
        self,
        access: AccessControl,
        routes: Sequence[Route],
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        *,
        openapi: Mapping[str, Any] | None = None,
    ) -> None:
        self.access = access
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        document = dict(openapi) if openapi is not None else openapi_document(routes)
        self._openapi_body = orjson.dumps(document)
        self._router = Router(routes)
        self._endpoints: dict[str, Endpoint] = {}
        for route in routes:
            endpoint = getattr(self, route.endpoint, None)
            if not callable(endpoint):
                raise TypeError(f"route {route.method} {route.path}: no endpoint {route.endpoint}")
            self._endpoints[route.endpoint] = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        # One coroutine per request: the answer is worked out here, not in a helper coroutine.
        try:
            request = parse_request(scope, receive)
            match = self._router.match(request.raw_path)
            if match is None:
                reply = error_reply(404, f"no such endpoint: {request.method} {request.path}")
            else:
                route = match.routes.get(request.method)
                if route is None:
                    reply = error_reply(
                        405,
                        f"method {request.method} is not allowed on {request.path}; "
                        f"allowed: {match.allow}",
                        ((b"allow", match.allow.encode()),),
                    )
                else:
                    # Who may do what is decided before anything about the model is looked
                    # up, so a caller learns nothing about models outside its grants.
                    target = route.target
                    record = request.access
                    if record is not None:  # the access log (or tracing) is on
                        record.model, record.request_id = match.model, request.caller.request_id
                        record.route = route.path
                    request.identity = await self.access.admit(
                        request.caller,
                        route.action,
                        match.model if target is _MODEL else None,
                        listing=target is _LISTING,
                    )
                    if record is not None:
                        record.identity = request.identity
                    reply = await self._endpoints[route.endpoint](request, *match.args)
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

    async def openapi(self, request: Request) -> Reply:
        """``GET .../openapi.json``: the document generated from the route table."""
        return Reply(200, self._openapi_body)

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


class RestApp(RoutedApp):
    """The Open Inference Protocol's endpoints over a :class:`DataPlane`.

    With tracing on in this process (:func:`~modelport.server.tracing.current`, read when the
    app is built), inference is answered by a twin of :meth:`infer` that also records the
    ``parse``, ``queue`` and ``inference`` spans; off, nothing on the path changes.

    Args:
        dataplane: The use cases behind the routes.
        access: Authentication, authorisation and audit of every call.
        max_body_bytes: Largest accepted request body.
        max_json_bytes: Largest JSON part of an inference request (parsing it holds the event
            loop's thread).
        on_startup: Awaited in order when the server starts (before it accepts requests).
        on_shutdown: Awaited in order when the server stops.
        routes: The route table (the protocol's, :data:`ROUTES`, by default).
    """

    def __init__(
        self,
        dataplane: DataPlane,
        access: AccessControl,
        max_body_bytes: int,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        routes: Sequence[Route] = ROUTES,
        *,
        max_json_bytes: int | None = None,
    ) -> None:
        self.dp = dataplane
        self.max_body = max_body_bytes
        self.max_json = min(max_json_bytes or max_body_bytes, max_body_bytes)
        super().__init__(access, routes, on_startup, on_shutdown)
        tracing = current()
        if tracing is not None and "infer" in self._endpoints:
            self._endpoints["infer"] = functools.partial(self._infer_traced, tracing)

    # -- endpoints: one per route of the table, named by its ``endpoint`` ----------------------

    async def server_metadata(self, request: Request) -> Reply:
        """``GET /v2``."""
        return Reply.json(self.dp.server_metadata())

    async def metrics(self, request: Request) -> Reply:
        """``GET /metrics``."""
        text, content_type = self.dp.metrics_text()
        return Reply(200, text, content_type.encode())

    async def live(self, request: Request) -> Reply:
        """``GET /v2/health/live``."""
        return Reply.json({"live": True})

    async def ready(self, request: Request) -> Reply:
        """``GET /v2/health/ready``."""
        ready = self.dp.ready()
        return Reply.json({"ready": ready}, 200 if ready else 503)

    async def model_metadata(self, request: Request, model: str, version: str | None) -> Reply:
        """``GET /v2/models/{m}[/versions/{v}]``."""
        return Reply.json(self.dp.model_metadata(model, version))

    async def model_config(self, request: Request, model: str, version: str | None) -> Reply:
        """``GET /v2/models/{m}[/versions/{v}]/config``: Triton's model configuration."""
        return Reply.json(model_config(self.dp.model_metadata(model, version)))

    async def model_ready(self, request: Request, model: str, version: str | None) -> Reply:
        """``GET /v2/models/{m}[/versions/{v}]/ready``."""
        ready = self.dp.model_ready(model, version)
        return Reply.json({"name": model, "ready": ready}, 200 if ready else 503)

    async def all_statistics(self, request: Request) -> Reply:
        """``GET /v2/models/stats``: the versions the caller may see."""
        stats = await self.dp.statistics(None, None)
        if self.access.enabled:
            names = self.access.visible(request.identity, {s["name"] for s in stats})
            stats = [s for s in stats if s["name"] in names]
        return Reply.json({"model_stats": stats})

    async def model_statistics(self, request: Request, model: str, version: str | None) -> Reply:
        """``GET /v2/models/{m}[/versions/{v}]/stats``."""
        return Reply.json({"model_stats": await self.dp.statistics(model, version)})

    async def infer(self, request: Request, model: str, version: str | None) -> Reply:
        """``POST /v2/models/{m}[/versions/{v}]/infer``."""
        header_length = request.header_length
        if header_length is None:  # all JSON, the common request
            body = await read_body(request, self.max_json, _USE_BINARY)
            infer_request = decode_infer_request(body, None)
        else:
            body = await read_body(request, self.max_body)
            infer_request = self._decode(model, version, body, header_length)
        response = await self.dp.infer(model, version, infer_request)
        if request.access is not None:
            request.access.version = response.model_version
        out, json_length = encode_infer_response(response, infer_request)
        if json_length is None:
            return Reply(200, out)
        header = ((b"inference-header-content-length", str(json_length).encode()),)
        return Reply(200, out, _BINARY, header)

    async def _infer_traced(
        self, tracing: Tracing, request: Request, model: str, version: str | None
    ) -> Reply:
        """:meth:`infer` with its stages recorded under the request's span (tracing on)."""
        if not tracing.recording():  # not sampled: nothing to time
            return await self.infer(request, model, version)
        started = monotonic()
        header_length = request.header_length
        if header_length is None:
            body = await read_body(request, self.max_json, _USE_BINARY)
            infer_request = decode_infer_request(body, None)
        else:
            body = await read_body(request, self.max_body)
            infer_request = self._decode(model, version, body, header_length)
        parsed, marks = monotonic(), RunMarks()
        try:
            response = await self.dp.infer(model, version, infer_request, marks=marks)
        except BaseException:
            tracing.stages((started, parsed), marks, model, version)
            raise
        tracing.stages((started, parsed), marks, model, response.model_version)
        if request.access is not None:
            request.access.version = response.model_version
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
        # A header longer than the body is malformed (400, from the decoder), not too large.
        if self.max_json < length <= len(body):
            raise PayloadTooLarge(
                f"the JSON header of {length} bytes exceeds the limit of {self.max_json} bytes"
                + _USE_BINARY
            )
        if length == 0:
            signature = self.dp.model_signature(model, version)
            if len(signature.inputs) != 1:
                raise InvalidInput(
                    "Inference-Header-Content-Length: 0 sends one raw input, but model "
                    f"{model!r} has {len(signature.inputs)} inputs; send a JSON header"
                )
            return decode_raw_input(body, signature.inputs[0])
        return decode_infer_request(body, length)

    async def repository_index(self, request: Request) -> Reply:
        """``POST /v2/repository/index``: the versions the caller may see."""
        payload = decode_json_object(await read_body(request, self.max_body), "index request")
        ready_only = payload.get("ready", False)
        if not isinstance(ready_only, bool):
            raise InvalidInput(f"'ready' must be true or false, got {ready_only!r}")
        index = self.dp.repository_index(ready_only)
        if self.access.enabled:
            names = self.access.visible(request.identity, {m["name"] for m in index})
            index = [m for m in index if m["name"] in names]
        return Reply.json(index)

    async def repository_load(self, request: Request, model: str, version: None) -> Reply:
        """``POST /v2/repository/models/{m}/load``."""
        parameters = await self._repository_parameters(request, "load")
        await self.access.audited(
            request.identity, request.caller, "model.load", model, self.dp.load(model, parameters)
        )
        return Reply.json({})

    async def repository_unload(self, request: Request, model: str, version: None) -> Reply:
        """``POST /v2/repository/models/{m}/unload``."""
        await self._repository_parameters(request, "unload")
        await self.access.audited(
            request.identity, request.caller, "model.unload", model, self.dp.unload(model)
        )
        return Reply.json({})

    async def _repository_parameters(self, request: Request, action: str) -> dict[str, Any]:
        """Return a repository request's checked ``parameters`` (before anything is done)."""
        payload = decode_json_object(
            await read_body(request, self.max_body), f"repository {action} request"
        )
        if action == "load":
            return validate_load_request(payload)
        return validate_unload_request(payload)


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
    return RestApp(
        dataplane,
        access,
        settings.max_body_bytes,
        on_startup,
        on_shutdown,
        max_json_bytes=settings.max_json_bytes,
    )
