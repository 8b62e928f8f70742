"""The Open Inference Protocol's gRPC service: each method parses, calls the DataPlane, serialises.

The codec (:mod:`modelport.protocol.grpc_codec`) does the parsing and serialising, the
:class:`DataPlane` the work, :mod:`modelport.server.grpc.errors` the status codes. Two things are
transport business and live here: the deadline (the request's ``timeout`` parameter and the
call's own gRPC deadline, whichever ends first) and the stream, whose requests run concurrently
(so that a batcher can merge them), up to a window, and are answered as they finish.
Statistics and metrics are counted by ``DataPlane.infer``, as for REST.

Every method first asks :meth:`AccessControl.admit` (the same entry point as REST) whether the
caller may take its action, with the model name as the request carries it, and only then checks
its arguments: an unauthenticated caller is told so, never that its request was malformed.

With tracing on (:mod:`modelport.server.tracing`), each inference is a server span that
continues the caller's trace (``traceparent`` metadata), with its ``parse``, ``queue`` and
``inference`` spans.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from time import monotonic
from typing import TYPE_CHECKING, Any, Final

from modelport.batching import RunMarks
from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import InvalidInput
from modelport.core.inference import InferenceRequest
from modelport.protocol import grpc_codec as codec
from modelport.protocol.grpc_gen import inference_pb2 as pb
from modelport.protocol.grpc_gen import inference_pb2_grpc as pb_grpc
from modelport.security.certs import certificate_subject
from modelport.security.identity import Identity
from modelport.security.rbac import Action
from modelport.server.grpc.calls import CURRENT_CALL
from modelport.server.grpc.errors import error_message, handle_errors
from modelport.server.logs import AccessLog
from modelport.server.tracing import current
from modelport.service.access import AccessControl, Caller, request_id
from modelport.service.dataplane import DataPlane
from modelport.service.models import validate_load_parameters

if TYPE_CHECKING:
    from modelport.server._otel import Tracing

__all__ = ["InferenceServicer"]

STREAM_WINDOW: Final = 64
"""Requests of one stream that may run at once; reading the stream pauses beyond that."""
_INFER: Final = Action.INFER
"""Read on every inference, as a module constant (bench/HOT_PATH.md)."""


# The generated base is untyped (mypy skips grpc_gen), so subclassing it is subclassing Any.
class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """``inference.GRPCInferenceService`` over a :class:`DataPlane`.

    Args:
        dataplane: The use cases behind the methods (it also counts the statistics).
        access: Authentication, authorisation and audit of every call.
        clock: Time source for deadlines.
        access_log: Where each unary call is recorded (status, duration, model, version,
            request id, who); ``None`` keeps no access log.
    """

    def __init__(
        self,
        dataplane: DataPlane,
        access: AccessControl,
        clock: Clock | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.dp = dataplane
        self.access = access
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.access_log = access_log
        self._subjects: dict[bytes, str] = {}
        self._tracing = current()  # this process's, set up before the worker builds anything

    def _caller(self, context: Any) -> Caller:
        """Read what the call says of its caller: credential, request id, client address.

        Raises:
            InvalidInput: ``authorization`` or ``x-request-id`` is sent more than once, or the
                request id is not valid.
        """
        authorization = rid = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                if authorization is not None:
                    raise InvalidInput(
                        "authorization metadata was sent more than once; send one credential"
                    )
                authorization = value
            elif key == "x-request-id":
                if rid is not None:
                    raise InvalidInput("x-request-id metadata was sent more than once; send one")
                rid = request_id(value)
        peer = None
        if authorization is None and self.access.enabled:
            peer = self._peer_subject(context)
        return Caller(authorization, peer, rid, _address(context.peer()))

    def _peer_subject(self, context: Any) -> str | None:
        # With mutual TLS gRPC has verified the chain; the subject is parsed once per certificate.
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            return None
        pem: bytes = pems[0]
        subject = self._subjects.get(pem)
        if subject is None:
            if len(self._subjects) > 1024:
                self._subjects.clear()
            subject = self._subjects[pem] = certificate_subject(pem)
        return subject

    async def _admit(
        self, context: Any, action: Action, name: str | None, caller: Caller | None = None
    ) -> Identity:
        """Admit the call for ``action`` on model ``name`` (``None``: the server)."""
        caller = caller or self._caller(context)
        record = CURRENT_CALL.get()
        if record is None:  # no access log
            return await self.access.admit(caller, action, name)
        record.model, record.request_id = name or None, caller.request_id
        record.identity = identity = await self.access.admit(caller, action, name)
        return identity

    async def _admit_listing(self, context: Any, action: Action) -> Identity:
        """Admit a call that lists models (its answer is filtered to what the caller sees)."""
        caller = self._caller(context)
        identity = await self.access.admit(caller, action, listing=True)
        record = CURRENT_CALL.get()
        if record is not None:
            record.request_id, record.identity = caller.request_id, identity
        return identity

    @handle_errors
    async def ServerLive(self, request: Any, context: Any) -> Any:
        """Answer whether the server is live."""
        await self._admit(context, Action.HEALTH, None)
        return pb.ServerLiveResponse(live=self.dp.live())

    @handle_errors
    async def ServerReady(self, request: Any, context: Any) -> Any:
        """Answer whether every hosted model version is ready."""
        await self._admit(context, Action.HEALTH, None)
        return pb.ServerReadyResponse(ready=self.dp.ready())

    @handle_errors
    async def ModelReady(self, request: Any, context: Any) -> Any:
        """Answer whether a model version is ready."""
        await self._admit(context, Action.METADATA, request.name)
        name, version = codec.model_target(request.name, request.version)
        return pb.ModelReadyResponse(ready=self.dp.model_ready(name, version))

    @handle_errors
    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        """Return the server's name, version and extensions."""
        await self._admit_listing(context, Action.METADATA)
        return codec.encode_server_metadata(self.dp.server_metadata())

    @handle_errors
    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        """Return a model's versions, platform, inputs and outputs."""
        await self._admit(context, Action.METADATA, request.name)
        name, version = codec.model_target(request.name, request.version)
        return codec.encode_model_metadata(self.dp.model_metadata(name, version))

    @handle_errors
    async def ModelConfig(self, request: Any, context: Any) -> Any:
        """Return a model's configuration in Triton's form (subset)."""
        await self._admit(context, Action.METADATA, request.name)
        name, version = codec.model_target(request.name, request.version)
        return codec.encode_model_config(self.dp.model_metadata(name, version))

    @handle_errors
    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        """Return inference statistics of one model (version) or of every model."""
        if not request.name:
            identity = await self._admit_listing(context, Action.METADATA)
            stats = await self.dp.statistics(None, None)
            names = self.access.visible(identity, {s["name"] for s in stats})
            return codec.encode_model_statistics([s for s in stats if s["name"] in names])
        await self._admit(context, Action.METADATA, request.name)
        name, version = codec.model_target(request.name, request.version)
        return codec.encode_model_statistics(await self.dp.statistics(name, version))

    @handle_errors
    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        """List every hosted model version with its state."""
        identity = await self._admit_listing(context, Action.MANAGE)
        codec.check_repository(request.repository_name)
        index = self.dp.repository_index(request.ready)
        names = self.access.visible(identity, {m["name"] for m in index})
        return codec.encode_repository_index([m for m in index if m["name"] in names])

    @handle_errors
    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        """Load (or reload) a model."""
        caller = self._caller(context)
        identity = await self._admit(context, Action.MANAGE, request.model_name, caller)
        name, parameters = codec.decode_repository_request(request)
        parameters = validate_load_parameters(parameters)  # refused before anything is done
        await self.access.audited(
            identity, caller, "model.load", name, self.dp.load(name, parameters)
        )
        return pb.RepositoryModelLoadResponse()

    @handle_errors
    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        """Unload a model."""
        caller = self._caller(context)
        identity = await self._admit(context, Action.MANAGE, request.model_name, caller)
        name, _ = codec.decode_repository_request(request)  # unload_dependents: nothing depends
        await self.access.audited(identity, caller, "model.unload", name, self.dp.unload(name))
        return pb.RepositoryModelUnloadResponse()

    @handle_errors
    async def ModelInfer(self, request: Any, context: Any) -> Any:
        """Run one inference."""
        return await self._infer(request, context)

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        """Run the inferences of a stream; a failed one is answered with its error."""
        answers: asyncio.Queue[Any] = asyncio.Queue()
        window = asyncio.Semaphore(STREAM_WINDOW)
        running: set[asyncio.Task[None]] = set()
        finished = object()

        async def answer(message: Any) -> None:
            try:
                answers.put_nowait(await self._stream_one(message, context))
            finally:
                window.release()

        async def read() -> None:
            try:
                async for message in request_iterator:
                    await window.acquire()
                    task = asyncio.create_task(answer(message))
                    running.add(task)
                    task.add_done_callback(running.discard)
                while running:
                    await asyncio.gather(*running)
            finally:
                answers.put_nowait(finished)

        reader = asyncio.create_task(read())
        try:
            while (item := await answers.get()) is not finished:
                yield item
            await reader  # surfaces a broken request stream as the call's error
        finally:
            reader.cancel()
            for task in list(running):
                task.cancel()

    async def _stream_one(self, message: Any, context: Any) -> Any:
        try:
            return pb.ModelStreamInferResponse(infer_response=await self._infer(message, context))
        except Exception as exc:  # reported on this response; the stream goes on
            # The id and model tell the client which request failed.
            failed = pb.ModelInferResponse(
                model_name=message.model_name, model_version=message.model_version, id=message.id
            )
            return pb.ModelStreamInferResponse(
                error_message=error_message(exc, "ModelStreamInfer"), infer_response=failed
            )

    async def _infer(self, message: Any, context: Any) -> Any:
        if self._tracing is not None:
            return await self._infer_traced(self._tracing, message, context)
        caller = self._caller(context)
        record = CURRENT_CALL.get()
        if record is None:  # no access log: one call less on the hot path
            await self.access.admit(caller, _INFER, message.model_name)
        else:
            await self._admit(context, _INFER, message.model_name, caller)
        name, version = codec.model_target(message.model_name, message.model_version)
        request = codec.decode_infer_request(message)
        deadline = self._deadline(request, context)
        response = await self.dp.infer(name, version, request, deadline)
        if record is not None:
            record.version = response.model_version
        return codec.encode_infer_response(response)

    async def _infer_traced(self, tracing: Tracing, message: Any, context: Any) -> Any:
        """:meth:`_infer` in a server span continuing the caller's trace, with its stages."""
        with tracing.grpc_span("ModelInfer", context.invocation_metadata()) as span:
            await self._admit(context, _INFER, message.model_name, self._caller(context))
            name, version = codec.model_target(message.model_name, message.model_version)
            started = monotonic()
            request = codec.decode_infer_request(message)
            parsed, marks = monotonic(), RunMarks()
            deadline = self._deadline(request, context)
            try:
                response = await self.dp.infer(name, version, request, deadline, marks=marks)
            except BaseException:
                tracing.stages((started, parsed), marks, name, version)
                raise
            served = response.model_version
            tracing.stages((started, parsed), marks, name, served)
            span.set_attributes({"modelport.model": name, "modelport.model_version": served})
            record = CURRENT_CALL.get()
            if record is not None:
                record.version = served
            return codec.encode_infer_response(response)

    def _deadline(self, request: InferenceRequest, context: Any) -> float | None:
        """Monotonic time by which the request must start: the tighter of timeout and deadline."""
        budget = codec.timeout_seconds(request.parameters)
        remaining = context.time_remaining()
        if remaining is not None and (budget is None or remaining < budget):
            budget = remaining
        return None if budget is None else self.clock.monotonic() + budget


def _address(peer: str | None) -> str | None:
    """Return the IP address of a gRPC peer (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``)."""
    if not peer:
        return None
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or None
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or None
    return kind if kind == "unix" else None
