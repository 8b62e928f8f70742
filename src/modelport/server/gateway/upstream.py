"""The gateway's client side: a deployment's model-server replicas, balanced and watched.

A :class:`ReplicaPool` holds the replicas of one deployment (processes running ``modelport
serve``) and forwards a request's raw bytes to one of them over pooled keep-alive HTTP/1.1
connections, handing the raw answer back as an :class:`UpstreamReply`. Bodies are never parsed.

The hop uses :mod:`.http1`'s lean client, one per replica for requests and one for its health
checks, rather than aiohttp's: profiling the gateway under load put aiohttp's client at 40% of
all CPU samples (its request and response objects, header multidicts, timers and stream
readers), and that CPU is taken from the replicas on a shared box. The pool's own headers are
formatted once; a request formats only its own.

How a replica is chosen and when it is avoided:

* **Balancing** - power of two choices over the *eligible* replicas (healthy, circuit not open):
  two distinct ones at random, the one with fewer requests in flight wins.
* **Active health checks** - ``GET /v2/health/ready`` on every replica every
  ``health_interval_s``; anything but 200 (or no answer within ``health_timeout_s``) marks it
  unhealthy, and an unhealthy replica gets no traffic until a check passes.
* **Circuit breaker** - ``breaker_failures`` consecutive failures (connection errors, timeouts,
  answers with status >= 500) open the circuit for ``breaker_open_s``; then it is half-open and
  admits one trial request at a time: success closes it, failure opens it again.
* **Retry** - once, on another replica, and only when no connection could be made (the request
  was certainly not sent). Inference is not assumed idempotent, so a failure after sending is
  reported, never retried.

Errors raised (from :mod:`modelport.core.errors`; the HTTP client's never escape)::

    ServiceUnavailable   no eligible replica, or the replica failed (refused, closed the connection)
    DeadlineExceeded     the replica did not answer within ``request_timeout_s``

An answer with status >= 500 is returned like any other (its body says what went wrong on the
replica); it only counts against the replica's circuit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from random import random as _uniform
from typing import Final
from urllib.parse import unquote, urlsplit

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import ConfigError, DeadlineExceeded, ServiceUnavailable
from modelport.core.settings import GatewaySettings
from modelport.server.gateway.http1 import ConnectFailed, ConnectionClosed, Http1Client

__all__ = ["ReplicaPool", "ReplicaState", "UpstreamReply"]

log = logging.getLogger("modelport.gateway")

_HEALTH_PATH: Final = "/v2/health/ready"

_KEEPALIVE_S: Final = 4.0
"""Seconds an idle pooled connection is kept: under the replicas' default keep-alive (5 s), so the
gateway drops a connection before the replica does; a POST written onto a connection the replica
is closing fails and, not being idempotent, cannot be retried."""

_NOT_PASSED: Final = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "date",
        "server",
    }
)
"""Reply headers not passed on: the hop-by-hop ones, which describe the replica's connection, not
the answer, and ``date`` and ``server``; the gateway's own server writes its own."""


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """A replica's answer, unchanged.

    Attributes:
        status: The HTTP status the replica answered.
        body: The body, as received (not decompressed).
        headers: Lower-case header names to values (a repeated header keeps its last value),
            without the hop-by-hop headers, ``content-length`` (the body's length is
            ``len(body)``), ``date`` and ``server``.
        replica: Base URL of the replica that answered.
    """

    status: int
    body: bytes
    headers: Mapping[str, str]
    replica: str


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """One replica as the pool sees it now.

    Attributes:
        url: The replica's base URL.
        healthy: The last active health check passed (``False`` before the first one).
        circuit: ``"closed"``, ``"open"`` or ``"half-open"``.
        outstanding: Requests in flight to the replica now.
        failures: Consecutive failed requests.
    """

    url: str
    healthy: bool
    circuit: str
    outstanding: int
    failures: int


