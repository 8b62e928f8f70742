"""The REST port's HTTP/1.1 protocol: uvicorn's httptools protocol, extended.

**Limits before anything else reads a request.** A request head (request line and headers)
larger than ``max_head_bytes`` is answered 431; one not complete ``head_timeout_s`` after its
first byte (or after the connection opened) is answered 408, and a body not complete
``body_timeout_s`` after its head, 408 too; the connection is then closed. Without them one
client could make a worker buffer an endless header (llhttp hands a header value over only once
it is complete) or hold connections open forever. The checks cost almost nothing per request:
the size is counted only for a head that spans reads or arrives in a read larger than the
limit, and a timer is armed only when a read leaves a request incomplete. After a refusal the
connection stops reading into the parser, half-closes and discards what still arrives for a
moment, so that the client reads the answer instead of a reset.

**One send per response.** uvicorn writes a response's status line and headers when the app
sends ``http.response.start`` and the body when it sends ``http.response.body``: two ``send``
calls, two TCP segments, and on loopback two wake-ups of the client, per response. The
transport here holds a final response head (``HTTP/1.1 NNN``, not ``1xx``, ending with the
blank line) until the next write, which is its body, and sends both in one call; a head with no
body after it (``HEAD``, an early close) goes out when the response completes or the connection
closes. Interim ``100 Continue`` heads and one-piece error answers are written at once.

**The verified client certificate.** uvicorn terminates TLS but does not tell the app who the
verified client is. The protocol reads the peer certificate once per connection, right after
the handshake (which already verified it against the configured CA), and puts its subject into
every request's scope as the ASGI TLS extension's ``client_cert_name``.

**The access log.** When a response completes, the protocol hands the request's method, path,
status, duration and the app's ``scope["modelport.access"]`` to
:class:`modelport.server.logs.AccessLog`.

**uvicorn's internals.** The class extends uvicorn's ``HttpToolsProtocol``, which is not a
public API. :data:`UVICORN_PROBLEM` says, once at import, whether the installed uvicorn is a
version this was written against and has the methods it extends; if not,
:func:`http_protocol` logs a warning and returns uvicorn's stock ``"httptools"`` protocol, which
serves without the additions above.

The benchmark's floor (bench/floor.py) serves through this protocol too, so that it measures the
same HTTP stack.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from time import perf_counter
from typing import Any, ClassVar, Final

import httptools
import orjson
import uvicorn

from modelport.security.certs import certificate_subject
from modelport.server.logs import AccessLog, AccessRecord

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornProtocol
except ImportError:  # a uvicorn without the module: UVICORN_PROBLEM says so, nothing uses it
    _UvicornProtocol = asyncio.Protocol  # type: ignore[assignment,misc]

__all__ = ["UVICORN_PROBLEM", "HttpLimits", "HttpProtocol", "http_protocol", "uvicorn_problem"]

log = logging.getLogger("modelport.server")

UVICORN_VERSIONS: Final = ((0, 47), (1, 0))
"""uvicorn versions (from, before) whose ``HttpToolsProtocol`` this class was written against;
0.47 is also the first with ``Config.ssl_context_factory``, which the worker uses."""

_EXTENDED: Final = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
    "send_400_response",
    "handle_websocket_upgrade",
    "_should_upgrade",
    "_unsupported_upgrade_warning",
    "_unset_keepalive_if_required",
)
"""What the subclass overrides or calls of uvicorn's class."""

_STATUS_PREFIX = b"HTTP/1.1 "
_HEAD_END = b"\r\n\r\n"
_LINGER_S: Final = 2.0
"""How long a refused connection keeps discarding what the client still sends."""

_IDLE, _HEAD, _BODY, _DONE = 0, 1, 2, 3
"""Where a connection is in reading its current request (ints: compared on every read)."""


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def uvicorn_problem(version: str, base: type) -> str | None:
    """Say why the protocol cannot extend ``base`` of uvicorn ``version``; ``None`` if it can.

    Args:
        version: uvicorn's version string.
        base: uvicorn's ``HttpToolsProtocol`` (or what stands in for it when it is missing).
    """
    low, high = UVICORN_VERSIONS
    if not low <= _version(version) < high:
        shown = ".".join(map(str, low)), ".".join(map(str, high))
        return f"uvicorn {version} is not between {shown[0]} and {shown[1]} (exclusive)"
    missing = [name for name in _EXTENDED if not callable(getattr(base, name, None))]
    if missing:
        return f"uvicorn {version}'s HttpToolsProtocol lacks {', '.join(missing)}"
    return None


