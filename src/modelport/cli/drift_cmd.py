"""Drift commands: ``drift profile NAME@VERSION --reference FILE`` and ``drift report DEPLOYMENT``.

A version registered with a ``--sample`` (or ``--reference``) has a reference data profile
already; ``drift profile`` makes one for a version registered without, or replaces it with one
made from more rows. It opens the version's artifact as serving does (signature and digests
verified), runs it over the rows, and stores the profile of its inputs and predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from modelport.cli._files import existing_file
from modelport.cli._quiet import held_output

__all__ = ["attach", "drift_app"]

drift_app = typer.Typer(
    help="Drift: reference data profiles of registered versions.", no_args_is_help=True
)


@drift_app.command("profile")
def drift_profile(
    ref: Annotated[str, typer.Argument(help="The version: NAME@VERSION or NAME@ALIAS.")],
    reference: Annotated[
        Path,
        typer.Option(help="Reference rows (.npy, .npz, .json, .csv), as a sample is given."),
    ],
) -> None:
    """Store the reference data profile of a registered version (replacing one it had)."""
    from modelport.cli._settings import checked_settings
    from modelport.core.refs import ModelRef
    from modelport.service.wiring import current_user, open_registrar

    existing_file(reference, "--reference")
    parsed = ModelRef.parse(ref)
    settings = checked_settings()
    registrar = open_registrar(settings)
    try:
        with held_output():
            stored = registrar.profile_version(parsed, reference, current_user(settings))
    finally:
        registrar.store.close()
    features = stored.profile.get("features", {})
    typer.echo(
        f"profiled {stored.name}@{stored.version}: {len(features)} features from "
        f"{stored.rows} rows ({stored.source})"
    )


@drift_app.command("report")
def drift_report(
    deployment: Annotated[str, typer.Argument(help="The deployment.")],
    window: Annotated[
        str, typer.Option(help="How far back from now (90m, 1h, 1d), or a start time.")
    ] = "1h",
    html: Annotated[
        Path | None,
        typer.Option(help="Also write a self-contained HTML report (a chart per feature)."),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            help="windows (the drift buckets gateways stored), log (the logged requests) or "
            "auto (windows when the window has any, else the log)."
        ),
    ] = "auto",
    limit: Annotated[
        int,
        typer.Option(min=1, help="With the log: newest answered requests of the window read."),
    ] = 200_000,
    output: Annotated[
        str, typer.Option("--output", "-o", help="table (readable) or json.")
    ] = "table",
) -> None:
    """Drift of a deployment's requests and predictions against each version's reference."""
    from datetime import UTC, datetime

    from modelport.cli._settings import checked_settings
    from modelport.cli._when import since
    from modelport.core.errors import InvalidInput
    from modelport.service.wiring import open_deployment_store, open_registrar

    if output not in ("table", "json"):
        raise InvalidInput(f"--output {output!r}: expected table or json")
    if source not in ("auto", "windows", "log"):
        raise InvalidInput(f"--source {source!r}: expected auto, windows or log")
    now = datetime.now(UTC)
    start = since(window, now, "--window")
    settings = checked_settings()
    with open_deployment_store(settings) as store:
        found = store.get(deployment).deployment
    registrar = open_registrar(settings)
    try:
        variants = _variants(settings, registrar.store, found, (start, now), source, limit)
    finally:
        registrar.store.close()
    from modelport.cli import _drift_view

    if html is not None:
        html.write_text(_drift_view.html(deployment, start, now, variants), encoding="utf-8")
    if output == "json":
        typer.echo(_drift_view.json_text(deployment, start, now, variants))
    else:
        _drift_view.table(deployment, start, now, variants)
    if html is not None and output != "json":
        typer.echo(f"wrote {html}")


def _variants(
    settings: Any,
    registry: Any,
    deployment: Any,
    window: tuple[Any, Any],
    source: str,
    limit: int,
) -> list[Any]:
    """The report's variants from the stored drift windows or from the prediction log."""
    from modelport.service.drift_report import drift_report as from_log
    from modelport.service.drift_report import windows_report
    from modelport.service.wiring import open_drift_store, open_prediction_sink

    if source != "log":
        with open_drift_store(settings) as store:
            variants = windows_report(store, registry, deployment, *window)
        if variants or source == "windows":
            return variants
    sink = open_prediction_sink(settings)
    try:
        return from_log(sink, registry, deployment, *window, limit)
    finally:
        sink.close()


def attach(app: typer.Typer) -> None:
    """Add the drift commands to ``app``."""
    app.add_typer(drift_app, name="drift")