class _Replica:
    """Mutable bookkeeping of one replica; touched only on the event loop."""

    __slots__ = (
        "checker",
        "client",
        "failures",
        "healthy",
        "host",
        "netloc",
        "open_until",
        "opened",
        "outstanding",
        "port",
        "prefix",
        "retired",
        "tls",
        "trial",
        "url",
    )

    # Set by ReplicaPool._open when the pool starts or DNS adds the replica.
    client: Http1Client  # requests
    checker: Http1Client  # health checks

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)  # checked by _base_url, or made by _lookup
        self.tls = parts.scheme == "https"
        self.host = unquote(parts.hostname or "")  # a zone id's %25 is % again
        self.port = parts.port or (443 if self.tls else 80)
        self.netloc = parts.netloc  # the Host header
        self.prefix = parts.path  # a base URL's path, before every request's
        self.retired = False  # DNS no longer gives it
        self.healthy: bool | None = None  # None: not checked yet
        self.opened = False  # circuit open or half-open
        self.open_until = 0.0  # monotonic time the open circuit turns half-open
        self.trial = False  # the half-open circuit's trial request is in flight
        self.outstanding = 0
        self.failures = 0

    def circuit(self, now: float) -> str:
        if not self.opened:
            return "closed"
        return "open" if now < self.open_until else "half-open"


class _NotSent(Exception):
    """No connection to the replica could be made: the request may go to another one."""


