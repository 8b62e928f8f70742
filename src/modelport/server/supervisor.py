"""``modelport serve``'s process model: bind the ports, start the workers, keep them running.

With one worker everything runs in this process. With more, the parent binds one REST socket per
worker and picks the gRPC port, then forks the workers *before* any model or framework is loaded
(so no framework thread pool is forked). On Linux the REST sockets share the port with
``SO_REUSEPORT``, so the kernel spreads new connections over the workers by a hash of their
addresses; a single shared accept queue hands a burst of new connections to whichever worker
wakes first (measured: all 16 of a load generator's connections on one of two workers, the other
idle). Elsewhere the workers share one socket. Workers bind the gRPC port with
``SO_REUSEPORT`` themselves. Each worker reports over a pipe when it serves or why it could not
start; the parent announces the addresses once all of them serve, restarts a worker that dies,
and stops them all on SIGINT/SIGTERM.

**Only our own workers share a port.** Linux lets any process of the same user join a port
whose listeners all set ``SO_REUSEPORT``, and then splits new connections between them: a
second ``modelport serve`` on the same ports would start without complaint and take half the
traffic. So before the parent binds the shared sockets it binds a *probe* on the port, with
``SO_REUSEADDR`` but without ``SO_REUSEPORT``: the kernel refuses that bind while any socket
listens on the port, with or without ``SO_REUSEPORT``, and the server stops with "port N on
HOST is already in use". The probe stays bound (not listening, so it takes no connections and
does not stand in the way of our own ``SO_REUSEADDR`` sockets) until the shared sockets listen,
so that with port 0 the port it picked is the one they join. The gRPC port is claimed the same
way: the parent keeps one listening ``SO_REUSEPORT`` socket on it until every worker has bound
its own, so that a server started while ours is still loading its models fails too, and then
closes it. (Binding the first socket without ``SO_REUSEPORT`` would not do: the kernel then
refuses our own workers' sockets as well, since every socket sharing a port must set it.)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Final

from modelport.core.errors import ConfigError, ErrorKind, ModelportError, error_for_kind
from modelport.core.settings import Settings
from modelport.monitoring import enable_multiprocess, remove_multiprocess_dir, worker_exited
from modelport.server.logs import Logs, start_logs
from modelport.server.tracing import Role, check_tracing, start_tracing, stop_tracing
from modelport.server.worker import Notify, WorkerMain, run_worker, threads_per_worker
from modelport.server.worker_relay import Relay
from modelport.service.models import ModelSource

__all__ = [
    "Listening",
    "bind",
    "bind_shared",
    "bind_workers",
    "claim_grpc_port",
    "serve",
]

log = logging.getLogger("modelport.server")

START_TIMEOUT = 300.0
"""Seconds the workers get to load their models."""
RESTART_WINDOW, MAX_RESTARTS = 60.0, 5
"""A worker that dies is restarted, at most MAX_RESTARTS times per RESTART_WINDOW seconds."""


@dataclass(frozen=True, slots=True)
class Listening:
    """Where the server listens, announced once every worker serves."""

    rest_url: str
    grpc_address: str | None
    workers: int


def bind(host: str, port: int, reuse_port: bool = False, *, listen: bool = True) -> socket.socket:
    """Bind a TCP socket (listening unless ``listen`` is false); port 0 picks a free one.

    ``reuse_port`` sets ``SO_REUSEPORT``, so that more sockets can listen on the same port.
    Without it the bind fails while any other socket listens on the port.

    Raises:
        ConfigError: The address cannot be bound (in use, not local, bad host); a port in use
            reads "port N on HOST is already in use".
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family in (socket.AF_INET, socket.AF_INET6):
        # Accepted connections inherit it: small responses go out at once (no Nagle delay).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    if listen:
        sock.listen(2048)
        sock.set_inheritable(True)
    return sock


def bind_shared(host: str, port: int, count: int) -> list[socket.socket]:
    """Bind ``count`` listening sockets sharing a port that nobody else listens on.

    A probe without ``SO_REUSEPORT`` is bound first (see the module docstring): it fails if
    any socket listens on the port. It stays bound until the shared sockets listen.

    Raises:
        ConfigError: The port is in use, or the address cannot be bound.
    """
    with contextlib.closing(bind(host, port, listen=False)) as probe:
        port = probe.getsockname()[1]
        sockets: list[socket.socket] = []
        try:
            for _ in range(count):
                sockets.append(bind(host, port, reuse_port=True))
        except ConfigError:
            for sock in sockets:
                sock.close()
            raise
    return sockets


