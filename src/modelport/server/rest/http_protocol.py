"""The REST port's HTTP/1.1 protocol: uvicorn's httptools protocol with two additions.

**One send per response.** uvicorn writes a response's status line and headers when the app
sends ``http.response.start`` and the body when it sends ``http.response.body``: two ``send``
calls, two TCP segments, and on loopback two wake-ups of the client, per response. Measured
with wrk on the tiny model (one worker, 16 connections), the kernel's share of the server's CPU
was a quarter, most of it waking the client. The transport here holds a final response head
(``HTTP/1.1 NNN``, not ``1xx``, ending with the blank line) until the next write, which is its
body, and sends both in one call; a head with no body after it (``HEAD``, an early close) goes
out when the response completes or the connection closes. Interim ``100 Continue`` heads and
uvicorn's own one-piece error answers are written at once.

**The verified client certificate.** uvicorn terminates TLS but does not tell the app who the
verified client is. The protocol reads the peer certificate once per connection, right after
the handshake (which already verified it against the configured CA), and puts its subject into
every request's scope as the ASGI TLS extension's ``client_cert_name``.

The benchmark's floor (bench/floor.py) serves through this protocol too, so that it measures the
same HTTP stack.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelport.security.certs import certificate_subject

__all__ = ["HttpProtocol"]

_STATUS_PREFIX = b"HTTP/1.1 "
_HEAD_END = b"\r\n\r\n"


class _OneSendTransport:
    """Wraps a transport: a response head waits for the body and both leave in one write."""

    __slots__ = ("_head", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif _is_final_head(data):
            self._head = bytes(data)
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


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol: one write per response, and the client certificate.

    Under mutual TLS the verified client certificate's subject is in every request's scope.
    """

    _client_cert_name: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the transport; remember the peer certificate's subject (mutual TLS)."""
        super().connection_made(_OneSendTransport(transport))  # type: ignore[arg-type]
        ssl_object: Any = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                self._client_cert_name = certificate_subject(der)

    def on_message_begin(self) -> None:
        """Start a request's scope, with the TLS extension when there is a client certificate."""
        super().on_message_begin()
        if self._client_cert_name is not None:
            self.scope["extensions"] = {"tls": {"client_cert_name": self._client_cert_name}}

    def on_response_complete(self) -> None:
        """Send a head still held (a response without body), then go on as uvicorn does."""
        transport: Any = self.transport
        transport.flush()
        super().on_response_complete()