class ReplicaPool:
    """The replicas of one deployment, balanced, health-checked and circuit-broken.

    Create it anywhere, then :meth:`start` it on the event loop that will use it and
    :meth:`close` it when done.

    Args:
        name: The deployment's name, for messages and logs.
        urls: Base URLs of replicas (``http://10.0.0.5:8080``).
        dns: ``HOST:PORT`` whose every address is a replica (a Kubernetes headless Service),
            looked up again every ``settings.dns_refresh_s``; replicas come and go with the
            answer. May be combined with ``urls``.
        settings: Timeouts, intervals, breaker thresholds and connection limits.
        headers: Headers sent with every request (``{"authorization": "Bearer KEY"}``);
            a call's own headers override them.
        clock: Times the circuit breaker; :class:`SystemClock` by default.
        random: Uniform numbers in ``[0, 1)`` for the balancer; :func:`random.random` by default.

    Raises:
        ConfigError: Neither ``urls`` nor ``dns`` is given, a URL is not ``http(s)://``,
            ``dns`` is not ``HOST:PORT``, or a header in ``headers`` cannot be sent.
    """

    def __init__(
        self,
        name: str,
        *,
        urls: Sequence[str] = (),
        dns: str | None = None,
        settings: GatewaySettings,
        headers: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        if not urls and dns is None:
            raise ConfigError(f"deployment {name!r} names no replicas: give urls or dns")
        self._name = name
        self._settings = settings
        self._own_lines = {
            key.lower(): _header_line(key, value, name) for key, value in (headers or {}).items()
        }
        self._own_block = b"".join(self._own_lines.values())
        self._clock: Clock = clock or SystemClock()
        self._random = random or _uniform
        self._static = list(dict.fromkeys(_base_url(url, name) for url in urls))
        self._dns = _parse_dns(dns, name) if dns is not None else None
        self._replicas = [_Replica(url) for url in self._static]
        self._retiring: set[_Replica] = set()  # retired with requests still in flight
        self._tls: ssl.SSLContext | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._dns_failing = False
        self._started = False
        self._closed = False

    @property
    def urls(self) -> list[str]:
        """Base URLs of the current replicas."""
        return [replica.url for replica in self._replicas]

    async def start(self) -> None:
        """Open each replica's connections, find and check the replicas, start watching them.

        Looks ``dns`` up once, health-checks every replica once (concurrently), then starts the
        background health checks (and DNS refresh). Calling it again does nothing.

        Raises:
            ServiceUnavailable: The pool was closed.
        """
        if self._closed:
            raise ServiceUnavailable(f"the replica pool of deployment {self._name!r} is closed")
        if self._started:
            return
        self._started = True
        for replica in self._replicas:
            self._open(replica)
        if self._dns is not None:
            await self._refresh_dns(check_added=False)  # checked with the rest just below
        await asyncio.gather(*(self._check(replica) for replica in self._replicas))
        self._tasks.append(asyncio.create_task(self._health_loop(), name=f"health:{self._name}"))
        if self._dns is not None:
            self._tasks.append(asyncio.create_task(self._dns_loop(), name=f"dns:{self._name}"))

    async def close(self) -> None:
        """Stop the background tasks and close every connection; calling it again does nothing."""
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._started:
            return
        retiring, self._retiring = self._retiring, set()
        for replica in [*self._replicas, *retiring]:
            await replica.client.close()
            await replica.checker.close()

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> UpstreamReply:
        """Send ``POST path`` with ``body`` to one replica and return its answer.

        Args:
            path: Path and query, already percent-encoded (``/v2/models/m/versions/1/infer``).
            body: The request body, sent as is.
            headers: End-to-end headers to send (no hop-by-hop ones such as ``connection``, no
                ``host`` or ``content-length``: those are written for the hop), values as
                latin-1 text.

        Returns:
            The replica's answer, whatever its status.

        Raises:
            ServiceUnavailable: No replica is eligible, or the chosen one failed.
            DeadlineExceeded: The replica did not answer within ``request_timeout_s``.
        """
        return await self._forward("POST", path, body, headers)

    async def get(self, path: str, headers: Mapping[str, str]) -> UpstreamReply:
        """Send ``GET path`` to one replica and return its answer.

        Args:
            path: Path and query, already percent-encoded.
            headers: End-to-end headers to send.

        Returns:
            The replica's answer, whatever its status.

        Raises:
            ServiceUnavailable: No replica is eligible, or the chosen one failed.
            DeadlineExceeded: The replica did not answer within ``request_timeout_s``.
        """
        return await self._forward("GET", path, b"", headers)

    def states(self) -> list[ReplicaState]:
        """Return a snapshot of every replica's health, circuit and load."""
        now = self._clock.monotonic()
        return [
            ReplicaState(r.url, bool(r.healthy), r.circuit(now), r.outstanding, r.failures)
            for r in self._replicas
        ]

    def ready(self) -> bool:
        """Return whether at least one replica is healthy with its circuit not open."""
        now = self._clock.monotonic()
        return any(r.healthy and r.circuit(now) != "open" for r in self._replicas)

    # -- the request path ------------------------------------------------------------------------

    async def _forward(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamReply:
        if self._closed or not self._started:
            state = "closed" if self._closed else "not started"
            raise ServiceUnavailable(f"the replica pool of deployment {self._name!r} is {state}")
        replica = self._pick(None)
        if replica is None:
            raise ServiceUnavailable(self._none_available())
        lines = self._header_lines(headers)
        try:
            return await self._attempt(replica, method, path, body, lines)
        except _NotSent as first:
            retry = self._pick(replica)
            if retry is None:
                raise ServiceUnavailable(
                    f"{first}; no other replica of deployment {self._name!r} to retry on"
                ) from None
            try:
                return await self._attempt(retry, method, path, body, lines)
            except _NotSent as second:
                raise ServiceUnavailable(f"{first}; retried: {second}") from None

    def _pick(self, exclude: _Replica | None) -> _Replica | None:
        """Choose by power of two choices among the eligible replicas other than ``exclude``."""
        now = -1.0
        eligible: list[_Replica] = []
        for r in self._replicas:
            if not r.healthy or r is exclude:
                continue
            if r.opened:
                if now < 0:
                    now = self._clock.monotonic()
                if now < r.open_until or r.trial:
                    continue
            eligible.append(r)
        n = len(eligible)
        if n == 0:
            return None
        if n == 1:
            chosen = eligible[0]
        else:
            i = min(int(self._random() * n), n - 1)
            j = min(int(self._random() * (n - 1)), n - 2)
            a, b = eligible[i], eligible[j + 1 if j >= i else j]
            chosen = b if b.outstanding < a.outstanding else a
        if chosen.opened:
            chosen.trial = True
        return chosen

    def _header_lines(self, headers: Mapping[str, str]) -> bytes:
        """Format a request's header lines: ``headers``, and the pool's own they don't override."""
        if not headers:
            return self._own_block
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        own = self._own_lines
        if not own:
            return lines.encode("latin-1")
        overridden = {name.lower() for name in headers}
        kept = [line for name, line in own.items() if name not in overridden]
        return b"".join(kept) + lines.encode("latin-1")

    async def _attempt(
        self, replica: _Replica, method: str, path: str, body: bytes, headers: bytes
    ) -> UpstreamReply:
        """Send once to ``replica``, keeping its load and circuit up to date.

        Raises:
            _NotSent: No connection could be made.
            ServiceUnavailable: The replica failed after the request may have been sent.
            DeadlineExceeded: The replica did not answer in time.
        """
        trial = replica.trial
        replica.outstanding += 1
        try:
            # The whole request is bounded by request_timeout_s, waiting for a free connection
            # included (no fault of the replica); connecting alone by connect_timeout_s.
            response = await replica.client.request(
                method, replica.prefix + path, headers, body, self._settings.request_timeout_s
            )
        except ConnectFailed as exc:
            self._failed(replica, trial, str(exc))
            raise _NotSent(f"replica {replica.url} could not be reached: {exc}") from None
        except ConnectionClosed:
            self._failed(replica, trial, "closed the connection")
            raise ServiceUnavailable(
                f"replica {replica.url} closed the connection before answering"
            ) from None
        except TimeoutError:
            self._failed(replica, trial, "timeout")
            raise DeadlineExceeded(
                f"replica {replica.url} did not answer within "
                f"{self._settings.request_timeout_s:g} s"
            ) from None
        finally:
            replica.outstanding -= 1
            if trial:
                # Also when the caller went away mid-request: let another request be the trial.
                replica.trial = False
            if replica.retired and not replica.outstanding and replica in self._retiring:
                self._retiring.discard(replica)
                await replica.client.close()  # does not suspend: safe on cancellation too
        status = response.status
        if status >= 500:
            self._failed(replica, trial, f"answered {status}")
        elif replica.failures or trial:
            self._succeeded(replica, trial)
        reply_headers = {k: v for k, v in response.headers.items() if k not in _NOT_PASSED}
        return UpstreamReply(status, response.body, reply_headers, replica.url)

    def _failed(self, replica: _Replica, trial: bool, what: str) -> None:
        replica.failures += 1
        if trial:
            replica.open_until = self._clock.monotonic() + self._settings.breaker_open_s
            log.debug(
                "replica %s of deployment %r: trial request failed (%s); circuit open again",
                replica.url,
                self._name,
                what,
            )
        elif not replica.opened and replica.failures >= self._settings.breaker_failures:
            replica.opened = True
            replica.open_until = self._clock.monotonic() + self._settings.breaker_open_s
            log.warning(
                "replica %s of deployment %r: circuit open for %g s after %d consecutive "
                "failures (last: %s)",
                replica.url,
                self._name,
                self._settings.breaker_open_s,
                replica.failures,
                what,
            )

    def _succeeded(self, replica: _Replica, trial: bool) -> None:
        replica.failures = 0
        if trial and replica.opened:
            replica.opened = False
            log.info(
                "replica %s of deployment %r: trial request succeeded; circuit closed",
                replica.url,
                self._name,
            )

    def _none_available(self) -> str:
        now = self._clock.monotonic()
        total = len(self._replicas)
        healthy = sum(1 for r in self._replicas if r.healthy)
        circuits = [r.circuit(now) for r in self._replicas if r.healthy]
        message = (
            f"no replica of deployment {self._name!r} is available: {total} replica(s), "
            f"{healthy} healthy, {circuits.count('open')} of those with an open circuit"
        )
        if "half-open" in circuits:
            message += f", {circuits.count('half-open')} half-open with a trial request in flight"
        if self._dns is not None and self._dns_failing:
            message += f" (cannot look up {self._dns[0]}:{self._dns[1]})"
        elif self._dns is not None and total == 0:
            message += f" (DNS name {self._dns[0]}:{self._dns[1]} has no address)"
        return message

    # -- health checks and DNS -------------------------------------------------------------------

    def _open(self, replica: _Replica) -> None:
        """Give a new replica its clients."""
        settings = self._settings
        tls = None
        if replica.tls:
            tls = self._tls = self._tls or ssl.create_default_context()
        replica.client = Http1Client(
            replica.host,
            replica.port,
            max_connections=settings.max_connections,
            connect_timeout_s=settings.connect_timeout_s,
            idle_timeout_s=_KEEPALIVE_S,
            ssl=tls,
            host_header=replica.netloc,
        )
        # Health checks have their own connection, so a replica busy with max_connections
        # requests is not reported down for want of a free connection.
        replica.checker = Http1Client(
            replica.host,
            replica.port,
            max_connections=1,
            connect_timeout_s=settings.connect_timeout_s,
            idle_timeout_s=_KEEPALIVE_S,
            ssl=tls,
            host_header=replica.netloc,
        )

    async def _retire(self, replica: _Replica) -> None:
        """Close the clients of a replica DNS no longer gives.

        Its health checks stop now; its requests only once none is in flight, as the replica
        may be draining them.
        """
        replica.retired = True
        await replica.checker.close()
        if replica.outstanding:
            self._retiring.add(replica)  # _attempt closes it after the last one
        else:
            await replica.client.close()

    async def _check(self, replica: _Replica) -> None:
        """Health-check ``replica`` once and record the outcome; never raises."""
        try:
            response = await replica.checker.request(
                "GET",
                replica.prefix + _HEALTH_PATH,
                self._own_block,
                b"",
                self._settings.health_timeout_s,
            )
            ok, why = response.status == 200, f"{_HEALTH_PATH} answered {response.status}"
        except TimeoutError:
            ok = False
            why = f"{_HEALTH_PATH} did not answer within {self._settings.health_timeout_s:g} s"
        except (ConnectFailed, ConnectionClosed, OSError) as exc:
            ok, why = False, str(exc)
        if self._closed or replica.retired:
            return  # its client was closed under it: nothing to report
        was = replica.healthy
        replica.healthy = ok
        if ok and was is False:
            log.info("replica %s of deployment %r is up again", replica.url, self._name)
        elif not ok and was is not False:
            log.warning("replica %s of deployment %r is down: %s", replica.url, self._name, why)

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.health_interval_s)
            try:
                await asyncio.gather(*(self._check(r) for r in self._replicas))
            except Exception:  # a bug must not end the health checks for good
                log.exception("health checks of deployment %r failed", self._name)

    async def _dns_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.dns_refresh_s)
            try:
                await self._refresh_dns(check_added=True)
            except Exception:  # a bug must not end the refreshes for good
                log.exception("DNS refresh of deployment %r failed", self._name)

    async def _refresh_dns(self, *, check_added: bool) -> None:
        """Look ``dns`` up and make the replicas match the answer (plus the static ``urls``).

        Args:
            check_added: Health-check new replicas right away rather than at the next round.
        """
        if self._dns is None:
            return
        host, port = self._dns
        try:
            found = await self._lookup(host, port)
        except OSError as exc:
            if not self._dns_failing:
                log.warning(
                    "deployment %r: cannot look up %s:%d (%s); keeping %d replica(s)",
                    self._name,
                    host,
                    port,
                    exc,
                    len(self._replicas),
                )
            self._dns_failing = True
            return
        if self._dns_failing:
            log.info("deployment %r: %s:%d resolves again", self._name, host, port)
            self._dns_failing = False
        wanted = list(dict.fromkeys([*self._static, *found]))
        current = {r.url: r for r in self._replicas}
        if list(current) == wanted:
            return
        added = [_Replica(url) for url in wanted if url not in current]
        for replica in added:
            self._open(replica)
        fresh = {r.url: r for r in added}
        self._replicas = [current.get(url) or fresh[url] for url in wanted]
        removed = [url for url in current if url not in wanted]
        for url in removed:
            await self._retire(current[url])
        log.info(
            "deployment %r: %s:%d now gives %d replica(s); added %s, removed %s",
            self._name,
            host,
            port,
            len(wanted),
            [r.url for r in added] or "none",
            removed or "none",
        )
        if added and check_added:
            await asyncio.gather(*(self._check(r) for r in added))

    async def _lookup(self, host: str, port: int) -> list[str]:
        """Return the base URL of every address of ``host`` (in a thread), sorted."""
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        urls: set[str] = set()
        for family, _, _, _, address in infos:
            ip = str(address[0])
            if family == socket.AF_INET6:
                ip = "[" + ip.replace("%", "%25") + "]"  # a zone id's % is escaped in a URL
            urls.add(f"http://{ip}:{port}")
        return sorted(urls)


def _base_url(url: str, name: str) -> str:
    """Check a replica's base URL and drop any trailing slash."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        parts = None
    if (
        parts is None
        or not url.startswith(("http://", "https://"))
        or not parts.hostname
        or "@" in parts.netloc  # credentials in the URL would not be sent
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(
            f"replica URL {url!r} of deployment {name!r} is not http://HOST:PORT or https://..."
        )
    return url.rstrip("/")


def _header_line(key: str, value: str, name: str) -> bytes:
    """Format one of the pool's own headers as a header line."""
    if not key or any(c in key for c in ":\r\n \t") or "\r" in value or "\n" in value:
        raise ConfigError(f"header {key!r} of deployment {name!r} cannot be sent")
    try:
        return f"{key}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError(f"header {key!r} of deployment {name!r} is not latin-1 text") from None


def _parse_dns(dns: str, name: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` too)."""
    host, _, port = dns.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"replicas.dns {dns!r} of deployment {name!r} is not HOST:PORT")
    return host, int(port)
