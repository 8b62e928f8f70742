"""The gateway's REST transport: the Open Inference Protocol on deployments.

A client calls ``/v2/models/{deployment}/infer`` as it would call a model; the gateway picks the
variant (:class:`~modelport.service.gateway.Gateway`) and its backend answers. The routes are the
protocol's own rows of :data:`~modelport.server.rest.routes.ROUTES` (inference, model metadata
and readiness, server health and metadata, metrics, the OpenAPI document), so authorisation is
the same: ``infer`` on the deployment's name. What the gateway adds to the wire:

- ``x-modelport-variant`` on every answer: the variant that answered; ``x-request-id``: the
  request id the prediction is logged under (the caller's, or one made for it), which feedback
  names it by.
- ``X-Modelport-Variant`` on a request names the variant (testers trying a candidate, weight 0
  included); it is honoured only for callers holding the ``deployer`` role on the deployment,
  and refused with 403 for others.
- A deployment picks the version, so ``/v2/models/{d}/versions/{v}/...`` is refused with 400.
- ``POST /v2/feedback`` takes the true outcomes of answered requests (by request id), as JSON
  or JSON lines; whoever may infer on a deployment may send its feedback
  (:class:`~modelport.service.feedback.FeedbackService` checks and stores it, in a worker
  thread).

An inference request's body is not decoded here: it goes to the backend as received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Final

from modelport import __version__
from modelport.core.errors import InvalidInput, NotFound
from modelport.protocol.model_config import model_config
from modelport.security.identity import AuthMethod
from modelport.security.rbac import Action
from modelport.server.logs import identity_hash
from modelport.server.rest.app import Hook, RoutedApp
from modelport.server.rest.asgi import Reply, Request, read_body
from modelport.server.rest.openapi import openapi_document
from modelport.server.rest.routes import ROUTES, Route, Target
from modelport.service.access import AccessControl, audit_text, new_request_id
from modelport.service.feedback import FeedbackReceipt, FeedbackService
from modelport.service.feedback_forms import parse_feedback_json, parse_feedback_lines
from modelport.service.gateway import Call, Gateway

__all__ = ["FEEDBACK_ROUTE", "GATEWAY_ROUTES", "GatewayApp", "gateway_openapi_document"]

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

_ERROR: Final = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_LABEL: Final = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]}
_VALUE: Final = {"type": "number"}
_DEPLOYMENT: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": 63,
    "description": "The deployment the requests were sent to.",
}


def _feedback_item(deployment: bool) -> dict[str, Any]:
    """One feedback's schema, with or without its deployment."""
    properties: dict[str, Any] = {"deployment": _DEPLOYMENT} if deployment else {}
    properties |= {
        "request_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "description": "The request's id (its x-request-id), as the prediction log has it.",
        },
        "label": {
            "description": "Classification: the true label, or one per row of the request.",
            "anyOf": [_LABEL, {"type": "array", "items": _LABEL, "minItems": 1}],
        },
        "value": {
            "description": "Regression: the true number, or one per row of the request.",
            "anyOf": [_VALUE, {"type": "array", "items": _VALUE, "minItems": 1}],
        },
    }
    return {
        "type": "object",
        "description": "The truth of one answered request: a label or a value, not both.",
        "properties": properties,
        "required": ["deployment", "request_id"] if deployment else ["request_id"],
        "oneOf": [{"required": ["label"]}, {"required": ["value"]}],
        "additionalProperties": False,
    }


