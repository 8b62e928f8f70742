"""The gateway's REST transport: the Open Inference Protocol on deployments.

A client calls ``/v2/models/{deployment}/infer`` as it would call a model; the gateway picks the
variant (:class:`~modelport.service.gateway.Gateway`) and its backend answers. The routes are the
protocol's own rows of :data:`~modelport.server.rest.routes.ROUTES` (inference, model metadata
and readiness, server health and metadata, metrics, the OpenAPI document), so authorisation is
the same: ``infer`` on the deployment's name. What the gateway adds to the wire:

- ``x-modelport-variant`` on every answer: the variant that answered.
- ``X-Modelport-Variant`` on a request names the variant (testers trying a candidate, weight 0
  included); it is honoured only for callers holding the ``deployer`` role on the deployment,
  and refused with 403 for others.
- A deployment picks the version, so ``/v2/models/{d}/versions/{v}/...`` is refused with 400.

The request body is not decoded here: it goes to the backend as received.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from modelport import __version__
from modelport.core.errors import InvalidInput
from modelport.protocol.model_config import model_config
from modelport.security.identity import AuthMethod
from modelport.security.rbac import Action
from modelport.server.logs import identity_hash
from modelport.server.rest.app import Hook, RoutedApp
from modelport.server.rest.asgi import Reply, Request, read_body
from modelport.server.rest.routes import ROUTES, Route
from modelport.service.access import AccessControl, new_request_id
from modelport.service.gateway import Call, Gateway

__all__ = ["GATEWAY_ROUTES", "GatewayApp"]

_ENDPOINTS: Final = frozenset(
    {
        "server_metadata",
        "live",
        "ready",
        "model_metadata",
        "model_ready",
        "model_config",
        "infer",
        "openapi",
        "metrics",
    }
)
GATEWAY_ROUTES: Final[tuple[Route, ...]] = tuple(r for r in ROUTES if r.endpoint in _ENDPOINTS)
"""The protocol's routes a gateway answers (no repository extension, no statistics)."""

_OVERRIDE: Final = b"x-modelport-variant"
_BINARY: Final = b"application/octet-stream"
_JSON: Final = b"application/json"
_USE_BINARY: Final = (
    " for JSON (server.max_json_bytes); send large tensors in binary form "
    "(Inference-Header-Content-Length and parameters.binary_data_size)"
)


