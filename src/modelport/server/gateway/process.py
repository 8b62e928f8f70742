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
from modelport.monitoring import ControlPlaneMetrics
from modelport.server.gateway.app import GatewayApp
from modelport.server.gateway.grpc import GatewayServicer
from modelport.server.gateway.local import LocalBackend
from modelport.server.gateway.metrics import follow_gateway
from modelport.server.gateway.remote import Backends
from modelport.server.gateway.signals import GatewaySignals
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
    build_exposition,
    control_plane_jobs,
    open_alert_rules,
    open_deployment_store,
    open_drift_recorder,
    open_experiments,
    open_features,
    open_feedback,
    open_prediction_log,
    open_registrar,
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
    worker_index: int = 0,
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
        worker_index: This worker's slot among the server's workers, the ``worker`` label of
            its process metrics.
    """
    try:
        worker = _Worker(settings, sources, grpc_port, notify, access_log, in_process, worker_index)
        ssl_context = server_ssl_context(settings.security.tls)
    except ModelportError as exc:
        notify(exc)
        return 1
    # Everything loaded so far lives as long as the process: frozen, it is not rescanned by
    # every full collection (bench/HOT_PATH.md, "The garbage collector").
    gc.collect()
    gc.freeze()
    server_settings = settings.server
    app: Any = GatewayApp(
        worker.gateway,
        worker.access,
        server_settings.max_body_bytes,
        server_settings.max_json_bytes,
        worker.metrics,
        on_startup=[worker.start],
        on_shutdown=[worker.stop],
        feedback=worker.feedback,
    )
    if in_process:
        app = worker.with_control_plane(app)
    return 0 if run_asgi(app, settings, rest_socket, ssl_context, access_log) else 1


class _Worker:
    """What one gateway worker opens, starts with its server and closes when it stops.

    Raises:
        ModelportError: Something could not be opened (the database, the models, a setting).
    """

    def __init__(
        self,
        settings: Settings,
        sources: Sequence[ModelSource],
        grpc_port: int | None,
        notify: Notify,
        access_log: AccessLog | None,
        in_process: bool,
        worker_index: int,
    ) -> None:
        self.settings = settings
        self.grpc_port = grpc_port
        self.notify = notify
        self.access_log = access_log
        self.clock = clock = SystemClock()
        self.registrar = registrar = open_registrar(settings, clock)
        self.store = open_deployment_store(settings, clock)
        # One exposition for everything this process counts: /metrics shows it all.
        self.exposition = exposition = build_exposition(settings, worker_index)
        self.dataplane: DataPlane | None = None
        local = None
        if in_process:
            self.dataplane = build_dataplane(settings, sources, registrar, exposition=exposition)
            self.dataplane.repository.load_all()

            def source(model: str, version: str) -> ModelSource:
                return registered_source(registrar, ModelRef(model, version=int(version)))

            local = LocalBackend(self.dataplane, source)
        self.access = build_access(settings, clock)
        # The drift windows are counted from the prediction log, off the request path.
        self.drift = open_drift_recorder(settings, lambda: self.gateway)
        self.predictions = open_prediction_log(settings, observer=self.drift)
        # What the process opened besides its own stores: feedback, the control plane's routes.
        self.control = contextlib.ExitStack()
        self.feedback = self.control.enter_context(
            open_feedback(settings, self.predictions.sink, clock)
        )
        # The feature store: what enrichment reads, and under `up` the feature routes' service.
        self.features = self.control.enter_context(open_features(settings, clock))
        options = settings.gateway
        self.redis: Any = None
        if options.redis_url is not None:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(options.redis_url)  # connects when first used
        self.gateway = Gateway(
            self.store,
            lambda ref: str(registrar.store.resolve(ref).version),
            Backends(options, local),
            predictions=self.predictions,
            poll_interval_s=options.poll_interval_s,
            max_shadow_in_flight=options.max_shadow_in_flight,
            clock=clock,
            redis=self.redis,
            latency_buckets=exposition.latency_buckets,
            features=self.features.store,
            signature_of=lambda model, version: (
                registrar.store.get_version(model, int(version)).signature
            ),
        )
        follow_gateway(exposition, self.gateway, self.predictions, self.feedback)
        # Alert signals: what this worker measured, written every monitoring.signal_interval_s.
        self.signals = GatewaySignals(
            settings, self.gateway, self.dataplane, clock, exposition.latency_buckets, worker_index
        )
        # Under `up` the control plane's background jobs run here too (they serialise
        # themselves), and this process's /metrics shows them.
        control = ControlPlaneMetrics(exposition) if in_process else None
        jobs = []
        if control is not None:
            jobs = control_plane_jobs(settings, clock, control.evaluated, control.drift_scored)
        self.jobs = JobRunner(jobs, clock=clock)
        if control is not None:
            control.follow_jobs(self.jobs.stats)
        self.grpc_servers: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Read the deployments, start the jobs and gRPC; then tell the supervisor."""
        gateway = self.gateway
        await gateway.start()
        self.signals.start()
        await self.jobs.start()
        log.info(
            "worker %d serves deployments: %s",
            os.getpid(),
            ", ".join(gateway.names()) or "none yet",
            extra={"fields": {"event": "worker_started", "deployments": gateway.names()}},
        )
        self.tasks.append(asyncio.create_task(self.exposition.flush_every(1.0)))
        if self.grpc_port is not None:
            await self._start_grpc(self.grpc_port)
        self.notify(None)

    async def _start_grpc(self, port: int) -> None:
        settings = self.settings
        try:
            server, _ = create_grpc_server(
                None,
                self.access,
                settings.server.host,
                port,
                settings.server.max_body_bytes,
                tls=settings.security.tls,
                access_log=self.access_log,
                servicer=GatewayServicer(self.gateway, self.access, self.clock, self.access_log),
            )
            await server.start()
        except Exception as exc:
            self.notify(ConfigError(f"cannot serve gRPC on port {port}: {exc}"))
            raise
        self.grpc_servers.append(server)

    async def stop(self) -> None:
        """Finish what is in flight, write the prediction log out, close everything."""
        log.info("worker %d stopping", os.getpid(), extra={"fields": {"event": "worker_stopping"}})
        await self.jobs.stop()
        await self.signals.stop()  # the last, partial bucket is written
        for server in self.grpc_servers:
            await server.stop(grace=2)
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.gateway.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.dataplane is not None:
            await self.dataplane.close()
        await asyncio.to_thread(self.predictions.close)  # everything queued is written
        await asyncio.to_thread(self.drift.close)  # and counted: the last buckets too
        self.access.close()
        self.control.close()
        self.store.close()
        self.registrar.store.close()

    def metrics(self) -> tuple[bytes, str]:
        """Everything this process counts (with several workers, every worker's, added up)."""
        return self.exposition.render()

    def with_control_plane(self, app: Any) -> Any:
        """``app`` with the control plane's ``/v1/`` routes beside it on the same port."""
        from modelport.server.controlplane.app import ControlPlaneApp
        from modelport.server.controlplane.probe import HttpReplicaProbe
        from modelport.service.alert_jobs import open_alerts

        settings = self.settings
        experiments = self.control.enter_context(open_experiments(settings, self.clock))
        alert_rules = self.control.enter_context(open_alert_rules(settings, self.clock))
        alerts = self.control.enter_context(open_alerts(settings, self.clock))
        control = ControlPlaneApp(
            self.access,
            experiments.deployments,
            experiments,
            settings.controlplane.max_body_bytes,
            probe=HttpReplicaProbe.from_settings(settings),
            metrics=self.metrics,  # GET /metrics goes to the gateway's app, which shows it all
            alert_rules=alert_rules,
            alerts=alerts,
            features=self.features,
            clock=self.clock,
            materialize_chunk_rows=settings.features.materialize_chunk_rows,
        )

        async def both(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/v1/"):
                await control(scope, receive, send)
            else:
                await app(scope, receive, send)

        return both