def bind_workers(host: str, port: int, workers: int) -> list[socket.socket]:
    """Bind the REST sockets of ``workers`` processes: one each on Linux, else one shared.

    On Linux every socket listens on the same port with ``SO_REUSEPORT`` (:func:`bind_shared`:
    nobody else may listen on it) and the kernel balances new connections across them. A
    restarted worker takes over its predecessor's socket, so connections that arrived in between
    wait in its queue instead of being refused.

    Raises:
        ConfigError: The address cannot be bound.
    """
    if workers <= 1 or not _BALANCING_REUSEPORT:
        return [bind(host, port)]
    return bind_shared(host, port, workers)


_BALANCING_REUSEPORT = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
"""Only Linux spreads connections over sockets that share a port (BSDs give them to one)."""


def claim_grpc_port(host: str, port: int) -> socket.socket:
    """Hold the gRPC port until the workers have bound it; port 0 picks a free one.

    On Linux the claim is a listening ``SO_REUSEPORT`` socket that the workers' gRPC servers
    join; elsewhere (no shared gRPC port) a socket bound without listening, closed before the
    worker binds.

    Raises:
        ConfigError: The port is in use.
    """
    if _BALANCING_REUSEPORT:
        return bind_shared(host, port, 1)[0]
    return bind(host, port, listen=False)


def _url(host: str, port: int, scheme: str = "http") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}" if scheme else f"{shown}:{port}"


def serve(
    settings: Settings,
    sources: Sequence[ModelSource],
    use_registry: bool,
    on_listening: Callable[[Listening], None],
    logs: Logs,
    worker: WorkerMain = run_worker,
    role: Role | None = None,
) -> int:
    """Serve ``sources`` until SIGINT/SIGTERM; return the exit status.

    Each worker process starts its own tracing (``settings.tracing``) before it builds
    anything, and flushes it once it has stopped.

    Args:
        settings: The settings of this server.
        sources: Models to host.
        use_registry: Open the registry so the repository extension can load registered models.
        on_listening: Told where the server listens, once every worker serves.
        logs: This process's log pipeline (a forked worker starts its own from
            ``settings.log``).
        worker: What each worker process runs (the model server's :func:`run_worker`, or a
            gateway's), called with :func:`run_worker`'s arguments.
        role: What the workers are, for tracing's default service name; ``None``: told by
            ``worker`` (:func:`_role`).

    Raises:
        ModelportError: A port is in use, tracing is on without its packages, or a worker
            could not start (the first worker's error is raised).
    """
    check_tracing(settings.tracing)  # before anything is bound or forked
    role = role or _role(worker)
    server = settings.server
    workers = server.workers or os.cpu_count() or 1
    settings = threads_per_worker(settings, workers)
    rest = bind_workers(server.host, server.port, workers)
    claim: socket.socket | None = None
    try:
        host, rest_port = rest[0].getsockname()[:2]
        grpc_port = server.grpc_port
        if grpc_port is not None:
            claim = claim_grpc_port(server.host, grpc_port)
            grpc_port = int(claim.getsockname()[1])
            if not _BALANCING_REUSEPORT:
                claim.close()  # no shared gRPC port here: the worker binds it alone
        listening = Listening(
            rest_url=_url(host, rest_port, "https" if settings.security.tls.cert else "http"),
            grpc_address=None if grpc_port is None else _url(host, grpc_port, scheme=""),
            workers=workers,
        )
    except BaseException:
        for sock in rest:
            sock.close()
        raise

    def announce() -> None:
        if claim is not None:
            claim.close()  # every worker listens on the gRPC port now
        names = ", ".join(f"{s.name}@{s.version}" for s in sources)
        grpc = "" if listening.grpc_address is None else f" and gRPC on {listening.grpc_address}"
        log.info(
            "serving %s on %s%s with %d worker(s)",
            names,
            listening.rest_url,
            grpc,
            workers,
            extra={
                "fields": {
                    "event": "started",
                    "models": [{"name": s.name, "version": s.version} for s in sources],
                    "rest": listening.rest_url,
                    "grpc": listening.grpc_address,
                    "workers": workers,
                }
            },
        )
        on_listening(listening)

    try:
        if workers > 1:
            metrics_dir = enable_multiprocess()  # before any worker imports prometheus_client
            try:
                supervisor = _Supervisor(
                    settings, sources, rest, grpc_port, use_registry, workers, claim, worker, role
                )
                status = supervisor.run(announce)
            finally:
                remove_multiprocess_dir(metrics_dir)
        else:
            status = _serve_here(
                settings, sources, rest[0], grpc_port, use_registry, announce, logs, worker, role
            )
    finally:
        if claim is not None:
            claim.close()
    log.info("stopped (exit status %d)", status, extra={"fields": {"event": "stopped"}})
    return status


