"""ReplicaPool against real HTTP servers on 127.0.0.1: balancing, retries, circuit breaker,
health checks, DNS, keep-alive and pass-through.

Each replica is a small aiohttp.web server started in the test's event loop on an ephemeral
port (one that hangs up is a raw asyncio server); a stopped replica's port refuses connections.
Nothing on the network is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from random import Random
from typing import Any, TypeVar

import pytest
from aiohttp import web
from multidict import CIMultiDict

from modelport.core.errors import ConfigError, DeadlineExceeded, ServiceUnavailable
from modelport.core.settings import GatewaySettings
from modelport.security.certs import make_dev_certs
from modelport.server.gateway.upstream import ReplicaPool, ReplicaState
from modelport.testing.clock import FakeClock

T = TypeVar("T")
INFER = "/v2/models/m/versions/1/infer"
BODY = b'{"inputs": []}'
JSON = {"content-type": "application/json"}


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def settings(**changes: Any) -> GatewaySettings:
    """Fast timeouts; health checks only in start() unless a test asks for more."""
    fields: dict[str, Any] = {
        "health_interval_s": 300,
        "health_timeout_s": 0.5,
        "connect_timeout_s": 0.5,
        "request_timeout_s": 5,
        "breaker_failures": 3,
        "breaker_open_s": 5,
    }
    return GatewaySettings(**(fields | changes))


def first() -> float:
    """The pool's random, fixed: the first eligible replica wins every tie."""
    return 0.0


