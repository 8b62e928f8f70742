"""``modelport serve``: host registered versions or artifact files over REST (OIP v2)."""

from __future__ import annotations

from typing import Annotated

import typer

from modelport.core.errors import ConfigError
from modelport.core.settings import load_settings
from modelport.server.rest.serve import run_server
from modelport.service.registration import Registrar
from modelport.service.wiring import ServeTarget, build_dataplane, open_registrar

__all__ = ["attach"]


def serve(
    models: Annotated[
        list[str],
        typer.Argument(
            help="NAME, NAME@VERSION, NAME@ALIAS (registered), an artifact file or module:Class "
            "(with --name), or SERVED=ANY-OF-THOSE to choose the served name.",
            show_default=False,
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="Served name for an artifact file (one artifact only).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind [default: 127.0.0.1].")] = None,
    port: Annotated[
        int | None, typer.Option(help="REST port; 0 picks a free one [default: 8080].")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or gpu [default: cpu].")] = None,
) -> None:
    """Serve models over REST (Open Inference Protocol v2) until interrupted."""
    settings = load_settings()
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update=overrides)}
        )
    if device is not None:
        if device not in ("cpu", "gpu"):
            raise ConfigError(f"--device {device!r}: expected cpu or gpu")
        runtime = settings.runtime.model_copy(update={"device": device})
        settings = settings.model_copy(update={"runtime": runtime})
    targets = [ServeTarget(spec) for spec in models]
    direct = [t for t in targets if t.is_direct()]
    if name is not None:
        if len(direct) != 1 or direct[0].name is not None:
            raise ConfigError(
                "--name names one artifact; give exactly one artifact with it, "
                "or name each one as NAME=ARTIFACT"
            )
        direct[0].name = name
    registrar: Registrar | None = None
    if len(direct) < len(targets):
        registrar = open_registrar(settings)
    dataplane = build_dataplane(settings, targets, registrar)
    dataplane.repository.load_all()
    for model in dataplane.repository:
        print(f"loaded {model.source.name} version {model.source.version} ({model.platform})")
    run_server(
        settings.server,
        dataplane,
        on_listening=lambda url: print(f"serving on {url}", flush=True),
    )


def attach(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve)
