"""Drift commands: ``drift profile NAME@VERSION --reference FILE``.

A version registered with a ``--sample`` (or ``--reference``) has a reference data profile
already; ``drift profile`` makes one for a version registered without, or replaces it with one
made from more rows. It opens the version's artifact as serving does (signature and digests
verified), runs it over the rows, and stores the profile of its inputs and predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


def attach(app: typer.Typer) -> None:
    """Add the drift commands to ``app``."""
    app.add_typer(drift_app, name="drift")