class GatewayApp(RoutedApp):
    """The OIP endpoints of a gateway.

    Args:
        gateway: The deployments and their routing.
        access: Authentication, authorisation and audit of every call.
        max_body_bytes: Largest accepted request body.
        max_json_bytes: Largest all-JSON request body.
        metrics: Returns the Prometheus text and its content type.
        on_startup: Awaited in order when the server starts.
        on_shutdown: Awaited in order when it stops.
    """

    def __init__(
        self,
        gateway: Gateway,
        access: AccessControl,
        max_body_bytes: int,
        max_json_bytes: int,
        metrics: Callable[[], tuple[bytes, str]],
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
    ) -> None:
        self.gateway = gateway
        self.max_body = max_body_bytes
        self.max_json = min(max_json_bytes, max_body_bytes)
        self._metrics = metrics
        super().__init__(access, GATEWAY_ROUTES, on_startup, on_shutdown)

    async def server_metadata(self, request: Request) -> Reply:
        """``GET /v2``."""
        return Reply.json(
            {
                "name": "modelport-gateway",
                "version": __version__,
                "extensions": ["binary_tensor_data"],
            }
        )

    async def live(self, request: Request) -> Reply:
        """``GET /v2/health/live``."""
        return Reply.json({"live": True})

    async def ready(self, request: Request) -> Reply:
        """``GET /v2/health/ready``: every deployment has a backend that can answer."""
        ready = self.gateway.ready()
        return Reply.json({"ready": ready}, 200 if ready else 503)

    async def metrics(self, request: Request) -> Reply:
        """``GET /metrics``."""
        text, content_type = self._metrics()
        return Reply(200, text, content_type.encode())

    async def model_metadata(self, request: Request, name: str, version: str | None) -> Reply:
        """``GET /v2/models/{deployment}``: the primary variant's metadata, under its name."""
        return Reply.json(await self._metadata(request, name, version))

    async def model_config(self, request: Request, name: str, version: str | None) -> Reply:
        """``GET /v2/models/{deployment}/config``: Triton's model configuration."""
        return Reply.json(model_config(await self._metadata(request, name, version)))

    async def model_ready(self, request: Request, name: str, version: str | None) -> Reply:
        """``GET /v2/models/{deployment}/ready``: every answering variant is ready."""
        _unversioned(name, version)
        route = self.gateway.route(name)
        call = self._call(request, name, b"", None)
        ready = True
        for variant in route.plan.answering():
            model, served = route.served[variant]
            ready = ready and await route.backend.model_ready(model, served, call)
        return Reply.json({"name": name, "ready": ready}, 200 if ready else 503)

    async def _metadata(self, request: Request, name: str, version: str | None) -> dict[str, Any]:
        _unversioned(name, version)
        route = self.gateway.route(name)
        model, served = route.served[route.primary().variant]
        metadata = await route.backend.metadata(model, served, self._call(request, name, b"", None))
        versions = sorted({v for _, v in route.served.values()}, key=_version_order)
        return {**metadata, "name": name, "versions": versions}

    async def infer(self, request: Request, name: str, version: str | None) -> Reply:
        """``POST /v2/models/{deployment}/infer``."""
        _unversioned(name, version)
        route = self.gateway.route(name)
        override, key = _route_headers(request, route.sticky_header_bytes)
        if override is not None:
            # Naming the variant is a deployer's tool: the deployer role on this deployment.
            await self.access.admit(request.caller, Action.MANAGE, name)
        header = request.header_length
        if header is None:
            body = await read_body(request, self.max_json, _USE_BINARY)
            header_length = None
        else:
            body = await read_body(request, self.max_body)
            header_length = _header_length(header, len(body))
        call = self._call(request, name, body, header_length)
        assignment = self.gateway.assign(route, call, key, override)
        answer = await self.gateway.infer(route, assignment, call)
        record = request.access
        if record is not None:
            record.version = answer.model_version
        variant = ((b"x-modelport-variant", assignment.slot.variant.encode()),)
        if answer.json_length is None:
            return Reply(answer.status, answer.body, _JSON, variant)
        length = ((b"inference-header-content-length", b"%d" % answer.json_length),)
        return Reply(answer.status, answer.body, _BINARY, variant + length)

    @staticmethod
    def _call(request: Request, name: str, body: bytes, header_length: int | None) -> Call:
        caller = request.caller
        identity = request.identity
        return Call(
            deployment=name,
            body=body,
            header_length=header_length,
            request_id=caller.request_id or new_request_id(),
            authorization=caller.authorization,
            identity=None
            if identity.method is AuthMethod.NONE
            else identity_hash(identity.subject),
        )


def _route_headers(request: Request, sticky: bytes | None) -> tuple[str | None, str | None]:
    """The ``X-Modelport-Variant`` value and the unit key's header value, in one pass.

    Raises:
        InvalidInput: Either was sent more than once (never "the last one wins").
    """
    override = key = None
    for name, value in request.headers or ():
        if name == _OVERRIDE:
            if override is not None:
                raise InvalidInput("x-modelport-variant was sent more than once; send one")
            override = value.decode("latin-1")
        elif name == sticky:
            if key is not None:
                raise InvalidInput(f"{name.decode()} (the unit key) was sent more than once")
            key = value.decode("latin-1")
    return override, key


def _unversioned(name: str, version: str | None) -> None:
    if version is not None:
        raise InvalidInput(
            f"deployment {name!r} chooses the version of each request; call "
            f"/v2/models/{name}/infer (a deployer names a variant with X-Modelport-Variant)"
        )


def _header_length(header: str, body_length: int) -> int:
    try:
        value = int(header)
    except ValueError:
        value = -1
    if not 0 <= value <= body_length:
        raise InvalidInput(
            "Inference-Header-Content-Length must be an integer from 0 to the body's length "
            f"({body_length}), got {header!r}"
        )
    return value


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdecimal() else (1 << 62, version)
