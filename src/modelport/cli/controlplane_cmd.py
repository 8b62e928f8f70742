"""``modelport controlplane``: the ``/v1/`` resource API (deployments) and the background jobs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelport.cli import _options as o
from modelport.cli.serve_cmd import log_settings, security_settings

if TYPE_CHECKING:
    from modelport.core.settings import Settings

# Settings (pydantic), uvicorn, httpx and the stores are imported when the command runs, so
# that loading this module for `modelport --help` stays cheap.

__all__ = ["attach", "controlplane"]


def controlplane(
    host: Annotated[str | None, o.HOST] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="API port; 0 picks a free one \\[default: 8090]."),
    ] = None,
    no_auth: Annotated[bool, o.NO_AUTH] = False,
    insecure: Annotated[bool, o.INSECURE] = False,
    tls_cert: Annotated[Path | None, o.TLS_CERT] = None,
    tls_key: Annotated[Path | None, o.TLS_KEY] = None,
    tls_ca: Annotated[Path | None, o.TLS_CA] = None,
    log_level: Annotated[str | None, o.LOG_LEVEL] = None,
    log_format: Annotated[str | None, o.LOG_FORMAT] = None,
) -> None:
    """Serve the control plane's /v1 API (deployments) and its background jobs until interrupted."""
    from modelport.server.controlplane.process import serve_controlplane
    from modelport.server.logs import start_logs

    settings = _settings(host, port)
    settings = security_settings(
        settings,
        no_auth,
        insecure,
        tls_cert,
        tls_key,
        tls_ca,
        host=settings.controlplane.host,
    )
    settings = log_settings(settings, log_level, log_format)
    logs = start_logs(settings.log)
    try:
        status = serve_controlplane(settings, _announce, logs)
    finally:
        logs.stop()
    raise typer.Exit(status)


def _settings(host: str | None, port: int | None) -> Settings:
    from modelport.cli._settings import checked_settings

    settings = checked_settings()
    given = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if not given:
        return settings
    return settings.model_copy(
        update={"controlplane": settings.controlplane.model_copy(update=given)}
    )


def _announce(url: str) -> None:
    # One write: log lines on standard error may share a pipe with it (never mid-line).
    sys.stdout.write(f"control plane on {url}\n")
    sys.stdout.flush()


def attach(app: typer.Typer) -> None:
    """Add ``controlplane`` to ``app``."""
    app.command("controlplane")(controlplane)