UVICORN_PROBLEM: Final = uvicorn_problem(uvicorn.__version__, _UvicornProtocol)
"""Why the installed uvicorn cannot be extended, or ``None`` (checked once, at import)."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one request may take before the app sees it.

    Attributes:
        max_head_bytes: Largest request line and headers together; larger: 431.
        head_timeout_s: Seconds to send a whole head; slower: 408.
        body_timeout_s: Seconds to send a whole body after the head; slower: 408.
    """

    max_head_bytes: int = 64 * 1024
    head_timeout_s: float = 10.0
    body_timeout_s: float = 60.0


def http_protocol(
    limits: HttpLimits, access_log: AccessLog | None, problem: str | None = UVICORN_PROBLEM
) -> type[asyncio.Protocol] | str:
    """Return what to give ``uvicorn.Config(http=...)``: this protocol with ``limits``.

    Args:
        limits: Head size and read timeouts.
        access_log: Where each completed request is recorded; ``None``: nowhere.
        problem: Why uvicorn's internals cannot be extended (:data:`UVICORN_PROBLEM`).

    Returns:
        A subclass of :class:`HttpProtocol` bound to ``limits`` and ``access_log``, or, when
        ``problem`` is set, ``"httptools"``: uvicorn's stock protocol, after a warning.
    """
    if problem is not None:
        log.warning(
            "%s; serving REST with uvicorn's stock httptools protocol: no request-head size "
            "limit, no head or body timeouts, no access log, and callers identified by a "
            "client certificate are refused",
            problem,
        )
        return "httptools"
    return type("HttpProtocol", (HttpProtocol,), {"limits": limits, "requests_log": access_log})


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a refused request."""


class _OneSendTransport:
    """Wraps a transport: a response head waits for the body and both leave in one write."""

    __slots__ = ("_head", "_transport", "status")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self.status: bytes = b"000"
        """Status of the last final response head, as its three digits."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif _is_final_head(data):
            self._head = bytes(data)
            self.status = self._head[9:12]
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a held head now (its response has no body)."""
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def close(self) -> None:
        if not self._transport.is_closing():
            self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _is_final_head(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` is exactly a non-interim response's status line and headers."""
    return data[:9] == _STATUS_PREFIX and data[9:10] != b"1" and data[-4:] == _HEAD_END


