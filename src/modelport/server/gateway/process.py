"""A gateway worker process: ``modelport gateway`` and ``modelport up``.

:func:`run_gateway_worker` takes :func:`~modelport.server.worker.run_worker`'s arguments, so the
supervisor forks, restarts and stops gateway workers as it does model-server workers (``--workers
N`` on one port). Each worker reads the deployments itself and follows their changes (every
``gateway.poll_interval_s``), so workers and gateway replicas need no coordination: the same
deployment, the same salt and the same unit key give the same variant everywhere.

Under ``modelport up`` (``in_process=True``) the worker also hosts the variants' versions in its
own data plane (a deployment's change loads the versions it needs, off the event loop) and
answers the control plane's ``/v1/`` routes on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

from modelport.core.clock import SystemClock
from modelport.core.errors import ConfigError, ModelportError
from modelport.core.refs import ModelRef
from modelport.core.settings import Settings
from modelport.monitoring import render_gateway_metrics
from modelport.server.gateway.app import GatewayApp
from modelport.server.gateway.grpc import GatewayServicer
from modelport.server.gateway.local import LocalBackend
from modelport.server.gateway.remote import Backends
from modelport.server.grpc.server import create_grpc_server
from modelport.server.logs import AccessLog
from modelport.server.rest.tls import server_ssl_context
from modelport.server.worker import Notify, run_asgi
from modelport.service.dataplane import DataPlane
from modelport.service.gateway import Gateway
from modelport.service.jobs import JobRunner
from modelport.service.models import ModelSource
from modelport.service.wiring import (
    build_access,
    build_dataplane,
    control_plane_jobs,
    open_deployment_store,
    open_prediction_log,
    open_registrar,
    open_security_store,
    registered_source,
)

__all__ = ["run_gateway_worker"]

log = logging.getLogger("modelport.gateway")


def run_gateway_worker(
    settings: Settings,
    sources: Sequence[ModelSource],
    rest_socket: socket.socket,
    grpc_port: int | None,
    use_registry: bool,
    notify: Notify,
    channel: socket.socket | None = None,
    access_log: AccessLog | None = None,
    *,
    in_process: bool = False,
) -> int:
    """Serve deployments until told to stop; return the exit status.

    Args:
        settings: Settings of this process.
        sources: The versions to load before serving (``modelport up``); empty in a gateway.
        rest_socket: Bound, listening REST socket.
        grpc_port: gRPC port to bind with ``SO_REUSEPORT``, or ``None``.
        use_registry: Unused (a gateway always reads the registry); kept for the signature.
        notify: Told when this worker serves, or why it could not start.
        channel: Unused (gateway workers need no relay); kept for the signature.
        access_log: Where each request is recorded; ``None`` keeps no access log.
        in_process: Serve deployments without replicas in this process (``modelport up``) and
            answer the control plane's routes.
    """
    clock = SystemClock()
    try:
        registrar = open_registrar(settings, clock)
        store = open_deployment_store(settings, clock)
        dataplane: DataPlane | None = None
        local = None
        if in_process:
            dataplane = build_dataplane(settings, sources, registrar)
            dataplane.repository.load_all()

            def source(model: str, version: str) -> ModelSource:
                return registered_source(registrar, ModelRef(model, version=int(version)))

            local = LocalBackend(dataplane, source)
        access = build_access(settings, clock)
        predictions = open_prediction_log(settings)
        gateway_settings = settings.gateway
        redis = None
        if gateway_settings.redis_url is not None:
            import redis.asyncio as aioredis

            redis = aioredis.from_url(gateway_settings.redis_url)  # connects when first used
        gateway = Gateway(
            store,
            lambda ref: str(registrar.store.resolve(ref).version),
            Backends(gateway_settings, local),
            predictions=predictions,
            poll_interval_s=gateway_settings.poll_interval_s,
            max_shadow_in_flight=gateway_settings.max_shadow_in_flight,
            clock=clock,
            redis=redis,
        )
        ssl_context = server_ssl_context(settings.security.tls)
        gc.collect()
        gc.freeze()
    except ModelportError as exc:
        notify(exc)
        return 1
    grpc_servers: list[Any] = []
    tasks: list[asyncio.Task[None]] = []
    # Under `up` the control plane's background jobs run here too (they serialise themselves).
    jobs = JobRunner(control_plane_jobs(settings, clock) if in_process else [])

    async def start() -> None:
        await gateway.start()
        await jobs.start()
        log.info(
            "worker %d serves deployments: %s",
            os.getpid(),
            ", ".join(gateway.names()) or "none yet",
            extra={"fields": {"event": "worker_started", "deployments": gateway.names()}},
        )
        if dataplane is not None and dataplane.metrics is not None:
            tasks.append(asyncio.create_task(dataplane.metrics.flush_every(1.0)))
        if grpc_port is not None:
            try:
                server, _ = create_grpc_server(
                    None,
                    access,
                    settings.server.host,
                    grpc_port,
                    settings.server.max_body_bytes,
                    tls=settings.security.tls,
                    access_log=access_log,
                    servicer=GatewayServicer(gateway, access, clock, access_log),
                )
                await server.start()
            except Exception as exc:
                notify(ConfigError(f"cannot serve gRPC on port {grpc_port}: {exc}"))
                raise
            grpc_servers.append(server)
        notify(None)

    async def stop() -> None:
        log.info("worker %d stopping", os.getpid(), extra={"fields": {"event": "worker_stopping"}})
        await jobs.stop()
        for server in grpc_servers:
            await server.stop(grace=2)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await gateway.close()
        if redis is not None:
            await redis.aclose()
        if dataplane is not None:
            await dataplane.close()
        await asyncio.to_thread(predictions.close)  # everything queued is written
        access.close()
        store.close()
        registrar.store.close()

    def metrics() -> tuple[bytes, str]:
        stats = gateway.stats()
        log_stats = predictions.stats()
        text = render_gateway_metrics(
            stats.requests,
            {
                "modelport_gateway_shadow_requests_total": (
                    "Copies of requests sent to shadow variants",
                    stats.shadows,
                ),
                "modelport_gateway_shadow_failures_total": (
                    "Shadow requests that failed (the callers were not affected)",
                    stats.shadow_failures,
                ),
                "modelport_gateway_shadows_skipped_total": (
                    "Shadow copies not sent: too many shadow requests in flight",
                    stats.shadows_skipped,
                ),
                "modelport_gateway_cache_hits_total": (
                    "Requests answered from the response cache",
                    stats.cache_hits,
                ),
                "modelport_gateway_cache_misses_total": (
                    "Requests the response cache could not answer",
                    stats.cache_misses,
                ),
                "modelport_prediction_log_records_total": (
                    "Predictions queued for the prediction log",
                    log_stats.logged,
                ),
                "modelport_prediction_log_dropped_total": (
                    "Predictions dropped because the prediction log's queue was full",
                    log_stats.dropped,
                ),
                "modelport_prediction_log_write_failures_total": (
                    "Flushes of the prediction log its storage refused (records kept for retry)",
                    log_stats.failures,
                ),
                "modelport_prediction_log_lost_total": (
                    "Predictions the prediction log's storage could never take",
                    log_stats.lost,
                ),
            },
        )
        if dataplane is None:
            return text, "text/plain; version=0.0.4; charset=utf-8"
        served, content_type = dataplane.metrics_text()
        return served + text, content_type

    server_settings = settings.server
    app: Any = GatewayApp(
        gateway,
        access,
        server_settings.max_body_bytes,
        server_settings.max_json_bytes,
        metrics,
        on_startup=[start],
        on_shutdown=[stop],
    )
    if in_process:
        app = _with_control_plane(app, settings, access, store, registrar)
    return 0 if run_asgi(app, settings, rest_socket, ssl_context, access_log) else 1


def _with_control_plane(
    app: Any, settings: Settings, access: Any, store: Any, registrar: Any
) -> Any:
    """``app`` with the control plane's ``/v1/`` routes beside it on the same port."""
    from modelport.server.controlplane.app import ControlPlaneApp
    from modelport.server.controlplane.probe import HttpReplicaProbe
    from modelport.service.deployments import DeploymentService

    service = DeploymentService(store, registrar.store, open_security_store(settings))
    control = ControlPlaneApp(
        access,
        service,
        settings.controlplane.max_body_bytes,
        probe=HttpReplicaProbe.from_settings(settings),
    )

    async def both(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await control(scope, receive, send)
        else:
            await app(scope, receive, send)

    return both