_FEEDBACK_SCHEMAS: Final[dict[str, Any]] = {
    "FeedbackItem": _feedback_item(deployment=False),
    "Feedback": {
        "description": "One feedback with its deployment, or a deployment's list of them.",
        "oneOf": [
            _feedback_item(deployment=True),
            {
                "type": "object",
                "properties": {
                    "deployment": _DEPLOYMENT,
                    "feedback": {"type": "array", "items": _ref("FeedbackItem"), "minItems": 1},
                },
                "required": ["deployment", "feedback"],
                "additionalProperties": False,
            },
        ],
    },
    "FeedbackReceipt": {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer", "minimum": 0, "description": "Feedback stored."},
            "replaced": {
                "type": "integer",
                "minimum": 0,
                "description": "Of those, how many replaced an earlier feedback of the request.",
            },
        },
        "required": ["accepted", "replaced"],
    },
}
_FEEDBACK: Final[dict[str, Any]] = {
    "summary": "True labels or values of answered requests, by request id (all or nothing)",
    "tags": ["feedback"],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _ref("Feedback")},
            "application/x-ndjson": {
                "schema": {
                    "type": "string",
                    "description": "JSON lines: one Feedback object (with its deployment) a line.",
                }
            },
        },
    },
    "responses": {
        "200": {
            "description": "Stored.",
            "content": {"application/json": {"schema": _ref("FeedbackReceipt")}},
        },
        "400": _error(
            "Malformed (the message names the item or line), the wrong kind for the "
            "deployment's experiment (label or value), or a request id given twice; nothing "
            "was stored."
        ),
        "404": _error(
            "Some request ids are not in the prediction log (how many, and the first ten); "
            "nothing was stored."
        ),
        "413": _error("The body is over the server's size limit."),
    },
}
FEEDBACK_ROUTE: Final = Route(
    "POST", "/v2/feedback", "feedback", Action.INFER, Target.LISTING, _FEEDBACK, "feedback"
)
"""``POST /v2/feedback``: admitted for any predictor; each deployment named is checked."""

GATEWAY_ROUTES: Final[tuple[Route, ...]] = (
    *(r for r in ROUTES if r.endpoint in _ENDPOINTS),
    FEEDBACK_ROUTE,
)
"""The protocol's routes a gateway answers (no repository extension, no statistics), and
feedback."""
_JSON_TYPES: Final = frozenset({"", "application/json", "application/x-www-form-urlencoded"})
"""Bodies read as JSON: ``curl -d`` labels its body a form, and no form is accepted here."""
_LINES_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/jsonl", "application/jsonlines"}
)


def gateway_openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of :data:`GATEWAY_ROUTES` (a new one on every call)."""
    document = openapi_document(GATEWAY_ROUTES)
    document["tags"].append({"name": "feedback"})
    document["components"]["schemas"].update(_FEEDBACK_SCHEMAS)
    return document


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
        feedback: Takes feedback on answered requests; ``None``: ``/v2/feedback`` answers 404.
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
        *,
        feedback: FeedbackService | None = None,
    ) -> None:
        self.gateway = gateway
        self.max_body = max_body_bytes
        self.max_json = min(max_json_bytes, max_body_bytes)
        self._metrics = metrics
        self._feedback = feedback
        super().__init__(
            access, GATEWAY_ROUTES, on_startup, on_shutdown, openapi=gateway_openapi_document()
        )

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
        # The request id is what feedback names the prediction by: the caller's, or a new one.
        variant = (
            (b"x-modelport-variant", assignment.slot.variant.encode()),
            (b"x-request-id", call.request_id.encode()),
        )
        if answer.json_length is None:
            return Reply(answer.status, answer.body, _JSON, variant)
        length = ((b"inference-header-content-length", b"%d" % answer.json_length),)
        return Reply(answer.status, answer.body, _BINARY, variant + length)

    async def feedback(self, request: Request) -> Reply:
        """``POST /v2/feedback``: JSON, or JSON lines (``application/x-ndjson``)."""
        if self._feedback is None:
            raise NotFound("this server takes no feedback")
        body = await read_body(request, self.max_body)
        # Parsing, the prediction log's lookup and the database write all block.
        receipt = await asyncio.to_thread(self._take_feedback, self._feedback, request, body)
        return Reply.json({"accepted": receipt.accepted, "replaced": receipt.replaced})

    def _take_feedback(
        self, service: FeedbackService, request: Request, body: bytes
    ) -> FeedbackReceipt:
        """Parse, authorise (``infer`` on every deployment named) and submit (in a thread)."""
        content_type = request.header(b"content-type") or ""
        media = content_type.partition(";")[0].strip().lower()
        if media in _JSON_TYPES:
            entries = parse_feedback_json(body)
        elif media in _LINES_TYPES:
            entries = parse_feedback_lines(body)
        else:
            raise InvalidInput(
                f"Content-Type {content_type!r} is not accepted here; send feedback as "
                "application/json or application/x-ndjson (JSON lines)"
            )
        for name in sorted({entry.deployment for entry in entries}):
            self.access.check(request.caller, Action.INFER, name)
        actor = audit_text(request.identity.subject)
        return service.submit_entries(entries, actor, request.caller.request_id)

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