class HttpProtocol(_UvicornProtocol):
    """uvicorn's httptools protocol: limits, one write, client certificate, access log.

    Use :func:`http_protocol` to get it bound to settings; the class itself has the default
    limits and no access log.
    """

    limits: ClassVar[HttpLimits] = HttpLimits()
    requests_log: ClassVar[AccessLog | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client_cert_name: str | None = None
        self._phase = _IDLE
        self._timer: asyncio.TimerHandle | None = None
        self._timer_phase = _IDLE
        self._head_spans = False
        """Whether the current head began in an earlier read than the last one."""
        self._head_seen = 0
        """Bytes of the current head received in reads after the one it began in."""
        self._read = 0
        """Size of the read being parsed."""
        self._refusal: tuple[int, str] | None = None
        self._discarding = False
        self._answering: Any = None
        """Scope of the request being answered (for the access log)."""
        self._started = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the transport, remember the peer certificate's subject, start the head clock."""
        super().connection_made(_OneSendTransport(transport))  # type: ignore[arg-type]
        ssl_object: Any = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                self._client_cert_name = certificate_subject(der)
        self._arm(_HEAD, self.limits.head_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock, then go on as uvicorn does."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse ``data`` as uvicorn does, then apply the head size limit and the timeouts."""
        if self._discarding:
            return
        self._unset_keepalive_if_required()
        self._read = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            refusal = self._refusal
            if refusal is not None:
                self._refuse(*refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        self._after_read()

    def _after_read(self) -> None:
        """Apply the head size limit and set the read timeout for the phase a read left."""
        phase = self._phase
        if phase == _DONE:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._timer_phase = _IDLE
        elif phase == _HEAD:
            if self._head_spans:
                self._head_seen += self._read
                if self._head_seen > self.limits.max_head_bytes:
                    self._refuse(431, self._too_large())
                    return
            else:
                self._head_spans = True
            if self._timer_phase != _HEAD:
                self._arm(_HEAD, self.limits.head_timeout_s)
        elif phase == _BODY and self._timer_phase != _BODY:
            self._arm(_BODY, self.limits.body_timeout_s)

    def on_message_begin(self) -> None:
        """Start a request's scope, with the TLS extension when there is a client certificate."""
        super().on_message_begin()
        self._phase = _HEAD
        self._head_spans = False
        self._head_seen = 0
        if self._client_cert_name is not None:
            self.scope["extensions"] = {"tls": {"client_cert_name": self._client_cert_name}}

    def on_headers_complete(self) -> None:
        """Refuse a head over the limit; otherwise start the request as uvicorn does."""
        limit = self.limits.max_head_bytes
        # A head that arrived within one read no larger than the limit cannot exceed it.
        if self._head_spans or self._read > limit:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > limit:
                self._refusal = (431, self._too_large())
                raise _Refused
        self._phase = _BODY
        if self.requests_log is not None:
            # Before uvicorn starts the app with this scope: the app fills the record in. The
            # key is ours, not in the ASGI spec's scope type.
            self.scope["modelport.access"] = AccessRecord()  # type: ignore[typeddict-unknown-key]
        super().on_headers_complete()
        if self.requests_log is not None and not self.pipeline:
            self._answering = self.scope
            self._started = perf_counter()

    def on_message_complete(self) -> None:
        """The request is read: no read timeout applies until the next one begins."""
        self._phase = _DONE
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """Send a head still held, record the request, then go on as uvicorn does."""
        transport: Any = self.transport
        transport.flush()
        access = self.requests_log
        if access is None:
            super().on_response_complete()
            return
        scope = self._answering
        if scope is not None:
            access.http(
                scope["method"],
                scope["raw_path"],
                transport.status,
                perf_counter() - self._started,
                scope.get("modelport.access"),
            )
        pipeline = self.pipeline
        following = pipeline[-1][0].scope if pipeline else None  # the one uvicorn starts next
        super().on_response_complete()
        self._answering = following
        self._started = perf_counter()

    def _too_large(self) -> str:
        return f"the request head is larger than {self.limits.max_head_bytes} bytes"

    def _arm(self, phase: int, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, self._on_timeout)
        self._timer_phase = phase

    def _on_timeout(self) -> None:
        self._timer = None
        self._timer_phase = _IDLE
        transport = self.transport
        if transport.is_closing():
            return
        phase, cycle = self._phase, self.cycle
        if phase == _HEAD and (cycle is None or cycle.response_complete):
            self._refuse(
                408, f"the request head was not sent within {self.limits.head_timeout_s:g} s"
            )
        elif phase == _BODY and not cycle.response_started:
            self._refuse(
                408, f"the request body was not sent within {self.limits.body_timeout_s:g} s"
            )
        else:  # nothing sent yet, or an answer under way: no room for a response
            transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with ``{"error": message}``, stop reading requests, close."""
        transport: Any = self.transport
        self._discarding = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app may be waiting for this request's body: it gets a disconnect.
            cycle.disconnected = True
            cycle.message_event.set()
        body = orjson.dumps({"error": message})
        reason = b"Request Timeout" if status == 408 else b"Request Header Fields Too Large"
        transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        log.debug("refused a request from %s with %d: %s", _peer(self.client), status, message)
        if self.requests_log is not None:
            scope = self.scope if self._phase != _IDLE else None
            method = scope.get("method", "-") if scope is not None else "-"
            path = self.url.partition(b"?")[0] if self._phase != _IDLE else b"-"
            self.requests_log.http(method, path, status, 0.0, None)
        if transport.can_write_eof():
            transport.write_eof()
            self.flow.resume_reading()
            self._timer = self.loop.call_later(_LINGER_S, transport.close)
        else:
            transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown peer"
