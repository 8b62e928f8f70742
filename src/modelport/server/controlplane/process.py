"""The ``modelport controlplane`` process: bind, serve the ``/v1/`` API, run the jobs, stop.

One process, one event loop: uvicorn serves :class:`ControlPlaneApp` (through
:func:`~modelport.server.worker.run_asgi`, the HTTP setup of every modelport process) and a
:class:`~modelport.service.jobs.JobRunner` runs the background jobs beside it; ``GET /metrics``
shows the jobs' runs and failures, the experiments' last evaluations and the process's CPU and
memory (:class:`~modelport.monitoring.ControlPlaneMetrics`). One
:class:`~modelport.service.features.FeatureStoreService` (``wiring.open_features``) serves the
feature store's routes for the process's life. The port is bound
before anything else is opened, so a busy port fails at once with "port N on HOST is already in
use". SIGINT or SIGTERM stop it gracefully: no new connections, requests in flight finish (for
at most uvicorn's graceful timeout), the jobs stop, the stores close, "stopped" is logged and the
exit status is 0.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

from modelport.core.settings import Settings
from modelport.monitoring import ControlPlaneMetrics
from modelport.server.controlplane.app import ControlPlaneApp
from modelport.server.controlplane.probe import HttpReplicaProbe
from modelport.server.logs import Logs
from modelport.server.rest.tls import server_ssl_context
from modelport.server.supervisor import bind
from modelport.server.worker import run_asgi
from modelport.service.alert_jobs import open_alerts
from modelport.service.jobs import JobRunner
from modelport.service.wiring import (
    build_exposition,
    control_plane_jobs,
    open_alert_rules,
    open_control_plane,
    open_features,
)

__all__ = ["serve_controlplane"]

log = logging.getLogger("modelport.controlplane")


def serve_controlplane(settings: Settings, on_listening: Callable[[str], None], logs: Logs) -> int:
    """Serve the control plane until SIGINT/SIGTERM; return the exit status.

    Args:
        settings: The settings of this process (``controlplane`` says where it listens).
        on_listening: Told the base URL once the API serves.
        logs: This process's log pipeline (its access log records every request).

    Raises:
        ConfigError: The port is in use, the address cannot be bound, the TLS files are bad or
            the metadata database cannot be reached.
    """
    where = settings.controlplane
    sock = bind(where.host, where.port)
    started: list[bool] = []

    def stop_start(signum: int, frame: FrameType | None) -> None:
        # uvicorn handles SIGINT/SIGTERM while it serves, and raises the one that stopped it
        # again once it has shut down: the default handlers would then end this process before
        # the stores close and "stopped" is logged. Before it serves, the signal stops the start.
        if not started:
            raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop_start) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ssl_context = server_ssl_context(settings.security.tls)
        host, port = sock.getsockname()[:2]
        url = _url(host, port, "https" if ssl_context is not None else "http")
        with (
            open_control_plane(settings) as (deployments, experiments, access),
            open_alert_rules(settings) as alert_rules,
            open_alerts(settings) as alerts,
            open_features(settings) as features,
        ):
            exposition = build_exposition(settings)
            metrics = ControlPlaneMetrics(exposition)
            jobs = JobRunner(
                control_plane_jobs(
                    settings, on_evaluated=metrics.evaluated, on_drift=metrics.drift_scored
                )
            )
            metrics.follow_jobs(jobs.stats)

            async def start() -> None:
                await jobs.start()
                started.append(True)
                log.info(
                    "control plane on %s",
                    url,
                    extra={"fields": {"event": "started", "url": url}},
                )
                on_listening(url)

            async def stop() -> None:
                log.info("control plane stopping", extra={"fields": {"event": "stopping"}})
                await jobs.stop()

            app = ControlPlaneApp(
                access,
                deployments,
                experiments,
                where.max_body_bytes,
                on_startup=[start],
                on_shutdown=[stop],
                probe=HttpReplicaProbe.from_settings(settings),
                metrics=exposition.render,
                alert_rules=alert_rules,
                alerts=alerts,
                features=features,
                materialize_chunk_rows=settings.features.materialize_chunk_rows,
            )
            served = run_asgi(app, settings, sock, ssl_context, logs.access)
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    status = 0 if served else 1
    log.info("stopped (exit status %d)", status, extra={"fields": {"event": "stopped"}})
    return status


def _url(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"
