"""``modelport gateway`` and ``modelport up``: deployments served on the Open Inference Protocol."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelport.cli import _options as o
from modelport.cli.serve_cmd import announce, log_settings, security_settings

if TYPE_CHECKING:
    from modelport.core.settings import Settings

__all__ = ["attach"]


def _command(in_process: bool, summary: str) -> Callable[..., None]:
    """The ``gateway`` or ``up`` command: the same options, with or without in-process serving."""

    def command(
        host: Annotated[str | None, o.HOST] = None,
        port: Annotated[int | None, o.REST_PORT] = None,
        grpc_port: Annotated[int | None, o.GRPC_PORT] = None,
        no_grpc: Annotated[bool, o.NO_GRPC] = False,
        workers: Annotated[int | None, o.WORKERS] = None,
        no_auth: Annotated[bool, o.NO_AUTH] = False,
        insecure: Annotated[bool, o.INSECURE] = False,
        tls_cert: Annotated[Path | None, o.TLS_CERT] = None,
        tls_key: Annotated[Path | None, o.TLS_KEY] = None,
        tls_ca: Annotated[Path | None, o.TLS_CA] = None,
        log_level: Annotated[str | None, o.LOG_LEVEL] = None,
        log_format: Annotated[str | None, o.LOG_FORMAT] = None,
    ) -> None:
        settings = _settings(
            host,
            port,
            grpc_port,
            no_grpc,
            workers,
            no_auth,
            insecure,
            tls_cert,
            tls_key,
            tls_ca,
            log_level,
            log_format,
        )
        raise typer.Exit(_run(settings, in_process=in_process))

    command.__doc__ = summary
    return command


def _settings(
    host: str | None,
    port: int | None,
    grpc_port: int | None,
    no_grpc: bool,
    workers: int | None,
    no_auth: bool,
    insecure: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_ca: Path | None,
    log_level: str | None,
    log_format: str | None,
) -> Settings:
    from modelport.cli._settings import checked_settings
    from modelport.cli.serve_cmd import server_options

    settings = server_options(checked_settings(), host, port, grpc_port, no_grpc, workers, None)
    settings = security_settings(settings, no_auth, insecure, tls_cert, tls_key, tls_ca)
    return log_settings(settings, log_level, log_format)


def _run(settings: Settings, *, in_process: bool) -> int:
    from modelport.server.gateway.process import run_gateway_worker
    from modelport.server.logs import start_logs
    from modelport.server.supervisor import serve
    from modelport.service.wiring import deployment_sources, open_deployment_store, open_registrar

    sources = []
    if in_process:
        registrar = open_registrar(settings)
        try:
            with open_deployment_store(settings) as store:
                sources = deployment_sources(store, registrar, settings.batching)
        finally:
            registrar.store.close()
    what = "deployments and the control plane" if in_process else "deployments"
    logs = start_logs(settings.log)
    try:
        return serve(
            settings,
            sources,
            True,
            lambda at: announce(at, what),
            logs,
            functools.partial(run_gateway_worker, in_process=in_process),
        )
    finally:
        logs.stop()


def attach(app: typer.Typer) -> None:
    """Add ``gateway`` and ``up`` to ``app``."""
    app.command("gateway")(
        _command(
            False,
            "Serve deployments in front of model-server replicas (spec.replicas) until "
            "interrupted.",
        )
    )
    app.command("up")(
        _command(
            True,
            "Run the platform on this box until interrupted: deployments served in-process, "
            "and the control plane's /v1 API on the same port.",
        )
    )
