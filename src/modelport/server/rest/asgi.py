"""Minimal ASGI plumbing for the REST transport: one request in, one response out.

The protocol's surface is a dozen fixed routes, so the transport speaks ASGI directly instead of
going through a web framework: on this hot path a framework's request objects, regex routing and
middleware stack cost about half the throughput of a bare handler (measured with wrk on uvicorn).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from modelport.core.errors import InvalidInput, PayloadTooLarge
from modelport.security.identity import ANONYMOUS, Identity
from modelport.server.logs import AccessRecord
from modelport.service.access import Caller, request_id

__all__ = ["Receive", "Reply", "Request", "Scope", "Send", "read_body"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = b"application/json"


@dataclass(slots=True)
class Request:
    """The parts of an HTTP request the routes use.

    ``raw_path`` is the path as sent (still percent-encoded), which routing splits on ``/``;
    ``path`` is its decoded form, for messages. ``access`` is the access log's record of the
    call (``scope["modelport.access"]``, present when the access log is on), which the app
    fills in.
    """

    method: str
    path: str
    raw_path: str
    content_length: int | None
    header_length: str | None
    receive: Receive
    caller: Caller
    access: AccessRecord | None = None
    identity: Identity = ANONYMOUS
    headers: list[tuple[bytes, bytes]] | None = None
    query_string: bytes = b""

    def header(self, name: bytes) -> str | None:
        """The value of header ``name`` (lower-case bytes) when it was sent once, else ``None``.

        Raises:
            InvalidInput: It was sent more than once (never "the last one wins").
        """
        found = None
        for key, value in self.headers or ():
            if key == name:
                if found is not None:
                    raise InvalidInput(f"{name.decode()} was sent more than once; send one")
                found = value.decode("latin-1")
        return found


@dataclass(slots=True)
class Reply:
    """An HTTP response: status, body and extra headers."""

    status: int
    body: bytes
    content_type: bytes = _JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Reply:
        """Return ``payload`` serialised with orjson."""
        return cls(status, orjson.dumps(payload))

    def messages(self) -> tuple[Message, Message]:
        """Return the ASGI ``http.response.start`` and ``http.response.body`` messages.

        A plain method, not a coroutine that sends them: the app awaits ``send`` itself, one
        coroutine fewer on every response.
        """
        body = self.body
        headers = [(b"content-type", self.content_type), (b"content-length", b"%d" % len(body))]
        if self.headers:
            headers += self.headers
        start = {"type": "http.response.start", "status": self.status, "headers": headers}
        return start, {"type": "http.response.body", "body": body}


def parse_request(scope: Scope, receive: Receive) -> Request:
    """Pick the method, path, length headers and credentials out of an ASGI scope.

    The client certificate's subject comes from the ASGI TLS extension
    (``scope["extensions"]["tls"]["client_cert_name"]``), which our uvicorn protocol fills in
    after the handshake verified the certificate.

    Raises:
        InvalidInput: ``Content-Length`` is not a non-negative integer, ``Authorization`` is
            sent more than once (never "the last one wins"), or ``x-request-id`` is not a
            valid request id.
    """
    content_length: int | None = None
    header_length: str | None = None
    authorization: str | None = None
    rid: str | None = None
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                content_length = int(value)
            except ValueError:
                content_length = -1
            if content_length < 0:
                raise InvalidInput(f"Content-Length {value.decode('latin-1')!r} is not a size")
        elif key == b"authorization":
            if authorization is not None:
                raise InvalidInput("Authorization was sent more than once; send one credential")
            authorization = value.decode("latin-1")
        elif key == b"inference-header-content-length":
            header_length = value.decode("latin-1")
        elif key == b"x-request-id":
            if rid is not None:
                raise InvalidInput("x-request-id was sent more than once; send one")
            rid = request_id(value.decode("latin-1"))
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if extensions else None
    peer = tls.get("client_cert_name") if tls else None
    client = scope.get("client")
    caller = Caller(authorization, peer, rid, client[0] if client else None)
    path: str = scope["path"]
    raw = scope.get("raw_path")
    raw_path = raw.decode("latin-1") if raw else path
    return Request(
        scope["method"],
        path,
        raw_path,
        content_length,
        header_length,
        receive,
        caller,
        scope.get("modelport.access"),
        headers=scope["headers"],
        query_string=scope.get("query_string", b""),
    )


async def read_body(request: Request, limit: int, hint: str = "") -> bytes:
    """Read the whole body, refusing more than ``limit`` bytes without reading them all.

    Args:
        request: The request.
        limit: Most bytes accepted.
        hint: Appended to the refusal (what to do instead).

    Raises:
        PayloadTooLarge: The declared or actual size is over ``limit``.
    """
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"request body of {request.content_length} bytes exceeds the limit of {limit} "
            f"bytes{hint}"
        )
    message = await request.receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = bytearray(body)
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise InvalidInput("the client closed the connection before sending the whole body")
        chunks += message.get("body", b"")
        if len(chunks) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes{hint}")
        if not message.get("more_body", False):
            return bytes(chunks)