def _role(worker: WorkerMain) -> Role:
    """What ``worker`` serves, for tracing's default service name.

    ``modelport gateway`` and ``up`` pass their worker with ``in_process`` bound (a
    :class:`functools.partial`); any worker but the model server's is a gateway's.
    """
    if worker is run_worker:
        return "server"
    keywords = getattr(worker, "keywords", None)
    return "up" if isinstance(keywords, dict) and keywords.get("in_process") else "gateway"


def _serve_here(
    settings: Settings,
    sources: Sequence[ModelSource],
    rest: socket.socket,
    grpc_port: int | None,
    use_registry: bool,
    announce: Callable[[], None],
    logs: Logs,
    worker: WorkerMain,
    role: Role,
) -> int:
    failure: list[ModelportError] = []
    started: list[bool] = []

    def notify(error: ModelportError | None) -> None:
        if error is None:
            started.append(True)
            announce()
        else:
            failure.append(error)

    def stop(signum: int, frame: FrameType | None) -> None:
        # uvicorn handles SIGINT/SIGTERM while it serves, and re-raises the one that stopped it
        # once it has shut down: the default handlers would then end this process before the
        # last log lines are written. Before it serves, the signal stops the start.
        if not started:
            raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        start_tracing(settings.tracing, role)
        status = worker(
            settings, sources, rest, grpc_port, use_registry, notify, access_log=logs.access
        )
    finally:
        stop_tracing()  # what is still queued is exported
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure:
        raise failure[0]
    return status


