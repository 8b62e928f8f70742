"""Http1Client against real servers on 127.0.0.1: keep-alive, timeouts, broken answers, limits.

Most servers are raw asyncio servers whose answers each test writes byte for byte (and which
count the connections they accept); a few are aiohttp.web servers, for chunked and large
answers as a real server writes them. A port that refuses connections is a bound socket that
does not listen. Nothing on the network is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest
from aiohttp import web

from modelport.server.gateway.http1 import ConnectFailed, ConnectionClosed, Http1Client

T = TypeVar("T")
Respond = Callable[[bytes, bytes, asyncio.StreamWriter], Awaitable[bool]]
"""Answers one request (its head and body) on the writer; returns whether to keep reading."""


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def answer(body: bytes = b"ok", *, status: bytes = b"200 OK", headers: bytes = b"") -> bytes:
    """A whole answer with a Content-Length."""
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), headers, body)


def target(head: bytes) -> bytes:
    return head.split(b" ", 2)[1]


async def echo_target(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(answer(target(head)))
    return True


class Server:
    """A raw HTTP/1.1 server: reads each request whole and lets ``respond`` answer it.

    ``connections`` counts the connections accepted, ``open`` those open now and ``most_open``
    the most open at once; ``requests`` holds each request's head and body.
    """

    def __init__(self, respond: Respond = echo_target) -> None:
        self.respond = respond
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str = "127.0.0.1") -> Server:
        self._server = await asyncio.start_server(self._handle, host, 0)
        return self

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Let the handlers see the end rather than have asyncio.run cancel them: Python 3.11's
        # start_server logs a cancelled handler as an error.
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                if not await self.respond(head, body, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


@contextlib.asynccontextmanager
async def serving(respond: Respond = echo_target) -> AsyncIterator[Server]:
    server = await Server(respond).start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def client_of(port: int, **kwargs: Any) -> AsyncIterator[Http1Client]:
    client = Http1Client("127.0.0.1", port, **kwargs)
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def web_server(app: web.Application) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        await runner.cleanup()


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.01)


async def get(client: Http1Client, path: str = "/", timeout_s: float = 2.0) -> Any:
    return await client.request("GET", path, b"", b"", timeout_s)


# -- keep-alive ----------------------------------------------------------------------------------


def test_sequential_requests_reuse_one_connection() -> None:
    async def scenario() -> None:
        async with serving() as server, client_of(server.port) as client:
            for i in range(20):
                response = await client.request("POST", f"/r{i}", b"x-n: 1\r\n", b"{}", 2.0)
                assert (response.status, response.body) == (200, f"/r{i}".encode())
            assert (server.connections, client.connections) == (1, 1)
            head, body = server.requests[0]
            assert head.startswith(b"POST /r0 HTTP/1.1\r\n")
            assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in head
            assert b"x-n: 1\r\n" in head and b"Content-Length: 2\r\n" in head and body == b"{}"

    run(scenario())


def test_a_connection_close_answer_is_not_reused() -> None:
    async def closing(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(target(head), headers=b"Connection: close\r\n"))
        return False

    async def scenario() -> None:
        async with serving(closing) as server, client_of(server.port) as client:
            for path in ("/a", "/b", "/c"):
                assert (await get(client, path)).body == path.encode()
                assert client.connections == 0
            assert server.connections == 3

    run(scenario())


def test_an_http_1_0_answer_is_not_reused() -> None:
    async def old(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True  # the server would keep it: the client must not

    async def scenario() -> None:
        async with serving(old) as server, client_of(server.port) as client:
            for _ in range(2):
                assert (await get(client)).body == b"ok"
            assert server.connections == 2

    run(scenario())


def test_an_idle_connection_older_than_the_idle_timeout_is_not_reused() -> None:
    async def scenario() -> None:
        async with serving() as server, client_of(server.port, idle_timeout_s=0.15) as client:
            await get(client)
            await get(client)  # at once: reused
            assert server.connections == 1
            await asyncio.sleep(0.25)
            await get(client)
            assert server.connections == 2
            await until(lambda: server.open == 1)  # the stale one was closed
            assert client.connections == 1

    run(scenario())


def test_an_idle_connection_the_server_closed_is_skipped_even_the_newest() -> None:
    async def respond(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        path = target(head)
        if path == b"/close-after":
            await asyncio.sleep(0.05)  # answered last: the newest idle connection
            writer.write(answer(path))
            await writer.drain()
            return False  # then closed, with no Connection: close
        writer.write(answer(path))
        return True

    async def scenario() -> None:
        async with serving(respond) as server, client_of(server.port) as client:
            await asyncio.gather(get(client, "/a"), get(client, "/close-after"))
            assert server.connections == 2
            await until(lambda: client.connections == 1)
            assert (await get(client, "/b")).body == b"/b"
            assert server.connections == 2  # the one still open was used, no new one

    run(scenario())


# -- connection failures -------------------------------------------------------------------------


def test_a_refused_port_is_connect_failed() -> None:
    async def scenario() -> None:
        with socket.socket() as bound:  # bound, not listening: connections are refused
            bound.bind(("127.0.0.1", 0))
            async with client_of(bound.getsockname()[1]) as client:
                with pytest.raises(ConnectFailed, match="connection refused"):
                    await get(client)
                assert client.connections == 0

    run(scenario())


def test_a_server_that_closes_mid_answer_is_connection_closed() -> None:
    async def cut(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        return False

    async def scenario() -> None:
        async with serving(cut) as server, client_of(server.port) as client:
            with pytest.raises(ConnectionClosed, match="closed the connection before answering"):
                await client.request("POST", "/", b"", b"{}", 2.0)
            assert client.connections == 0
            assert len(server.requests) == 1

    run(scenario())


def test_a_server_that_never_answers_times_out_and_its_late_answer_is_never_read() -> None:
    async def respond(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if target(head) == b"/slow":
            await asyncio.sleep(0.4)
            writer.write(answer(b"late"))
            return True
        writer.write(answer(target(head)))
        return True

    async def scenario() -> None:
        async with serving(respond) as server, client_of(server.port) as client:
            with pytest.raises(TimeoutError):
                await get(client, "/slow", timeout_s=0.2)
            assert client.connections == 0  # closed by the client
            assert (await get(client, "/next")).body == b"/next"
            await asyncio.sleep(0.3)  # the late answer is written now, to a closed connection
            assert (await get(client, "/last")).body == b"/last"
            assert server.connections == 2

    run(scenario())


def test_a_garbage_answer_is_connection_closed() -> None:
    async def garbage(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        return True

    async def scenario() -> None:
        async with serving(garbage) as server, client_of(server.port) as client:
            with pytest.raises(ConnectionClosed, match="not HTTP"):
                await get(client)
            assert client.connections == 0
            await until(lambda: server.open == 0)

    run(scenario())


def test_bytes_behind_a_whole_answer_make_the_connection_unusable() -> None:
    async def respond(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if target(head) == b"/first":  # a whole answer, then the start of one nobody asked for
            writer.write(answer(b"first") + b"HTTP/1.1 200 OK\r\nX-Stale: 1\r\n")
        else:
            writer.write(answer(target(head)))
        return True

    async def scenario() -> None:
        async with serving(respond) as server, client_of(server.port) as client:
            assert (await get(client, "/first")).body == b"first"
            second = await get(client, "/second")
            assert (second.status, second.body) == (200, b"/second")
            assert "x-stale" not in second.headers
            assert server.connections == 2

    run(scenario())


# -- answers -------------------------------------------------------------------------------------


def test_a_chunked_answer_arriving_in_pieces_is_reassembled() -> None:
    async def chunked(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        pieces = [
            b"HTTP/1.1 200 OK\r\nTransfer-",
            b"Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n5\r\nhel",
            b"lo\r\n6\r\n world\r\n",
            b"0\r\n\r\n",
        ]
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        return True

    async def scenario() -> None:
        async with serving(chunked) as server, client_of(server.port) as client:
            for _ in range(2):
                response = await get(client)
                assert (response.status, response.body) == (200, b"hello world")
                assert response.headers["transfer-encoding"] == "chunked"
                assert response.headers["content-type"] == "text/plain"
            assert server.connections == 1

    run(scenario())


def test_a_chunked_answer_from_aiohttp_is_reassembled() -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(50):
            await response.write(b"chunk %d;" % i)
        await response.write_eof()
        return response

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/stream", stream)
        async with web_server(app) as port, client_of(port) as client:
            response = await get(client, "/stream")
            assert response.body == b"".join(b"chunk %d;" % i for i in range(50))

    run(scenario())


def test_a_large_body_arrives_intact_both_ways() -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    async def scenario() -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/echo", echo)
        async with web_server(app) as port, client_of(port) as client:
            for size in (64 * 1024 - 1, 64 * 1024, 3 * 1024 * 1024 + 7):
                body = os.urandom(size)
                response = await client.request(
                    "POST", "/echo", b"content-type: application/octet-stream\r\n", body, 5.0
                )
                assert response.status == 200
                assert response.body == body
            assert client.connections == 1

    run(scenario())


def test_a_get_with_an_empty_body_works() -> None:
    async def hello(request: web.Request) -> web.Response:
        assert await request.read() == b""
        return web.json_response({"method": request.method, "q": request.query["q"]})

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/hello", hello)
        async with web_server(app) as port, client_of(port) as client:
            response = await get(client, "/hello?q=a%20b")
            assert (response.status, response.body) == (200, b'{"method": "GET", "q": "a b"}')
            assert response.headers["content-type"] == "application/json; charset=utf-8"

    run(scenario())


def test_repeated_answer_headers_keep_the_last_value_and_names_are_lower_case() -> None:
    async def repeated(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(headers=b"X-Thing: 1\r\nx-thing: 2\r\nX-THING: 3\r\nX-Other: a\r\n"))
        return True

    async def scenario() -> None:
        async with serving(repeated) as server, client_of(server.port) as client:
            response = await get(client)
            assert response.headers == {"content-length": "2", "x-thing": "3", "x-other": "a"}

    run(scenario())


def test_interim_answers_are_skipped() -> None:
    async def interim(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
        await writer.drain()
        writer.write(answer(b"final", status=b"201 Created"))
        return True

    async def scenario() -> None:
        async with serving(interim) as server, client_of(server.port) as client:
            for _ in range(2):
                response = await get(client)
                assert (response.status, response.body) == (201, b"final")
                assert "link" not in response.headers
            assert server.connections == 1

    run(scenario())


def test_an_answer_delimited_by_the_end_of_the_connection() -> None:
    async def until_eof(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the ")
        await writer.drain()
        writer.write(b"end")
        return False

    async def scenario() -> None:
        async with serving(until_eof) as server, client_of(server.port) as client:
            for _ in range(2):
                assert (await get(client)).body == b"to the end"
            assert (server.connections, client.connections) == (2, 0)

    run(scenario())


# -- limits and closing --------------------------------------------------------------------------


def held(gate: asyncio.Event) -> Respond:
    """Answers each request once ``gate`` is set."""

    async def respond(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        await gate.wait()
        writer.write(answer(target(head)))
        return True

    return respond


def test_max_connections_caps_concurrent_connections() -> None:
    async def slow(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.02)
        writer.write(answer(target(head)))
        return True

    async def scenario() -> None:
        async with serving(slow) as server, client_of(server.port, max_connections=3) as client:
            bodies = await asyncio.gather(*(get(client, f"/{i}") for i in range(30)))
            assert [b.body for b in bodies] == [f"/{i}".encode() for i in range(30)]
            assert (server.connections, server.most_open, client.connections) == (3, 3, 3)

    run(scenario())


def test_the_timeout_also_bounds_the_wait_for_a_free_connection() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        async with (
            serving(held(gate)) as server,
            client_of(server.port, max_connections=1) as client,
        ):
            first = asyncio.create_task(get(client, "/first"))
            await until(lambda: len(server.requests) == 1)
            with pytest.raises(TimeoutError):
                await get(client, "/waiting", timeout_s=0.1)
            gate.set()
            assert (await first).body == b"/first"
            assert (len(server.requests), server.connections) == (1, 1)

    run(scenario())


def test_close_then_request_is_connect_failed() -> None:
    async def scenario() -> None:
        async with serving() as server:
            client = Http1Client("127.0.0.1", server.port)
            await get(client)
            await client.close()
            assert client.connections == 0
            with pytest.raises(ConnectFailed, match="closed"):
                await get(client)
            await until(lambda: server.open == 0)
            assert server.connections == 1

    run(scenario())


def test_close_fails_requests_in_flight_and_waiting_without_opening_more() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        async with serving(held(gate)) as server:
            client = Http1Client("127.0.0.1", server.port, max_connections=1)
            in_flight = asyncio.create_task(get(client, "/a"))
            waiting = asyncio.create_task(get(client, "/b"))
            await until(lambda: len(server.requests) == 1)
            await client.close()
            with pytest.raises(ConnectionClosed):
                await in_flight
            with pytest.raises(ConnectFailed, match="closed"):
                await waiting
            gate.set()
            await until(lambda: server.open == 0)
            assert (server.connections, client.connections) == (1, 0)

    run(scenario())


def test_ipv6_literal_and_host_header() -> None:
    async def scenario() -> None:
        seen: list[bytes] = []

        async def respond(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
            seen.append(head)
            writer.write(answer())
            return True

        try:
            raw = await Server(respond).start("::1")
        except OSError:
            pytest.skip("no IPv6 loopback")
        try:
            for host in ("::1", "[::1]"):
                client = Http1Client(host, raw.port)
                try:
                    assert (await get(client)).body == b"ok"
                finally:
                    await client.close()
            assert all(f"Host: [::1]:{raw.port}\r\n".encode() in head for head in seen)
            named = Http1Client("::1", raw.port, host_header="replica.local")
            try:
                await get(named)
            finally:
                await named.close()
            assert b"Host: replica.local\r\n" in seen[-1]
        finally:
            await raw.stop()

    run(scenario())