class Replica:
    """A model server as the pool sees it: /v2/health/ready and an infer route.

    The routes are served at the root and under ``/base`` too. ``ready_status`` and ``status``
    choose the answers; while ``gate`` is set, inference requests wait for it. ``infers``
    records the headers of each inference request, ``peers`` the client address of each (one
    per connection).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready_status = 200
        self.status = 200
        self.gate: asyncio.Event | None = None
        self.infers: list[CIMultiDict[str]] = []
        self.peers: set[Any] = set()
        self.ready_checks = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(
        self, hosts: tuple[str, ...] = ("127.0.0.1",), tls: ssl.SSLContext | None = None
    ) -> Replica:
        """Listen on ``hosts`` (on the same port as before, once it had one), over TLS with
        ``tls``."""
        app = web.Application()
        for prefix in ("", "/base"):
            app.router.add_get(prefix + "/v2/health/ready", self._ready)
            app.router.add_post(prefix + "/v2/models/{name}/versions/{version}/infer", self._infer)
            app.router.add_get(prefix + "/v2/models/{name}", self._metadata)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        for host in hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, self.port))
            self.port = sock.getsockname()[1]
            await web.SockSite(self._runner, sock, ssl_context=tls).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def seen(self) -> int:
        return len(self.infers)

    async def _ready(self, request: web.Request) -> web.Response:
        self.ready_checks += 1
        return web.json_response({"ready": self.ready_status == 200}, status=self.ready_status)

    async def _infer(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.infers.append(request.headers.copy())
        assert request.transport is not None
        self.peers.add(request.transport.get_extra_info("peername"))
        if self.gate is not None:
            await self.gate.wait()
        if self.status >= 400:
            return web.json_response(
                {"error": f"{self.name} says no"},
                status=self.status,
                headers={"x-replica": self.name},
            )
        return web.Response(
            body=body,
            content_type="application/octet-stream",
            headers={"inference-header-content-length": str(len(body)), "x-replica": self.name},
        )

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response({"name": request.match_info["name"], "replica": self.name})


class Hangup:
    """A replica that passes its health checks but, once it has read an inference request,
    closes the connection without answering."""

    def __init__(self) -> None:
        self.infers = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> Hangup:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if not head.startswith(b"GET /v2/health/ready "):
                    self.infers += 1
                    return
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b'content-length: 15\r\n\r\n{"ready": true}'
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def replicas(count: int) -> AsyncIterator[list[Replica]]:
    started = [await Replica(f"r{i}").start() for i in range(count)]
    try:
        yield started
    finally:
        for replica in started:
            if replica.gate is not None:
                replica.gate.set()
            await replica.stop()


@contextlib.asynccontextmanager
async def pool_of(
    *urls: str, pool: type[ReplicaPool] = ReplicaPool, **kwargs: Any
) -> AsyncIterator[ReplicaPool]:
    kwargs.setdefault("settings", settings())
    started = pool("fraud", urls=urls, **kwargs)
    await started.start()
    try:
        yield started
    finally:
        await started.close()


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.01)


def state(pool: ReplicaPool, url: str) -> ReplicaState:
    return next(s for s in pool.states() if s.url == url)


# -- balancing -----------------------------------------------------------------------------------


def test_power_of_two_choices_spreads_load_evenly() -> None:
    async def scenario() -> None:
        async with (
            replicas(3) as rs,
            pool_of(*(r.url for r in rs), random=Random(7).random) as pool,
        ):
            for _ in range(300):
                assert (await pool.post(INFER, BODY, JSON)).status == 200
            assert all(60 <= r.seen() <= 140 for r in rs), [r.seen() for r in rs]

    run(scenario())


def test_the_less_loaded_of_two_replicas_gets_the_request() -> None:
    async def scenario() -> None:
        async with replicas(2) as (busy, idle):
            dice = iter([0.0, 0.0])  # the first request's pair: busy first, and it wins the tie
            rng = Random(3)
            async with pool_of(busy.url, idle.url, random=lambda: next(dice, rng.random())) as pool:
                busy.gate = asyncio.Event()
                held = asyncio.create_task(pool.post(INFER, BODY, JSON))
                await until(lambda: busy.seen() == 1)
                assert state(pool, busy.url).outstanding == 1
                for _ in range(20):
                    assert (await pool.post(INFER, BODY, JSON)).replica == idle.url
                busy.gate.set()
                assert (await held).replica == busy.url
                assert (busy.seen(), idle.seen()) == (1, 20)
                assert state(pool, busy.url).outstanding == 0

    run(scenario())


# -- retries -------------------------------------------------------------------------------------


def test_a_refused_connection_is_retried_once_on_another_replica() -> None:
    async def scenario() -> None:
        async with replicas(2) as (gone, up), pool_of(gone.url, up.url, random=first) as pool:
            await gone.stop()  # still healthy to the pool: checks only run in start() here
            reply = await pool.post(INFER, BODY, JSON)
            assert (reply.status, reply.replica, reply.body) == (200, up.url, BODY)
            assert up.seen() == 1
            assert state(pool, gone.url).failures == 1

    run(scenario())


def test_a_connect_timeout_is_retried_on_another_replica() -> None:
    async def scenario() -> None:
        quick = settings(connect_timeout_s=0.2)
        async with (
            replicas(2) as (stuck, up),
            pool_of(stuck.url, up.url, random=first, settings=quick) as pool,
        ):
            await stuck.stop()
            # A listener that never accepts, its queue full: new connections hang in the handshake.
            with socket.socket() as listener, contextlib.ExitStack() as queued:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", stuck.port))
                listener.listen(0)
                for _ in range(8):
                    try:
                        queued.enter_context(
                            socket.create_connection(("127.0.0.1", stuck.port), 0.1)
                        )
                    except TimeoutError:
                        break
                else:
                    pytest.skip("this kernel does not stall connections to a full listen queue")
                reply = await pool.post(INFER, BODY, JSON)
            assert (reply.status, reply.replica) == (200, up.url)
            assert state(pool, stuck.url).failures == 1

    run(scenario())


def test_only_one_retry_and_unavailable_when_it_is_refused_too() -> None:
    async def scenario() -> None:
        async with replicas(3) as (a, b, c), pool_of(a.url, b.url, c.url, random=first) as pool:
            await a.stop()
            await b.stop()
            with pytest.raises(ServiceUnavailable) as raised:
                await pool.post(INFER, BODY, JSON)
            message = str(raised.value)
            assert f"replica {a.url} could not be reached: connection refused" in message
            assert f"retried: replica {b.url} could not be reached" in message
            assert c.seen() == 0

    run(scenario())


def test_a_refusal_with_no_other_replica_is_unavailable() -> None:
    async def scenario() -> None:
        async with replicas(1) as (only,), pool_of(only.url) as pool:
            await only.stop()
            with pytest.raises(ServiceUnavailable, match="no other replica of deployment 'fraud'"):
                await pool.post(INFER, BODY, JSON)

    run(scenario())


def test_a_hang_up_after_sending_is_not_retried() -> None:
    async def scenario() -> None:
        hangup = await Hangup().start()
        try:
            async with (
                replicas(1) as (other,),
                pool_of(hangup.url, other.url, random=first) as pool,
            ):
                assert pool.ready() and all(s.healthy for s in pool.states())
                with pytest.raises(ServiceUnavailable) as raised:
                    await pool.post(INFER, BODY, JSON)
                assert str(raised.value) == (
                    f"replica {hangup.url} closed the connection before answering"
                )
                assert (hangup.infers, other.seen()) == (1, 0)
                assert state(pool, hangup.url).failures == 1
        finally:
            await hangup.stop()

    run(scenario())


def test_a_timeout_after_sending_is_not_retried() -> None:
    async def scenario() -> None:
        fast = settings(request_timeout_s=0.3)
        async with replicas(2) as (slow, other):
            slow.gate = asyncio.Event()
            async with pool_of(slow.url, other.url, random=first, settings=fast) as pool:
                with pytest.raises(
                    DeadlineExceeded, match=f"replica {slow.url} did not answer within 0.3 s"
                ):
                    await pool.post(INFER, BODY, JSON)
                assert (slow.seen(), other.seen()) == (1, 0)
                assert state(pool, slow.url) == ReplicaState(slow.url, True, "closed", 0, 1)

    run(scenario())


# -- circuit breaker -----------------------------------------------------------------------------


def test_the_circuit_opens_after_consecutive_failures_and_closes_after_a_good_trial(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        checked = settings(health_interval_s=0.02)
        async with (
            replicas(2) as (bad, good),
            pool_of(bad.url, good.url, random=first, clock=clock, settings=checked) as pool,
        ):
            bad.status = 500
            for failures in (1, 2):
                reply = await pool.post(INFER, BODY, JSON)  # a 5xx answer is passed on...
                assert (reply.status, reply.replica) == (500, bad.url)
                assert state(pool, bad.url) == ReplicaState(bad.url, True, "closed", 0, failures)
            assert (await pool.post(INFER, BODY, JSON)).status == 500  # ...and counted
            assert state(pool, bad.url).circuit == "open"

            for _ in range(5):
                assert (await pool.post(INFER, BODY, JSON)).replica == good.url
            checks = bad.ready_checks
            await until(lambda: bad.ready_checks >= checks + 3)  # passing checks don't close it
            assert state(pool, bad.url).circuit == "open" and pool.ready()

            clock.advance(5)  # half-open: one trial, which fails and opens it again
            assert state(pool, bad.url).circuit == "half-open"
            assert (await pool.post(INFER, BODY, JSON)).replica == bad.url
            assert state(pool, bad.url).circuit == "open"
            assert (await pool.post(INFER, BODY, JSON)).replica == good.url

            clock.advance(5)  # half-open again: a trial that succeeds
            bad.status, bad.gate = 200, asyncio.Event()
            trial = asyncio.create_task(pool.post(INFER, BODY, JSON))
            await until(lambda: bad.seen() == 5)
            assert state(pool, bad.url) == ReplicaState(bad.url, True, "half-open", 1, 4)
            # one trial at a time: the rest go elsewhere while it runs
            assert (await pool.post(INFER, BODY, JSON)).replica == good.url
            bad.gate.set()
            assert (await trial).replica == bad.url
            assert state(pool, bad.url) == ReplicaState(bad.url, True, "closed", 0, 0)
            assert (await pool.post(INFER, BODY, JSON)).replica == bad.url

    with caplog.at_level(logging.DEBUG, logger="modelport.gateway"):
        run(scenario())
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "modelport.gateway"]
    assert [level for level, message in lines if "circuit" in message] == [
        "WARNING",  # opened after 3 failures
        "DEBUG",  # the failed trial
        "INFO",  # closed
    ]
    assert "circuit open for 5 s after 3 consecutive failures (last: answered 500)" in lines[0][1]


def test_a_half_open_replica_admits_one_trial_at_a_time() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        once = settings(breaker_failures=1, breaker_open_s=2)
        async with replicas(1) as (only,), pool_of(only.url, clock=clock, settings=once) as pool:
            only.status = 502
            assert (await pool.post(INFER, BODY, JSON)).status == 502
            assert not pool.ready()
            with pytest.raises(
                ServiceUnavailable, match="1 healthy, 1 of those with an open circuit"
            ):
                await pool.post(INFER, BODY, JSON)

            clock.advance(2)
            assert pool.ready()
            only.status, only.gate = 200, asyncio.Event()
            trial = asyncio.create_task(pool.post(INFER, BODY, JSON))
            await until(lambda: only.seen() == 2)
            with pytest.raises(
                ServiceUnavailable, match="1 half-open with a trial request in flight"
            ):
                await pool.post(INFER, BODY, JSON)
            only.gate.set()
            assert (await trial).status == 200
            assert state(pool, only.url).circuit == "closed"
            assert only.seen() == 2

    run(scenario())


def test_a_cancelled_trial_lets_the_next_request_be_the_trial() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        once = settings(breaker_failures=1, breaker_open_s=2)
        async with replicas(1) as (only,), pool_of(only.url, clock=clock, settings=once) as pool:
            only.status = 500
            await pool.post(INFER, BODY, JSON)
            clock.advance(2)
            only.status, only.gate = 200, asyncio.Event()
            trial = asyncio.create_task(pool.post(INFER, BODY, JSON))
            await until(lambda: only.seen() == 2)
            trial.cancel()  # the gateway's caller went away
            with contextlib.suppress(asyncio.CancelledError):
                await trial
            only.gate.set()
            assert state(pool, only.url) == ReplicaState(only.url, True, "half-open", 0, 1)
            assert (await pool.post(INFER, BODY, JSON)).status == 200
            assert state(pool, only.url).circuit == "closed"

    run(scenario())


def test_failures_must_be_consecutive_to_open_the_circuit() -> None:
    async def scenario() -> None:
        async with replicas(1) as (flaky,), pool_of(flaky.url) as pool:
            for _ in range(5):
                flaky.status = 503
                await pool.post(INFER, BODY, JSON)
                await pool.post(INFER, BODY, JSON)
                flaky.status = 200
                await pool.post(INFER, BODY, JSON)
            assert state(pool, flaky.url) == ReplicaState(flaky.url, True, "closed", 0, 0)

    run(scenario())


# -- health checks -------------------------------------------------------------------------------


def test_health_checks_take_a_replica_out_and_bring_it_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        checked = settings(health_interval_s=0.02)
        async with (
            replicas(2) as (a, b),
            pool_of(a.url, b.url, random=first, settings=checked) as pool,
        ):
            a.ready_status = 503
            await until(lambda: not state(pool, a.url).healthy)
            checks = a.ready_checks
            await until(lambda: a.ready_checks >= checks + 3)
            assert (await pool.post(INFER, BODY, JSON)).replica == b.url
            assert pool.ready()

            b.ready_status = 503
            await until(lambda: not pool.ready())
            with pytest.raises(ServiceUnavailable) as raised:
                await pool.post(INFER, BODY, JSON)
            assert str(raised.value) == (
                "no replica of deployment 'fraud' is available: 2 replica(s), 0 healthy, "
                "0 of those with an open circuit"
            )

            a.ready_status = 200
            await until(pool.ready)
            assert (await pool.post(INFER, BODY, JSON)).replica == a.url
            assert a.seen() == 1 and b.seen() == 1

    with caplog.at_level(logging.INFO, logger="modelport.gateway"):
        run(scenario())
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "modelport.gateway"]
    assert [level for level, _ in lines] == [
        "WARNING",
        "WARNING",
        "INFO",
    ]  # once each, not per check
    assert lines[0][1].endswith("is down: /v2/health/ready answered 503")


def test_a_stopped_replica_gets_traffic_again_once_it_is_back() -> None:
    async def scenario() -> None:
        checked = settings(health_interval_s=0.02)
        async with (
            replicas(2) as (a, b),
            pool_of(a.url, b.url, random=first, settings=checked) as pool,
        ):
            assert (await pool.post(INFER, BODY, JSON)).replica == a.url
            await a.stop()
            await until(lambda: not state(pool, a.url).healthy)
            assert (await pool.post(INFER, BODY, JSON)).replica == b.url
            assert state(pool, a.url).failures == 0  # never sent to while down

            await a.start()  # same port
            await until(lambda: state(pool, a.url).healthy)
            assert (await pool.post(INFER, BODY, JSON)).replica == a.url
            assert a.seen() == 2

    run(scenario())


def test_replicas_are_unknown_until_checked_and_down_if_unreachable_at_start() -> None:
    async def scenario() -> None:
        async with replicas(1) as (up,):
            with socket.socket() as bound:  # bound, not listening: connections are refused
                bound.bind(("127.0.0.1", 0))
                down = f"http://127.0.0.1:{bound.getsockname()[1]}"
                pool = ReplicaPool("fraud", urls=[down, up.url], settings=settings())
                assert not pool.ready() and not any(s.healthy for s in pool.states())
                with pytest.raises(ServiceUnavailable, match="is not started"):
                    await pool.post(INFER, BODY, JSON)
                await pool.start()
                try:
                    assert [s.healthy for s in pool.states()] == [False, True]
                    for _ in range(5):
                        assert (await pool.post(INFER, BODY, JSON)).replica == up.url
                finally:
                    await pool.close()

    run(scenario())


# -- DNS -----------------------------------------------------------------------------------------


def test_dns_mode_finds_every_address_of_the_name() -> None:
    async def scenario() -> None:
        infos = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)
        addresses = sorted({str(info[4][0]) for info in infos})
        replica = await Replica("r").start(tuple(addresses))
        try:
            expected = sorted(
                f"http://[{ip}]:{replica.port}" if ":" in ip else f"http://{ip}:{replica.port}"
                for ip in addresses
            )
            pool = ReplicaPool("fraud", dns=f"localhost:{replica.port}", settings=settings())
            assert pool.urls == []
            await pool.start()
            try:
                assert pool.urls == expected
                assert all(s.healthy for s in pool.states())
                assert (await pool.post(INFER, BODY, JSON)).body == BODY
            finally:
                await pool.close()
        finally:
            await replica.stop()

    run(scenario())


class ScriptedDns(ReplicaPool):
    """A pool whose DNS answers are set by the test (real name resolution changes too rarely)."""

    answer: list[str] | OSError = []

    async def _lookup(self, host: str, port: int) -> list[str]:
        if isinstance(self.answer, OSError):
            raise self.answer
        return self.answer


def test_dns_refresh_adds_and_removes_replicas(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with replicas(2) as (a, b):
            pool = ScriptedDns(
                "fraud", dns="replicas.fraud:8080", settings=settings(dns_refresh_s=0.02)
            )
            pool.answer = [a.url]
            await pool.start()
            try:
                assert pool.urls == [a.url] and pool.ready()
                pool.answer = [a.url, b.url]
                await until(
                    lambda: len(pool.states()) == 2 and all(s.healthy for s in pool.states())
                )
                assert pool.urls == [a.url, b.url]
                pool.answer = [b.url]
                await until(lambda: pool.urls == [b.url])
                assert (await pool.post(INFER, BODY, JSON)).replica == b.url
                pool.answer = OSError("lookup failed")
                await asyncio.sleep(0.1)
                assert pool.urls == [b.url]  # a failed lookup keeps what there is
                pool.answer = []
                await until(lambda: pool.urls == [])
                with pytest.raises(
                    ServiceUnavailable, match=r"0 replica\(s\).*replicas.fraud:8080 has no address"
                ):
                    await pool.post(INFER, BODY, JSON)
            finally:
                await pool.close()

    with caplog.at_level(logging.WARNING, logger="modelport.gateway"):
        run(scenario())
    warnings = [r.getMessage() for r in caplog.records if r.name == "modelport.gateway"]
    assert len(warnings) == 1 and "cannot look up replicas.fraud:8080" in warnings[0]


# -- connections and pass-through ----------------------------------------------------------------


def test_keep_alive_reuses_connections_within_the_per_replica_limit() -> None:
    async def scenario() -> None:
        async with replicas(1) as (replica,):
            async with pool_of(replica.url) as pool:
                for _ in range(200):
                    await pool.post(INFER, BODY, JSON)
                assert len(replica.peers) == 1

            replica.peers.clear()
            async with pool_of(replica.url, settings=settings(max_connections=2)) as pool:
                for _ in range(3):
                    await asyncio.gather(*(pool.post(INFER, BODY, JSON) for _ in range(20)))
                assert len(replica.peers) == 2

    run(scenario())


def test_answers_below_500_pass_through_unchanged_and_headers_are_sent() -> None:
    async def scenario() -> None:
        async with replicas(1) as (replica,):
            headers = {"Authorization": "Bearer pool-key", "x-team": "risk"}
            async with pool_of(replica.url, headers=headers) as pool:
                reply = await pool.post(INFER, BODY, {"content-type": "application/json"})
                assert (reply.status, reply.body, reply.replica) == (200, BODY, replica.url)
                assert reply.headers["content-type"] == "application/octet-stream"
                assert reply.headers["inference-header-content-length"] == str(len(BODY))
                assert reply.headers["x-replica"] == "r0"
                # the gateway's server writes its own
                assert not {"content-length", "date", "server"} & set(reply.headers)
                sent = replica.infers[-1]
                assert (sent["Authorization"], sent["x-team"]) == ("Bearer pool-key", "risk")
                assert sent["Host"] == f"127.0.0.1:{replica.port}"

                replica.status = 404
                reply = await pool.post(INFER, BODY, {"authorization": "Bearer caller"})
                assert (reply.status, reply.body) == (404, b'{"error": "r0 says no"}')
                assert reply.headers["content-type"] == "application/json; charset=utf-8"
                sent = replica.infers[-1]
                assert sent.getall("Authorization") == ["Bearer caller"]  # overridden, not added
                assert sent["x-team"] == "risk"
                assert state(pool, replica.url) == ReplicaState(replica.url, True, "closed", 0, 0)

                reply = await pool.get("/v2/models/m", {})
                assert (reply.status, reply.body) == (200, b'{"name": "m", "replica": "r0"}')

    run(scenario())


def test_close_is_idempotent_and_stops_the_health_checks() -> None:
    async def scenario() -> None:
        async with replicas(1) as (replica,):
            pool = ReplicaPool(
                "fraud", urls=[replica.url], settings=settings(health_interval_s=0.02)
            )
            await pool.start()
            await until(lambda: replica.ready_checks >= 3)
            await pool.close()
            await pool.close()
            checks = replica.ready_checks
            await asyncio.sleep(0.1)
            assert replica.ready_checks == checks
            with pytest.raises(ServiceUnavailable, match="deployment 'fraud' is closed"):
                await pool.post(INFER, BODY, JSON)

    run(scenario())


def test_a_replica_removed_by_dns_finishes_its_requests_in_flight() -> None:
    async def scenario() -> None:
        async with replicas(2) as (a, b):
            pool = ScriptedDns(
                "fraud",
                dns="replicas.fraud:8080",
                settings=settings(dns_refresh_s=0.02),
                random=first,
            )
            pool.answer = [a.url, b.url]
            await pool.start()
            try:
                a.gate = asyncio.Event()
                held = asyncio.create_task(pool.post(INFER, BODY, JSON))
                await until(lambda: a.seen() == 1)
                pool.answer = [b.url]
                await until(lambda: pool.urls == [b.url])
                a.gate.set()
                reply = await held  # the replica may be draining: its answer still comes
                assert (reply.status, reply.replica, reply.body) == (200, a.url, BODY)
                assert (await pool.post(INFER, BODY, JSON)).replica == b.url
            finally:
                await pool.close()

    run(scenario())


def test_an_https_replica_is_reached_over_verified_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = make_dev_certs(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certs.server, certs.server_key)

    async def scenario(trusted: bool) -> None:
        async with replicas(0) as started:
            replica = await Replica("tls").start(tls=server_tls)
            started.append(replica)
            url = f"https://127.0.0.1:{replica.port}"
            async with pool_of(url) as pool:
                if not trusted:  # the pool verifies: a certificate from an unknown CA is refused
                    assert not pool.ready() and replica.ready_checks == 0
                    return
                reply = await pool.post(INFER, BODY, JSON)
                assert (reply.status, reply.replica, reply.body) == (200, url, BODY)
                assert replica.infers[-1]["Host"] == f"127.0.0.1:{replica.port}"

    run(scenario(trusted=False))
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))  # read when the pool makes its context
    run(scenario(trusted=True))


def test_an_ipv6_literal_url_and_a_base_path_are_used_as_given() -> None:
    async def scenario() -> None:
        try:
            replica = await Replica("v6").start(("::1",))
        except OSError:
            pytest.skip("no IPv6 loopback")
        try:
            url = f"http://[::1]:{replica.port}/base/"
            async with pool_of(url) as pool:
                assert pool.urls == [url.rstrip("/")] and pool.ready()
                reply = await pool.post(INFER, BODY, JSON)
                assert (reply.status, reply.body) == (200, BODY)
                assert replica.infers[-1]["Host"] == f"[::1]:{replica.port}"
                reply = await pool.get("/v2/models/m", {})
                assert (reply.status, reply.body) == (200, b'{"name": "m", "replica": "v6"}')
        finally:
            await replica.stop()

    run(scenario())


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "names no replicas"),
        ({"urls": ["10.0.0.5:8080"]}, "is not http://HOST:PORT"),
        ({"dns": "replicas.fraud"}, "is not HOST:PORT"),
        ({"dns": "replicas.fraud:http"}, "is not HOST:PORT"),
        ({"urls": ["http://a:port"]}, "is not http://HOST:PORT"),
        ({"urls": ["http://user:secret@a:1"]}, "is not http://HOST:PORT"),
        ({"urls": ["http://a:1/?q=1"]}, "is not http://HOST:PORT"),
        ({"urls": ["http://a:1"], "headers": {"x-a": "1\r\nx-b: 2"}}, "cannot be sent"),
        ({"urls": ["http://a:1"], "headers": {"x a": "1"}}, "cannot be sent"),
        ({"urls": ["http://a:1"], "headers": {"x-a": "\u20ac"}}, "is not latin-1"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ReplicaPool("fraud", settings=settings(), **kwargs)


def test_urls_are_normalised_and_deduplicated() -> None:
    pool = ReplicaPool(
        "fraud", urls=["http://a:1/", "http://a:1", "https://b:2"], settings=settings()
    )
    assert pool.urls == ["http://a:1", "https://b:2"]


# -- a real model server -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_modelport_serve_replica_is_healthy_and_answers_through_the_pool(url: str) -> None:
    """The same calls against ``modelport serve`` itself (the integration suite's server)."""

    async def scenario() -> None:
        async with pool_of(url) as pool:
            assert pool.ready() and pool.states()[0].healthy
            body = b'{"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}'
            reply = await pool.post("/v2/models/iris/versions/1/infer", body, JSON)
            assert (reply.status, reply.replica) == (200, url)
            assert reply.headers["content-type"].startswith("application/json")
            assert b'"model_name":"iris"' in reply.body.replace(b" ", b"")
            reply = await pool.post("/v2/models/iris/versions/1/infer", b"{not json", JSON)
            assert reply.status == 400 and b"JSON" in reply.body
            reply = await pool.get("/v2/models/no-such-model", {})
            assert reply.status == 404
            assert state(pool, url).failures == 0

    run(scenario())
