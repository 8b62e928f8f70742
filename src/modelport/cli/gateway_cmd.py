"""``modelport gateway`` and ``modelport up``: deployments served on the Open Inference Protocol."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelport.cli.serve_cmd import log_settings, security_settings

if TYPE_CHECKING:
    from modelport.core.settings import Settings
    from modelport.server.supervisor import Listening

__all__ = ["attach"]

_HOST = typer.Option(help="Address to bind \\[default: 127.0.0.1].")
_PORT = typer.Option(min=0, max=65535, help="REST port; 0 picks a free one \\[default: 8080].")
_GRPC_PORT = typer.Option(min=0, max=65535, help="gRPC port; 0 picks a free one \\[default: 8081].")
_NO_GRPC = typer.Option("--no-grpc", help="Serve REST only.")
_WORKERS = typer.Option(min=1, help="Worker processes sharing the ports \\[default: one per core].")
_NO_AUTH = typer.Option(
    "--no-auth", help="Turn authentication off (local development; loopback addresses only)."
)
_INSECURE = typer.Option("--insecure", help="Allow --no-auth on a non-loopback address.")
_TLS_CERT = typer.Option(help="Server certificate chain (PEM): serve HTTPS / gRPC+TLS.")
_TLS_KEY = typer.Option(help="Server private key (PEM).")
_TLS_CA = typer.Option(help="CA (PEM) that client certificates must chain to: mutual TLS.")
_LOG_LEVEL = typer.Option(help="debug, info, warning or error \\[default: info].")
_LOG_FORMAT = typer.Option(help="text or json (one JSON object per line) \\[default: text].")


def _command(in_process: bool, summary: str) -> Callable[..., None]:
    """The ``gateway`` or ``up`` command: the same options, with or without in-process serving."""

    def command(
        host: Annotated[str | None, _HOST] = None,
        port: Annotated[int | None, _PORT] = None,
        grpc_port: Annotated[int | None, _GRPC_PORT] = None,
        no_grpc: Annotated[bool, _NO_GRPC] = False,
        workers: Annotated[int | None, _WORKERS] = None,
        no_auth: Annotated[bool, _NO_AUTH] = False,
        insecure: Annotated[bool, _INSECURE] = False,
        tls_cert: Annotated[Path | None, _TLS_CERT] = None,
        tls_key: Annotated[Path | None, _TLS_KEY] = None,
        tls_ca: Annotated[Path | None, _TLS_CA] = None,
        log_level: Annotated[str | None, _LOG_LEVEL] = None,
        log_format: Annotated[str | None, _LOG_FORMAT] = None,
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
            lambda at: _announce(at, what),
            logs,
            functools.partial(run_gateway_worker, in_process=in_process),
        )
    finally:
        logs.stop()


def _announce(listening: Listening, what: str) -> None:
    lines = [f"serving {what} with {listening.workers} worker(s)"]
    if listening.grpc_address is not None:
        lines.append(f"grpc on {listening.grpc_address}")
    lines.append(f"serving on {listening.rest_url}")
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()


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