class _Supervisor:
    """Forks the workers, relays repository changes between them and keeps them running."""

    def __init__(
        self,
        settings: Settings,
        sources: Sequence[ModelSource],
        rest: list[socket.socket],
        grpc_port: int | None,
        use_registry: bool,
        workers: int,
        claim: socket.socket | None,
        worker: WorkerMain,
        role: Role,
    ) -> None:
        self.args = (settings, sources, grpc_port, use_registry)
        self.worker = worker
        self.role = role
        self.rest = rest
        self.claim = claim
        """The parent's hold on the gRPC port while workers start; never a worker's socket."""
        self.workers = workers
        self.pids: dict[int, int] = {}
        """Worker process id -> its slot, which picks its REST socket."""
        self.relay = Relay()
        self.stopping = self.failed = False
        self.restarts: list[float] = []
        self.ready_r, self.ready_w = os.pipe()

    def run(self, announce: Callable[[], None]) -> int:
        for slot in range(self.workers):
            self._fork(slot, replay=False)
        try:
            self._await_ready()
        except BaseException:
            self._stop_all()
            raise
        announce()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous_fd = signal.set_wakeup_fd(wake_w)
        handlers = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
        }
        try:
            return self._watch(wake_r)
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            for fd in (wake_r, wake_w, self.ready_r, self.ready_w):
                os.close(fd)

    def _fork(self, slot: int, replay: bool) -> None:
        parent_end, child_end = socket.socketpair()
        parent = os.getpid()
        pid = os.fork()
        if pid:
            child_end.close()
            self.pids[pid] = slot
            self.relay.add(pid, parent_end, replay)
            return
        # In the worker: report over the pipe, never return into the parent's code.
        status = 1
        try:
            os.close(self.ready_r)
            parent_end.close()
            for other in self.relay.channels.values():
                other.close()
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            _stop_with(parent)
            notify = _pipe_notifier(self.ready_w)
            settings, sources, grpc_port, use_registry = self.args
            if self.claim is not None:
                self.claim.close()  # it would take gRPC connections that nobody accepts
            rest = self.rest[slot % len(self.rest)]
            for other_socket in self.rest:
                if other_socket is not rest:
                    other_socket.close()
            logs = start_logs(settings.log)  # the parent's writer thread does not exist here
            try:
                start_tracing(settings.tracing, self.role)  # its exporter thread is this one's
                status = self.worker(
                    settings,
                    sources,
                    rest,
                    grpc_port,
                    use_registry,
                    notify,
                    channel=child_end,
                    access_log=logs.access,
                    worker_index=slot,
                )
            finally:
                stop_tracing()  # what is still queued is exported
                logs.stop()
        finally:
            os._exit(status)

    def _await_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        ready = 0
        buffer = b""
        while ready < self.workers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConfigError(f"workers did not start within {START_TIMEOUT:.0f} s")
            readable, _, _ = select.select([self.ready_r], [], [], min(remaining, 0.5))
            if not readable:
                if self._reap():
                    raise ConfigError("a worker exited while starting; see its output above")
                continue
            buffer += os.read(self.ready_r, 65536)
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                error = _decode(line)
                if error is not None:
                    raise error
                ready += 1

    def _reap(self) -> list[tuple[int, int]]:
        """Collect the workers that exited: ``(process id, slot)`` each."""
        gone = []
        for pid in list(self.pids):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                gone.append((pid, self.pids.pop(pid)))
                self.relay.remove(pid)
                worker_exited(pid)  # its gauges (in flight, queues, memory) no longer count
        return gone

    def _watch(self, wake_r: int) -> int:
        terminated = False
        while self.pids:
            if self.stopping and not terminated:
                self._signal_all(signal.SIGTERM)
                terminated, deadline = True, time.monotonic() + 15
            if terminated and time.monotonic() > deadline:
                self._signal_all(signal.SIGKILL)
            channels = [s.fileno() for s in self.relay.channels.values()]
            try:
                readable, _, _ = select.select([wake_r, self.ready_r, *channels], [], [], 1.0)
            except InterruptedError:
                continue
            for fd in readable:
                if fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                elif fd == self.ready_r:
                    os.read(self.ready_r, 65536)  # restarted workers report too; nobody waits
                elif (pid := self.relay.pid_of(fd)) is not None:
                    self.relay.receive(pid)
            for pid, slot in self._reap():
                if not self.stopping and not self._restart(pid, slot):
                    self.stopping = self.failed = True
        return 1 if self.failed else 0

    def _restart(self, pid: int, slot: int) -> bool:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW] + [now]
        if len(self.restarts) > MAX_RESTARTS:
            log.error("workers keep dying (%d restarts in a minute); stopping", MAX_RESTARTS)
            return False
        log.warning("worker %d exited; starting a new one", pid)
        self._fork(slot, replay=True)
        return True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGCHLD:
            self.stopping = True

    def _signal_all(self, sig: int) -> None:
        for pid in list(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _stop_all(self) -> None:
        self.stopping = True
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while self.pids and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        self._signal_all(signal.SIGKILL)
        while self.pids:
            self._reap()
            time.sleep(0.01)


def _stop_with(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the supervisor dies (Linux).

    Without it a supervisor killed with SIGKILL leaves its workers serving on the ports, and a
    new server there is refused as "already in use".
    """
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


_PR_SET_PDEATHSIG: Final = 1


def _pipe_notifier(write_end: int) -> Notify:
    def notify(error: ModelportError | None) -> None:
        if error is None:
            line = "ready"
        else:
            line = f"error {error.kind.value} {error.message}".replace("\n", " ")
        os.write(write_end, line.encode() + b"\n")

    return notify


def _decode(line: bytes) -> ModelportError | None:
    text = line.decode(errors="replace")
    if text == "ready":
        return None
    _, kind, message = (text.split(" ", 2) + ["", ""])[:3]
    try:
        return error_for_kind(ErrorKind(kind), message)
    except ValueError:
        return ConfigError(f"a worker failed to start: {text}")
