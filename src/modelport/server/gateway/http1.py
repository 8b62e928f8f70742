"""A lean keep-alive HTTP/1.1 client for the gateway's hop to a model-server replica.

The gateway's per-request cost is taken from the replicas' CPU on a shared box, so the upstream
client was chosen by measurement (bench/notes/2026-12-07-issue15.md): aiohttp's client took 40%
of the gateway's samples under load (its request and response objects, header multidicts,
timers and stream readers), httpx's ``AsyncClient`` collapses under concurrency. This client
does only what the hop needs, on an ``asyncio.Protocol`` with httptools' C parser (uvicorn's):
one write per request (request line, headers and body), the answer parsed as it arrives, the
connection kept for the next request. Bodies are bytes in and bytes out, never decoded.

What the caller is told, for its retry decision:

- :class:`ConnectFailed`: no connection could be opened (refused, unreachable, or not accepted
  within the connect timeout), or the client is closed. Nothing was sent; trying another server
  is safe.
- :class:`ConnectionClosed`: the connection closed (or sent something that is not HTTP) before
  a whole answer came. The request may have been processed.
- ``TimeoutError``: no whole answer within the request's timeout, which also bounds the wait for
  a free connection and the connect (a connection that was used is closed, so that a late answer
  is never read as the next request's).

Idle connections are dropped after ``idle_timeout_s`` (below the model server's keep-alive of
5 s, so the client lets go first: a request written onto a connection the server is closing
fails after sending, and inference is not retried), and when the server closes them.

Interim (1xx) answers are skipped; an answer delimited by the end of the connection (neither
``Content-Length`` nor chunked) ends when the server closes it cleanly. Requests are never
``HEAD`` (whose answer has no body whatever its headers say): the parser is not told the method.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections import deque
from dataclasses import dataclass
from typing import Final

import httptools

__all__ = ["ConnectFailed", "ConnectionClosed", "Http1Client", "Response"]

_SPLIT_WRITE: Final = 64 * 1024
"""Bodies at least this large are written after the head instead of copied behind it."""


class ConnectFailed(Exception):
    """No connection could be opened: nothing was sent."""


class ConnectionClosed(Exception):
    """The connection ended before a whole answer came: the request may have been processed."""


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: status, headers (names in lower case; a repeated one keeps its last value)."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.until_eof = False  # the answer's body runs to the end of the connection
        self.open = False
        self.idle_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.open = True

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            # HttpParserCallbackError (a subclass) too: an answer nobody asked for.
            self._fail(ConnectionClosed(f"the server sent something that is not HTTP: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        # Still open: the server closed it (close() below marks it first).
        closed_by_server, self.open = self.open, False
        if exc is None and closed_by_server and self.until_eof and self.waiter is not None:
            self._complete()  # httptools cannot be told of the end; the answer is whole
            return
        why = f": {exc}" if exc is not None else ""
        self._fail(ConnectionClosed(f"the server closed the connection before answering{why}"))

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.waiter is None:
            # Bytes behind a whole answer, or on an idle connection: the connection is unusable.
            raise ConnectionError("an answer with no request")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        headers, status = self.headers, self.parser.get_status_code()
        self.until_eof = (
            "content-length" not in headers
            and "transfer-encoding" not in headers
            and status >= 200
            and status not in (204, 304)
        )

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:  # interim: the answer is still to come
            self.headers, self.chunks = {}, []
            return
        if not self.parser.should_keep_alive():
            self.close()
        self._complete()

    # -- use -----------------------------------------------------------------------------------

    async def exchange(self, head: bytes, body: bytes) -> Response:
        transport = self.transport
        if transport is None or not self.open:
            raise ConnectionClosed("the connection is closed")
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        if len(body) < _SPLIT_WRITE:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        return await waiter

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()

    def _complete(self) -> None:
        waiter = self.waiter
        response = Response(self.parser.get_status_code(), self.headers, b"".join(self.chunks))
        self.headers, self.chunks, self.waiter, self.until_eof = {}, [], None, False
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class Http1Client:
    """Keep-alive HTTP/1.1 connections to one server.

    Args:
        host: The server's address or name.
        port: Its port.
        max_connections: Connections open at most; more requests wait for one.
        connect_timeout_s: Seconds to open a connection.
        idle_timeout_s: Seconds an idle connection is kept.
        ssl: TLS context for ``https``; ``None`` for plain HTTP.
        host_header: The ``Host`` header (``host:port`` by default).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int = 256,
        connect_timeout_s: float = 1.0,
        idle_timeout_s: float = 4.0,
        ssl: ssl_module.SSLContext | None = None,
        host_header: str | None = None,
    ) -> None:
        self._host = host.strip("[]")
        self._port = port
        self._ssl = ssl
        self._connect_timeout = connect_timeout_s
        self._idle_timeout = idle_timeout_s
        shown = f"[{self._host}]" if ":" in self._host else self._host
        self._host_line = f"Host: {host_header or f'{shown}:{port}'}\r\n".encode("latin-1")
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._open: set[_Connection] = set()
        self._closed = False

    @property
    def connections(self) -> int:
        """Connections open now (idle and busy)."""
        return sum(1 for connection in self._open if connection.open)

    async def request(
        self, method: str, target: str, headers: bytes, body: bytes, timeout_s: float
    ) -> Response:
        r"""Send one request and return the whole answer.

        Args:
            method: ``GET``, ``POST``...
            target: Path and query, already percent-encoded.
            headers: Further header lines, each ending ``\r\n`` (no ``Host``, ``Content-Length``
                or ``Connection``: this client writes those).
            body: The body (empty for none).
            timeout_s: Seconds for the whole answer, from the call: waiting for a free
                connection and connecting count too.

        Raises:
            ConnectFailed: No connection could be opened (or the client is closed); nothing
                was sent.
            ConnectionClosed: The connection ended before a whole answer came.
            TimeoutError: No whole answer within ``timeout_s``.
        """
        if self._closed:
            raise ConnectFailed("the client is closed")
        head = b"%s %s HTTP/1.1\r\n%sContent-Length: %d\r\n%s\r\n" % (
            method.encode("ascii"),
            target.encode("latin-1"),
            self._host_line,
            len(body),
            headers,
        )
        async with asyncio.timeout(timeout_s), self._slots:
            if self._closed:  # closed while this request waited for a connection
                raise ConnectFailed("the client is closed")
            connection = self._take() or await self._connect()
            try:
                response = await connection.exchange(head, body)
            except BaseException:
                self._drop(connection)  # a late answer must not be read as the next request's
                raise
            if connection.open:
                connection.idle_since = asyncio.get_running_loop().time()
                self._idle.append(connection)
            else:
                self._open.discard(connection)
            return response

    async def close(self) -> None:
        """Close every connection; later requests fail with :class:`ConnectFailed`."""
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    def _take(self) -> _Connection | None:
        """The most recently used idle connection still worth using, else ``None``."""
        idle = self._idle
        if not idle:
            return None
        oldest_allowed = asyncio.get_running_loop().time() - self._idle_timeout
        while idle and idle[0].idle_since < oldest_allowed:  # oldest first: too old
            self._drop(idle.popleft())
        while idle:  # newest first: any the server closed meanwhile
            connection = idle.pop()
            if connection.open:
                return connection
            self._drop(connection)
        return None

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise ConnectFailed(
                f"no connection accepted within {self._connect_timeout:g} s"
            ) from None
        except ConnectionRefusedError:
            raise ConnectFailed("connection refused") from None
        except OSError as exc:
            raise ConnectFailed(exc.strerror or str(exc)) from None
        if self._closed:  # closed while connecting
            connection.close()
            raise ConnectFailed("the client is closed")
        self._open.add(connection)
        return connection
