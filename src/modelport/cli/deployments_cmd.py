"""Deployment commands: ``apply -f FILE`` and ``deployments list|show|delete``.

``apply`` takes Deployment, Experiment and AlertRule documents: every document is validated
first (an alert rule's deployment must exist or be in the files), then the deployments are
applied, then the alert rules and the experiments (which may name a deployment of the same
file).

They work on the metadata database directly (embedded mode), through the same service the
control plane uses, so validation, registry checks (and, for ``apply``, the replicas' health
probe), the audit trail and the JSON shapes are the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
import typer

from modelport.cli._files import existing_file
from modelport.core.errors import InvalidInput

if TYPE_CHECKING:
    from modelport.core.documents import Document
    from modelport.core.settings import Settings
    from modelport.experiments.store import Applied, StoredDeployment
    from modelport.features.registry import StoredDefinition
    from modelport.monitoring.alert_rules import Applied as AppliedRule
    from modelport.service.deployments import DeploymentService
    from modelport.service.experiments import AppliedExperiment

# Storage is imported by the commands that use it, not to parse options.

__all__ = ["attach", "deployments_app"]

deployments_app = typer.Typer(
    help="Deployments: a public model name in front of weighted and shadow variants.",
    no_args_is_help=True,
)

Output = Literal["table", "json"]

_OUTPUT = typer.Option("--output", "-o", help="table (readable) or json (what the API returns).")


@contextmanager
def _service() -> Iterator[tuple[DeploymentService, str, Settings]]:
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import current_user, open_deployments

    settings = checked_settings()
    with open_deployments(settings) as service:
        yield service, current_user(settings), settings


def _summary(stored: StoredDeployment) -> dict[str, Any]:
    from modelport.service.deployments import describe

    return describe(stored)


def _print_json(payload: Any) -> None:
    typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


def _split(stored: StoredDeployment) -> str:
    return ", ".join(
        f"{v.name} {v.model} "
        + (f"shadow {v.mirror:g}%" if v.role == "shadow" else f"{v.weight:g}%")
        for v in stored.deployment.spec.variants
    )


def _checked_output(output: str) -> Output:
    if output not in ("table", "json"):
        raise InvalidInput(f"--output {output!r}: expected table or json")
    return "json" if output == "json" else "table"


def apply(
    files: Annotated[
        list[Path],
        typer.Option(
            "--filename",
            "-f",
            help="YAML or JSON file of Deployment, Experiment, AlertRule, Entity, FeatureView "
            "and FeatureService documents (repeatable).",
        ),
    ],
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """Create or replace the deployments, experiments, alert rules and features a file declares.

    Every document is checked before anything is written (feature definitions first, since
    deployments may use them).
    """
    from modelport.core.experiment import parse_experiment
    from modelport.server.controlplane.probe import HttpReplicaProbe
    from modelport.service.wiring import open_alert_rules, open_experiments

    form = _checked_output(output)
    documents = _read(files)
    experiments = [d for d in documents if d.get("kind") == "Experiment"]
    rules = [d for d in documents if d.get("kind") == "AlertRule"]
    features = [d for d in documents if d.get("kind") in _FEATURE_KINDS]
    others = ("Experiment", "AlertRule", *_FEATURE_KINDS)
    deployments = [d for d in documents if d.get("kind") not in others]
    defined = _apply_features(features) if features else []
    for number, document in enumerate(experiments, start=1):
        try:
            parse_experiment(document)
        except InvalidInput as exc:
            raise InvalidInput(f"experiment document {number}: {exc.message}") from None
    pending = {_name_of(d) for d in deployments} - {None}
    with _service() as (service, actor, settings), ExitStack() as stack:
        alerting = stack.enter_context(open_alert_rules(settings)) if rules else None
        if alerting is not None:  # checked before any deployment is written
            alerting.check(rules, pending={str(name) for name in pending})
        probe = HttpReplicaProbe.from_settings(settings)
        results = service.apply(deployments, actor, probe=probe) if deployments else []
        alerted = alerting.apply(rules, actor) if alerting is not None else []
    started = []
    if experiments:
        with open_experiments(settings, evaluate=False) as experiment_service:
            started = experiment_service.apply(experiments, actor)
    _report(form, results, started, alerted, defined)


_FEATURE_KINDS = ("Entity", "FeatureView", "FeatureService")


def _apply_features(documents: list[Document]) -> list[StoredDefinition]:
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import current_user, open_features

    settings = checked_settings()
    with open_features(settings) as features:
        return features.apply_documents(documents, current_user(settings))


def _read(files: Sequence[Path]) -> list[Document]:
    from modelport.core.documents import load_documents

    documents = []
    for path in files:
        existing_file(path, "-f")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"-f {str(path)!r}: not UTF-8 text") from None
        documents += [
            _with_absolute_source(d, path.parent) for d in load_documents(text, str(path))
        ]
    return documents


def _with_absolute_source(document: Document, folder: Path) -> Document:
    """A FeatureView document with its relative file path made absolute against ``folder``.

    The path is its file source's, or its push source's batch source's.
    """
    if document.get("kind") != "FeatureView":
        return document
    spec = document.get("spec")
    source = spec.get("source") if isinstance(spec, dict) else None
    push = source.get("push") if isinstance(source, dict) else None
    if isinstance(push, dict):
        source = push.get("batchSource")
    file = source.get("file") if isinstance(source, dict) else None
    if not isinstance(file, dict):
        return document  # validation says what is wrong
    path = file.get("path")
    if isinstance(path, str) and "://" not in path and not Path(path).expanduser().is_absolute():
        file["path"] = str((folder / path).resolve())
    return document
    spec = document.get("spec")
    source = spec.get("source") if isinstance(spec, dict) else None
    file = source.get("file") if isinstance(source, dict) else None
    if not isinstance(file, dict):
        return document  # validation says what is wrong
    path = file.get("path")
    if isinstance(path, str) and "://" not in path and not Path(path).expanduser().is_absolute():
        file["path"] = str((folder / path).resolve())
    return document


def _name_of(document: Document) -> str | None:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def _report(
    form: Output,
    results: Sequence[Applied],
    started: Sequence[AppliedExperiment],
    alerted: Sequence[AppliedRule],
    defined: Sequence[StoredDefinition],
) -> None:
    """Print what ``apply`` did: one line per resource, or the JSON list."""
    if form == "json":
        from modelport.service.alert_rules import describe_rule
        from modelport.service.features import describe_definition

        _print_json(
            [describe_definition(d) for d in defined]
            + [{"changed": r.changed, **_summary(r.stored)} for r in results]
            + [
                {"changed": e.changed, "kind": "Experiment", "name": e.stored.name,
                 "status": e.stored.status, "generation": e.stored.generation}
                for e in started
            ]
            + [{"changed": a.changed, "kind": "AlertRule", **describe_rule(a.stored)}
               for a in alerted]
        )  # fmt: skip
        return
    for definition in defined:
        typer.echo(
            f"{definition.kind.lower()}/{definition.name} applied "
            f"(generation {definition.generation})"
        )
    for result in results:
        stored = result.stored
        typer.echo(f"deployment/{stored.name} {_verb(result)} (generation {stored.generation})")
    for applied in started:
        verb = "started" if applied.created else "configured" if applied.changed else "unchanged"
        typer.echo(f"experiment/{applied.stored.name} {verb} (status {applied.stored.status})")
    for rule in alerted:
        typer.echo(
            f"alertrule/{rule.stored.name} {_verb(rule)} (generation {rule.stored.generation})"
        )


def _verb(applied: Applied | AppliedRule) -> str:
    if applied.previous is None:
        return "created"
    return "configured" if applied.changed else "unchanged"


@deployments_app.command("list")
def deployments_list(output: Annotated[str, _OUTPUT] = "table") -> None:
    """List deployments with their split and generation."""
    form = _checked_output(output)
    with _service() as (service, _, _):
        found = service.list()
    if form == "json":
        _print_json([_summary(s) for s in found])
        return
    if not found:
        typer.echo("no deployments yet; declare one in YAML and run: modelport apply -f FILE")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "variants", "generation", "updated")
    for stored in found:
        table.add_row(
            stored.name,
            _split(stored),
            str(stored.generation),
            f"{stored.updated_at:%Y-%m-%d %H:%M} by {stored.updated_by}",
        )
    Console(highlight=False).print(table)


@deployments_app.command("show")
def deployments_show(
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """Show one deployment: its document, generation and who changed it last."""
    form = _checked_output(output)
    with _service() as (service, _, _):
        stored = service.get(name)
    if form == "json":
        _print_json(_summary(stored))
        return
    import yaml

    typer.echo(
        f"# generation {stored.generation}, created {stored.created_at:%Y-%m-%d %H:%M} "
        f"by {stored.created_by}, updated {stored.updated_at:%Y-%m-%d %H:%M} by "
        f"{stored.updated_by}"
    )
    typer.echo(yaml.safe_dump(stored.deployment.document(), sort_keys=False).rstrip())


@deployments_app.command("delete")
def deployments_delete(
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """Delete a deployment (its variants' models stay registered)."""
    form = _checked_output(output)
    with _service() as (service, actor, _):
        removed = service.delete(name, actor)
    if form == "json":
        _print_json(_summary(removed))
        return
    typer.echo(f"deployment/{removed.name} deleted (was generation {removed.generation})")


def attach(app: typer.Typer) -> None:
    """Add the deployment commands to ``app``."""
    app.command("apply")(apply)
    app.add_typer(deployments_app, name="deployments")
