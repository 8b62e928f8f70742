"""Registry commands: ``register``, ``models list|show|archive``, ``alias set|remove|history``."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from modelport.cli._quiet import held_output
from modelport.core.errors import ConfigError, InvalidInput
from modelport.core.refs import ModelRef

if TYPE_CHECKING:
    from rich.console import Console

    from modelport.registry import MetadataStore
    from modelport.registry.records import AliasEvent, ModelVersion

# Only the options are declared at import: storage, runtimes and cryptography are imported by the
# commands that use them, so `modelport --help` and `models list` start fast.

__all__ = ["attach"]


@cache
def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _metadata_store() -> MetadataStore:
    """Open the registry's metadata store only: what the read-only commands need."""
    from modelport.cli._settings import checked_settings
    from modelport.core.clock import SystemClock
    from modelport.registry import MetadataStore

    settings = checked_settings()
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return MetadataStore(settings.resolved_database_url(), SystemClock())


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--{what} {item!r}: expected KEY=VALUE")
        pairs[key] = value
    return pairs


def _metrics(values: list[str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for key, value in _pairs(values, "metric").items():
        try:
            metrics[key] = float(value)
        except ValueError:
            raise ConfigError(f"--metric {key}={value!r}: the value must be a number") from None
    return metrics


def version_dict(v: ModelVersion) -> dict[str, Any]:
    """Return a version as plain JSON-ready data."""
    return {
        "name": v.name,
        "version": v.version,
        "status": v.status,
        "aliases": list(v.aliases),
        "framework": v.framework,
        "entrypoint": v.entrypoint,
        "artifact": {
            "digest": v.artifact_digest,
            "size": v.artifact_size,
            "filename": v.artifact_filename,
        },
        "signature": v.signature.to_dict() if v.signature else None,
        "serving": (
            {"framework": v.serving.framework, "digest": v.serving.digest, "size": v.serving.size}
            if v.serving is not None
            else None
        ),
        "compile_report": v.compile_report.to_dict() if v.compile_report is not None else None,
        "jurisdiction": v.jurisdiction,
        "signed_by": (
            {"identity": v.signer.identity, "key_id": v.signer.key_id}
            if v.signer is not None
            else None
        ),
        "tags": v.tags,
        "metrics": v.metrics,
        "description": v.description,
        "lineage": {
            "registered_by": v.lineage.registered_by,
            "training_data_digest": v.lineage.training_data_digest,
            "code_version": v.lineage.code_version,
            "parent_version": v.lineage.parent_version,
        },
        "created_at": v.created_at.isoformat(),
    }


def _event_dict(e: AliasEvent) -> dict[str, Any]:
    return {
        "name": e.name,
        "alias": e.alias,
        "version": e.version,
        "previous_version": e.previous_version,
        "actor": e.actor,
        "at": e.at.isoformat(),
    }


def _print_json(payload: Any) -> None:
    typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


def register(
    name: Annotated[str, typer.Argument(help="Model name (lowercase, digits, '.', '_', '-').")],
    artifact: Annotated[
        str,
        typer.Argument(
            help="Artifact file (.onnx, .joblib/.pkl, .json/.ubj, .txt) or file.py:Class."
        ),
    ],
    sample: Annotated[
        Path | None,
        typer.Option(help="Sample input (.npy, .npz, .json, .csv) to infer the signature."),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE tag; repeatable.")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="KEY=NUMBER metric; repeatable.")] = None,
    description: Annotated[str, typer.Option(help="Free-text description.")] = "",
    framework: Annotated[
        str | None, typer.Option(help="Runtime to use when the file name does not tell.")
    ] = None,
    training_data: Annotated[
        Path | None, typer.Option(help="Training data file; its SHA-256 is recorded in lineage.")
    ] = None,
    code_version: Annotated[
        str | None, typer.Option(help="Code version (for example a git commit) for lineage.")
    ] = None,
    parent: Annotated[int | None, typer.Option(help="Version this one derives from.")] = None,
    compile_onnx: Annotated[
        bool,
        typer.Option(
            "--compile/--no-compile",
            help="Compile a scikit-learn model to ONNX and serve that when it is equivalent on "
            "the --sample (the original is kept as fallback).",
        ),
    ] = True,
    jurisdiction: Annotated[
        str,
        typer.Option(
            help="Where the version's data may live (e.g. eu, us); bound into the encryption "
            "of its artifacts."
        ),
    ] = "global",
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Reference rows for drift detection (the --sample formats, more rows); "
            "default: the sample."
        ),
    ] = None,
) -> None:
    """Register a new version of NAME from ARTIFACT."""
    from modelport.cli._settings import checked_settings
    from modelport.service.registration import RegistrationRequest
    from modelport.service.wiring import current_user, open_registrar

    settings = checked_settings()
    request = RegistrationRequest(
        name=name,
        artifact=artifact,
        registered_by=current_user(settings),
        framework=framework,
        sample=sample,
        tags=_pairs(tag or [], "tag"),
        metrics=_metrics(metric or []),
        description=description,
        training_data=training_data,
        code_version=code_version,
        parent_version=parent,
        compile=compile_onnx,
        jurisdiction=jurisdiction,
        reference=reference,
    )
    # Loading the artifact to check it may make its framework print; an error stays one line.
    with held_output():
        version = open_registrar(settings).register(request)
    # One unbroken line, printed as is: a converter's reason can be long and hold square brackets
    # that rich would take for markup.
    _console().print(
        f"registered {version.name}@{version.version} ({_registered_detail(version)})",
        markup=False,
        soft_wrap=True,
    )


def _registered_detail(version: ModelVersion) -> str:
    """Say how the new version will be served: compiled (and how close), or why not."""
    report = version.compile_report
    if report is None:
        return (
            f"{version.framework}, {version.artifact_digest[:19]}..., {version.artifact_size} bytes"
        )
    if version.serving is None:
        return f"{version.framework}, not compiled: {report.reason or 'unknown reason'}"
    detail = f"{version.framework}, served as {version.serving.framework}"
    if report.max_abs_diff is not None:
        outputs = version.signature.output_names() if version.signature else ()
        symbol = "Δp" if "predict_proba" in outputs else "Δ"  # probabilities, else values
        detail += f", max |{symbol}| {report.max_abs_diff:.2g}"
    return detail


models_app = typer.Typer(help="List, show and archive registered models.", no_args_is_help=True)


@models_app.command("list")
def models_list(
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List registered models with their latest version and aliases."""
    with _metadata_store() as store:
        summaries = store.list_models()
    if json:
        _print_json(
            [
                {
                    "name": s.name,
                    "latest_version": s.latest_version,
                    "versions": s.version_count,
                    "active_versions": s.active_count,
                    "aliases": s.aliases,
                    "updated_at": s.updated_at.isoformat(),
                }
                for s in summaries
            ]
        )
        return
    if not summaries:
        _console().print("no models registered yet; add one with: modelport register NAME ARTIFACT")
        return
    from rich.table import Table

    table = Table("name", "latest", "versions", "aliases", "updated")
    for s in summaries:
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(s.aliases.items()))
        table.add_row(
            s.name,
            str(s.latest_version),
            str(s.version_count),
            aliases,
            s.updated_at.strftime("%Y-%m-%d %H:%M"),
        )
    _console().print(table)


@models_app.command("show")
def models_show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one version (NAME@VERSION or NAME@ALIAS), or every version of NAME."""
    parsed = ModelRef.parse(ref)
    with _metadata_store() as store:
        if parsed.version is None and parsed.alias is None:
            versions = store.list_versions(parsed.name)
        else:
            one = store.resolve(parsed)
    if parsed.version is None and parsed.alias is None:
        if json:
            _print_json([version_dict(v) for v in versions])
            return
        from rich.table import Table

        table = Table("version", "status", "aliases", "framework", "digest", "created", "by")
        for v in versions:
            table.add_row(
                str(v.version),
                v.status,
                ", ".join(v.aliases),
                v.framework,
                v.artifact_digest[:19],
                v.created_at.strftime("%Y-%m-%d %H:%M"),
                v.lineage.registered_by,
            )
        _console().print(table)
        return
    _print_json(version_dict(one))


@models_app.command("archive")
def models_archive(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to archive.")],
) -> None:
    """Archive a version: it can no longer be served (it must not be behind an alias)."""
    parsed = ModelRef.parse(ref)
    if parsed.version is None:
        raise InvalidInput(f"archive needs NAME@VERSION with a version number, got {ref!r}")
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import current_user, open_registrar

    settings = checked_settings()
    version = open_registrar(settings).archive(parsed.name, parsed.version, current_user(settings))
    _console().print(f"archived {version.name}@{version.version}")


alias_app = typer.Typer(
    help="Point aliases (champion, challenger, ...) at versions.", no_args_is_help=True
)


@alias_app.command("set")
def alias_set(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, for example champion.")],
    version: Annotated[int, typer.Argument(help="Version number the alias should point at.")],
) -> None:
    """Point ALIAS of NAME at VERSION (recorded in the alias history)."""
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import current_user, open_registrar

    settings = checked_settings()
    event = open_registrar(settings).set_alias(name, alias, version, current_user(settings))
    moved = f" (was {event.previous_version})" if event.previous_version is not None else ""
    _console().print(f"{name}@{alias} -> {event.version}{moved}")


@alias_app.command("remove")
def alias_remove(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to remove.")],
) -> None:
    """Remove ALIAS from NAME."""
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import current_user, open_registrar

    settings = checked_settings()
    event = open_registrar(settings).remove_alias(name, alias, current_user(settings))
    _console().print(f"removed {name}@{alias} (was {event.previous_version})")


@alias_app.command("history")
def alias_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str | None, typer.Argument(help="Only this alias.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show who moved the aliases of NAME, and when."""
    with _metadata_store() as store:
        events = store.alias_history(name, alias)
    if json:
        _print_json([_event_dict(e) for e in events])
        return
    from rich.table import Table

    table = Table("at", "alias", "from", "to", "by")
    for e in events:
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.alias,
            "-" if e.previous_version is None else str(e.previous_version),
            "-" if e.version is None else str(e.version),
            e.actor,
        )
    _console().print(table)


def attach(app: typer.Typer) -> None:
    """Add the registry commands to ``app``."""
    app.command("register")(register)
    app.add_typer(models_app, name="models")
    app.add_typer(alias_app, name="alias")
