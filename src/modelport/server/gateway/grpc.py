"""The gateway's gRPC transport: ``inference.GRPCInferenceService`` on deployments.

The same service as the model server's (:class:`InferenceServicer`: its credential reading,
authorisation and error statuses), with inference, metadata and health answered by the
:class:`Gateway`. A request is decoded once, to read a unit-key parameter and to give the
in-process backend its tensors, and encoded as a REST body with binary tensors for a remote one.
The variant that answered is sent as ``x-modelport-variant`` trailing metadata; a caller holding
the ``deployer`` role names one with ``x-modelport-variant`` metadata. The repository extension
and statistics belong to model servers: UNIMPLEMENTED here. With tracing on, each inference is
a server span continuing the caller's trace (``traceparent`` metadata), the parent of the
backend's spans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelport import __version__
from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import InvalidInput
from modelport.protocol import grpc_codec as codec
from modelport.protocol.grpc_gen import inference_pb2 as pb
from modelport.protocol.grpc_gen import inference_pb2_grpc as pb_grpc
from modelport.protocol.rest import decode_infer_response, encode_infer_request
from modelport.security.identity import AuthMethod
from modelport.security.rbac import Action
from modelport.server.gateway.remote import error_for_status
from modelport.server.grpc.errors import handle_errors
from modelport.server.grpc.servicer import InferenceServicer
from modelport.server.logs import AccessLog, identity_hash
from modelport.server.tracing import current
from modelport.service.access import AccessControl, new_request_id
from modelport.service.gateway import Call, Gateway

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["GatewayServicer"]

_BASE = pb_grpc.GRPCInferenceServiceServicer


class GatewayServicer(InferenceServicer):
    """``inference.GRPCInferenceService`` over a :class:`Gateway`.

    Args:
        gateway: The deployments and their routing.
        access: Authentication, authorisation and audit of every call.
        clock: Time source.
        access_log: Where each unary call is recorded; ``None`` keeps no access log.
    """

    def __init__(
        self,
        gateway: Gateway,
        access: AccessControl,
        clock: Clock | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        # The model server's servicer without its data plane: every method that used it is
        # replaced below or left unimplemented.
        self.gateway = gateway
        self.access = access
        self.clock = clock if clock is not None else SystemClock()
        self.access_log = access_log
        self._subjects: dict[bytes, str] = {}
        self._tracing = current()  # this process's, set up before the worker builds anything

    ModelStatistics = _BASE.ModelStatistics
    ModelConfig = _BASE.ModelConfig
    RepositoryIndex = _BASE.RepositoryIndex
    RepositoryModelLoad = _BASE.RepositoryModelLoad
    RepositoryModelUnload = _BASE.RepositoryModelUnload

    @handle_errors
    async def ServerLive(self, request: Any, context: Any) -> Any:
        """The gateway is live while it answers."""
        await self._admit(context, Action.HEALTH, None)
        return pb.ServerLiveResponse(live=True)

    @handle_errors
    async def ServerReady(self, request: Any, context: Any) -> Any:
        """Every deployment has a backend that can answer."""
        await self._admit(context, Action.HEALTH, None)
        return pb.ServerReadyResponse(ready=self.gateway.ready())

    @handle_errors
    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        """The gateway's name, version and extensions."""
        await self._admit_listing(context, Action.METADATA)
        return codec.encode_server_metadata(
            {"name": "modelport-gateway", "version": __version__, "extensions": []}
        )

    @handle_errors
    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        """The primary variant's metadata under the deployment's name."""
        await self._admit(context, Action.METADATA, request.name)
        _unversioned(request.name, request.version)
        route = self.gateway.route(request.name)
        model, served = route.served[route.primary().variant]
        metadata = await route.backend.metadata(model, served, self._call(context, request.name))
        versions = sorted({v for _, v in route.served.values()})
        return codec.encode_model_metadata({**metadata, "name": request.name, "versions": versions})

    @handle_errors
    async def ModelReady(self, request: Any, context: Any) -> Any:
        """Whether every answering variant is ready."""
        await self._admit(context, Action.METADATA, request.name)
        _unversioned(request.name, request.version)
        route = self.gateway.route(request.name)
        call = self._call(context, request.name)
        ready = True
        for variant in route.plan.answering():
            model, served = route.served[variant]
            ready = ready and await route.backend.model_ready(model, served, call)
        return pb.ModelReadyResponse(ready=ready)

    async def _infer(self, message: Any, context: Any, span: Span | None = None) -> Any:
        if self._tracing is not None and span is None:
            with self._tracing.grpc_span("ModelInfer", context.invocation_metadata()) as span:
                return await self._infer(message, context, span)
        caller = self._caller(context)
        name = message.model_name
        identity = await self._admit(context, Action.INFER, name, caller)
        _unversioned(name, message.model_version)
        route = self.gateway.route(name)
        metadata = dict(context.invocation_metadata() or ())
        override = metadata.get("x-modelport-variant")
        if override is not None:
            await self.access.admit(caller, Action.MANAGE, name)
        request = codec.decode_infer_request(message)
        body, header_length = encode_infer_request(request, binary_inputs=True, binary_outputs=True)
        call = Call(
            deployment=name,
            body=body,
            header_length=header_length,
            request_id=caller.request_id or new_request_id(),
            authorization=caller.authorization,
            request=request,
            identity=None
            if identity.method is AuthMethod.NONE
            else identity_hash(identity.subject),
            protocol="grpc",
        )
        key = metadata.get(route.sticky_header) if route.sticky_header else None
        assignment = self.gateway.assign(route, call, key, override)
        answer = await self.gateway.infer(route, assignment, call)
        if answer.status != 200:
            raise error_for_status(answer.status, answer.body, "the variant's backend")
        variant = assignment.slot.variant
        context.set_trailing_metadata((("x-modelport-variant", variant),))
        if span is not None:
            span.set_attributes(
                {
                    "modelport.deployment": name,
                    "modelport.variant": variant,
                    "modelport.model_version": answer.model_version or "",
                    "modelport.request_id": call.request_id,
                }
            )
        response = decode_infer_response(answer.body, answer.json_length)
        return codec.encode_infer_response(response)

    def _call(self, context: Any, name: str) -> Call:
        caller = self._caller(context)
        return Call(name, b"", None, caller.request_id or new_request_id(), caller.authorization)


def _unversioned(name: str, version: str) -> None:
    if version:
        raise InvalidInput(
            f"deployment {name!r} chooses the version of each request; leave the version empty "
            "(a deployer names a variant with x-modelport-variant metadata)"
        )
