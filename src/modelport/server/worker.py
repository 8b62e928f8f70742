"""One serving process: load the models, then run REST (uvicorn) and gRPC on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn

from modelport.core.errors import ConfigError, ModelportError
from modelport.core.settings import Settings
from modelport.server.grpc.server import create_grpc_server
from modelport.server.logs import AccessLog
from modelport.server.rest.app import create_app
from modelport.server.rest.http_protocol import HttpLimits, http_protocol
from modelport.server.rest.tls import server_ssl_context
from modelport.server.tracing import current
from modelport.server.worker_relay import ChannelPeers
from modelport.service.models import ModelSource
from modelport.service.wiring import (
    build_access,
    build_dataplane,
    build_exposition,
    open_registrar,
)

__all__ = ["Notify", "WorkerMain", "run_asgi", "run_worker", "threads_per_worker"]

log = logging.getLogger("modelport.server")

Notify = Callable[[ModelportError | None], None]
"""Called once per worker: ``None`` when it serves, or the error that stopped its start."""

WorkerMain = Callable[..., int]
"""What a worker process runs: :func:`run_worker`'s arguments in, the exit status out."""


def threads_per_worker(settings: Settings, workers: int) -> Settings:
    """Size runtime thread pools so ``workers`` processes do not oversubscribe the cores."""
    if settings.runtime.threads:
        return settings
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    runtime = settings.runtime.model_copy(update={"threads": threads})
    return settings.model_copy(update={"runtime": runtime})


def run_worker(
    settings: Settings,
    sources: Sequence[ModelSource],
    rest_socket: socket.socket,
    grpc_port: int | None,
    use_registry: bool,
    notify: Notify,
    channel: socket.socket | None = None,
    access_log: AccessLog | None = None,
    worker_index: int = 0,
) -> int:
    """Serve until told to stop; return the process exit status (0, or 1 after a failed start).

    Args:
        settings: Settings of this process (thread counts already sized).
        sources: Models to host.
        rest_socket: Bound, listening socket for REST (shared by every worker).
        grpc_port: gRPC port to bind with ``SO_REUSEPORT`` (shared by every worker), or ``None``.
        use_registry: Open the registry so the repository extension can load registered models.
        notify: Told when this worker serves, or why it could not start.
        channel: This worker's end of its socket pair with the supervisor, which keeps the
            workers' repositories in step; ``None`` when it is the only worker.
        access_log: Where each request is recorded; ``None`` keeps no access log.
        worker_index: This worker's slot among the server's workers (0 to N-1; a restarted
            worker takes its predecessor's), the ``worker`` label of its process metrics.
    """
    try:
        registrar = open_registrar(settings) if use_registry else None
        peers = ChannelPeers(channel) if channel is not None else None
        exposition = build_exposition(settings, worker_index)
        dataplane = build_dataplane(settings, sources, registrar, peers, exposition)
        access = build_access(settings)
        ssl_context = server_ssl_context(settings.security.tls)
        dataplane.repository.load_all()
        # Everything loaded so far (the frameworks' modules, the models) lives as long as the
        # process: frozen, it is no longer scanned by every full collection, which stalled the
        # event loop (bench/HOT_PATH.md, "The garbage collector").
        gc.collect()
        gc.freeze()
    except ModelportError as exc:
        notify(exc)
        return 1
    loaded = [m for m in dataplane.repository if m.ready]
    log.info(
        "worker %d loaded %s",
        os.getpid(),
        ", ".join(f"{m.source.name}@{m.source.version} ({m.platform})" for m in loaded)
        or "nothing",
        extra={
            "fields": {
                "event": "worker_started",
                "pid": os.getpid(),
                "models": [
                    {"name": m.source.name, "version": m.source.version, "platform": m.platform}
                    for m in loaded
                ],
            }
        },
    )
    grpc_servers = []
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        if dataplane.metrics is not None:
            tasks.append(asyncio.create_task(dataplane.metrics.flush_every(1.0)))
        if peers is not None:
            await peers.start(dataplane)
        if grpc_port is not None:
            try:
                server, _ = create_grpc_server(
                    dataplane,
                    access,
                    settings.server.host,
                    grpc_port,
                    settings.server.max_body_bytes,
                    tls=settings.security.tls,
                    access_log=access_log,
                )
                await server.start()
            except Exception as exc:
                notify(ConfigError(f"cannot serve gRPC on port {grpc_port}: {exc}"))
                raise
            grpc_servers.append(server)
        notify(None)

    async def stop() -> None:
        served = [f"{m.source.name}@{m.source.version}" for m in dataplane.repository]
        log.info(
            "worker %d stopping; unloading %s",
            os.getpid(),
            ", ".join(served) or "nothing",
            extra={"fields": {"event": "worker_stopping", "pid": os.getpid(), "models": served}},
        )
        for server in grpc_servers:
            await server.stop(grace=2)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if peers is not None:
            await peers.stop()
        await dataplane.close()
        access.close()

    app = create_app(settings.server, dataplane, access, on_startup=[start], on_shutdown=[stop])
    return 0 if run_asgi(app, settings, rest_socket, ssl_context, access_log) else 1


def run_asgi(
    app: Any,
    settings: Settings,
    rest_socket: socket.socket,
    ssl_context: ssl.SSLContext | None,
    access_log: AccessLog | None,
) -> bool:
    """Serve ``app`` with uvicorn on ``rest_socket`` until SIGINT/SIGTERM.

    The one HTTP server setup of every modelport process (model server, gateway, control
    plane): httptools with the server's limits, the access log and TLS; with tracing on in this
    process (:mod:`modelport.server.tracing`), a server span around each request.

    Returns:
        Whether the server started (its startup hooks succeeded).
    """
    tracing = current()
    if tracing is not None:
        app = tracing.asgi(app)
    limits = settings.server
    protocol = http_protocol(
        HttpLimits(limits.max_header_bytes, limits.header_timeout_s, limits.body_timeout_s),
        access_log,
    )
    config = uvicorn.Config(
        app,
        loop="uvloop",
        # httptools with limits, one send per response, the verified client certificate under
        # mTLS and the access log (server/rest/http_protocol.py).
        http=protocol,
        ssl_context_factory=(lambda _config, _default: ssl_context) if ssl_context else None,
        lifespan="on",
        log_config=None,  # uvicorn's records go through modelport's log pipeline
        log_level=max(logging.getLogger().getEffectiveLevel(), logging.WARNING),
        access_log=False,
        proxy_headers=False,  # nothing reads the client address; skip the middleware
        server_header=False,
        # uvicorn annotates it int but hands it to loop.call_later, which takes any float.
        timeout_keep_alive=limits.keep_alive_timeout_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[rest_socket])
    return bool(server.started)
