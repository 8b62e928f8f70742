"""The OpenTelemetry half of :mod:`modelport.server.tracing`, imported only when tracing is on.

Everything that touches the ``opentelemetry`` packages (the ``tracing`` extra) is in this module:
the SDK's tracer provider with a ``BatchSpanProcessor`` and the OTLP/HTTP exporter, the W3C
trace-context propagator, and the spans the transports make. :mod:`.tracing` says which spans
there are and when this module is loaded.

Times: the request span and the ``forward`` span are timed by the SDK as they start and end;
``parse``, ``queue`` and ``inference`` are made after the fact from monotonic readings (the
data plane's clock, :func:`time.monotonic`), placed on the wall clock by the difference of the
two clocks read once when they are made.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final, Protocol, TypeVar

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from modelport import __version__
from modelport.batching import RunMarks
from modelport.core.settings import TracingSettings
from modelport.server.grpc.errors import status_name
from modelport.server.logs import AccessRecord
from modelport.server.rest.asgi import Message, Receive, Scope, Send
from modelport.server.tracing import Role

__all__ = ["Tracing"]

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_UNTRACED: Final = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})
"""Probes and scrapes: frequent, and of no interest in a trace."""
_GRPC_SERVICE: Final = "inference.GRPCInferenceService"
_GRPC_SERVER_FAULTS: Final = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
"""gRPC statuses that mark a server span as failed (OpenTelemetry's gRPC conventions)."""
_PROPAGATED: Final = ("traceparent", "tracestate")
_FLUSH_S: Final = 5.0
"""Seconds a stopping server waits for its last spans to be exported."""
_VARIANT: Final = b"x-modelport-variant"
_REQUEST_ID: Final = b"x-request-id"


class _HeaderGetter(Getter[Iterable[tuple[bytes, bytes]]]):
    """Reads W3C trace-context headers out of an ASGI scope's raw header list."""

    def get(self, carrier: Iterable[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.encode("latin-1")
        found = [value.decode("latin-1") for header, value in carrier if header == name]
        return found or None

    def keys(self, carrier: Iterable[tuple[bytes, bytes]]) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


_HEADERS: Final = _HeaderGetter()


class _Reply(Protocol):
    """What :meth:`Tracing.forward` reads of a replica's answer."""

    @property
    def status(self) -> int:
        """The HTTP status."""
        ...

    @property
    def replica(self) -> str:
        """The base URL of the replica that answered."""
        ...


R = TypeVar("R", bound=_Reply)


class _Answer:
    """What the request span reads off the response head as it goes by."""

    __slots__ = ("request_id", "status", "variant")

    def __init__(self) -> None:
        self.status = 0
        self.variant: str | None = None
        self.request_id: str | None = None

    def read(self, message: Message) -> None:
        self.status = int(message["status"])
        for name, value in message.get("headers", ()):
            if name == _VARIANT:
                self.variant = value.decode("latin-1")
            elif name == _REQUEST_ID:
                self.request_id = value.decode("latin-1")


class Tracing:
    """One process's tracer: the SDK's provider, exporter and the transports' spans.

    Args:
        settings: Endpoint, headers, service name and sampling.
        role: The process's kind (its default service name, and what its spans are about:
            a model server's name models, a gateway's deployments).
    """

    def __init__(self, settings: TracingSettings, role: Role) -> None:
        self.role = role
        resource = Resource.create(
            {
                "service.name": settings.service_name or f"modelport-{role}",
                "service.version": __version__,
            }
        )
        sampler = ParentBased(TraceIdRatioBased(settings.sample_ratio))
        self._provider = TracerProvider(sampler=sampler, resource=resource, shutdown_on_exit=False)
        headers = {name: value.get_secret_value() for name, value in settings.headers.items()}
        exporter = OTLPSpanExporter(endpoint=settings.endpoint, headers=headers, timeout=5.0)
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("modelport", __version__)
        self._propagator = TraceContextTextMapPropagator()
        self._about = "modelport.model" if role == "server" else "modelport.deployment"
        self._stopped = False

    def shutdown(self, timeout_s: float) -> None:
        """Export what is queued and stop, waiting at most ``timeout_s`` seconds (once)."""
        if self._stopped:
            return
        self._stopped = True
        # The SDK's own shutdown waits up to 30 s for an unreachable collector; a stopping
        # server does not, and what is not exported by then is lost with the process.
        worker = threading.Thread(target=self._provider.shutdown, daemon=True)
        worker.start()
        worker.join(timeout_s)

    # -- REST ----------------------------------------------------------------------------------

    def asgi(self, app: ASGIApp) -> ASGIApp:
        """``app`` with a server span around every HTTP request but probes and scrapes.

        When the server has shut ``app`` down (the lifespan's shutdown), what is queued is
        exported before uvicorn is told: a forked worker ends as soon as uvicorn returns.
        """

        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] not in _UNTRACED:
                await self._serve_http(app, scope, receive, send)
            elif scope["type"] == "lifespan":
                await app(scope, receive, self._flushing(send))
            else:
                await app(scope, receive, send)

        return traced

    def _flushing(self, send: Send) -> Send:
        async def flushing(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await asyncio.to_thread(self.shutdown, _FLUSH_S)
            await send(message)

        return flushing

    async def _serve_http(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        parent = self._propagator.extract(scope["headers"], getter=_HEADERS)
        method = scope["method"]
        span = self._tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )
        # The app fills the record in (route, model, version) as it does for the access log.
        record = scope.get("modelport.access")
        if record is None:
            record = scope["modelport.access"] = AccessRecord()
        answer = _Answer()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.read(message)
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await app(scope, receive, sending)
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            if span.is_recording():
                self._describe(span, method, scope["path"], record, answer)
            span.end()

    def _describe(
        self, span: Span, method: str, path: str, record: AccessRecord, answer: _Answer
    ) -> None:
        attributes: dict[str, str | int] = {}
        if record.route is not None:
            span.update_name(f"{method} {record.route}")
            attributes["http.route"] = record.route
        if answer.status:
            attributes["http.response.status_code"] = answer.status
            if answer.status >= 500:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {answer.status}"))
        if record.model is not None and path.startswith("/v2/models/"):
            attributes[self._about] = record.model
        if record.version is not None:
            attributes["modelport.model_version"] = record.version
        if answer.variant is not None:
            attributes["modelport.variant"] = answer.variant
        request_id = answer.request_id or record.request_id
        if request_id is not None:
            attributes["modelport.request_id"] = request_id
        span.set_attributes(attributes)

    # -- gRPC ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def grpc_span(self, method: str, metadata: Iterable[tuple[str, Any]] | None) -> Iterator[Span]:
        """A server span for one gRPC call, the current span while the block runs.

        Args:
            method: The method's name (``ModelInfer``).
            metadata: The call's invocation metadata; its ``traceparent`` and ``tracestate``
                are the caller's trace.
        """
        carrier = {key: value for key, value in metadata or () if key in _PROPAGATED}
        parent = self._propagator.extract(carrier)
        span = self._tracer.start_span(
            f"{_GRPC_SERVICE}/{method}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": _GRPC_SERVICE, "rpc.method": method},
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            yield span
        except BaseException as exc:
            code = status_name(exc)
            span.set_attribute("rpc.grpc.status_code", grpc.StatusCode[code].value[0])
            if code in _GRPC_SERVER_FAULTS:
                _failed(span, exc)
            raise
        else:
            span.set_attribute("rpc.grpc.status_code", 0)
        finally:
            otel_context.detach(token)
            span.end()

    # -- below the request span ----------------------------------------------------------------

    async def forward(
        self,
        send: Callable[[dict[str, str]], Awaitable[R]],
        headers: dict[str, str],
        model: str,
        version: str,
    ) -> R:
        """Send a request to a replica inside a ``forward`` span whose context goes with it.

        Args:
            send: Sends the request with the headers it is given; returns the replica's answer.
            headers: The request's headers; ``traceparent`` (and ``tracestate``) are added.
            model: The model the replica is asked for.
            version: Its version.
        """
        span = self._tracer.start_span(
            "forward",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "modelport.model": model,
                "modelport.model_version": version,
            },
        )
        self._propagator.inject(headers, context=trace.set_span_in_context(span))
        try:
            reply = await send(headers)
        except BaseException as exc:
            _failed(span, exc)
            span.end()
            raise
        span.set_attributes(
            {"http.response.status_code": reply.status, "modelport.replica": reply.replica}
        )
        if reply.status >= 400:
            span.set_status(Status(StatusCode.ERROR, f"HTTP {reply.status}"))
        span.end()
        return reply

    def recording(self) -> bool:
        """Whether the current span is recorded (sampled): its stages are worth timing."""
        return trace.get_current_span().is_recording()

    def stages(
        self, parse: tuple[float, float], marks: RunMarks, model: str, version: str | None
    ) -> None:
        """Record ``parse``, ``queue`` and ``inference`` under the current span.

        Args:
            parse: When reading and decoding the request started and ended (monotonic).
            marks: When the request was queued and its model call ran; stages it did not
                reach (``0.0``) are left out.
            model: The model that ran.
            version: Its version, when known.
        """
        if not trace.get_current_span().is_recording():
            return  # not sampled: nothing would be exported
        offset = time.time_ns() - time.monotonic_ns()
        parent = otel_context.get_current()
        start = self._tracer.start_span
        if parse[1]:
            span = start("parse", context=parent, start_time=_ns(parse[0], offset))
            span.end(end_time=_ns(parse[1], offset))
        if not marks.started:
            return
        span = start("queue", context=parent, start_time=_ns(marks.queued, offset))
        span.end(end_time=_ns(marks.started, offset))
        about: dict[str, str] = {"modelport.model": model}
        if version is not None:
            about["modelport.model_version"] = version
        span = start(
            "inference", context=parent, start_time=_ns(marks.started, offset), attributes=about
        )
        span.end(end_time=_ns(marks.finished or marks.started, offset))


def _ns(monotonic_s: float, offset_ns: int) -> int:
    """A monotonic reading in seconds as wall-clock nanoseconds since the epoch."""
    return int(monotonic_s * 1e9) + offset_ns


def _failed(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
