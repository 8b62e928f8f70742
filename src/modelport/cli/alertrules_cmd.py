"""Alert rule commands: ``alertrules list|show|delete`` (``apply -f`` takes AlertRule documents).

They work on the metadata database directly (embedded mode), through the same service the
control plane uses, so validation, the audit trail and the JSON shapes are the same:
``--output json`` (or ``yaml``) prints what ``GET /v1/alertrules`` returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelport.cli._output import checked_output, print_payload

if TYPE_CHECKING:
    from modelport.monitoring.alert_rules import StoredAlertRule
    from modelport.service.alert_rules import AlertRuleService

# Storage is imported by the commands that use it, not to parse options.

__all__ = ["alertrules_app", "attach"]

alertrules_app = typer.Typer(
    help="Alert rules: conditions on a deployment (latency SLO, errors, drift...) and receivers.",
    no_args_is_help=True,
)

_OUTPUT = typer.Option(
    "--output", "-o", help="table (readable), json or yaml (what the API returns)."
)
_NAME = typer.Argument(help="Alert rule name.")


@contextmanager
def _service() -> Iterator[tuple[AlertRuleService, str]]:
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import current_user, open_alert_rules

    settings = checked_settings()
    with open_alert_rules(settings) as service:
        yield service, current_user(settings)


def _describe(stored: StoredAlertRule) -> dict[str, Any]:
    from modelport.service.alert_rules import describe_rule

    return describe_rule(stored)


def condition_text(stored: StoredAlertRule) -> str:
    """The rule's condition in a few words (``latencySlo 0.25s@0.99``)."""
    condition = stored.rule.spec.condition
    kind = condition.kind
    fields = getattr(condition, kind).model_dump(by_alias=True)
    name = type(condition).model_fields[kind].alias or kind
    shown = ", ".join(f"{k}={v}" for k, v in fields.items() if not isinstance(v, list | dict))
    return f"{name} {shown}".strip()


@alertrules_app.command("list")
def alertrules_list(
    deployment: Annotated[
        str | None, typer.Option("--deployment", "-d", help="Only this deployment's rules.")
    ] = None,
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """List alert rules with their deployment, condition and severity."""
    form = checked_output(output)
    with _service() as (service, _):
        found = service.list(deployment)
    if form != "table":
        print_payload({"alertRules": [_describe(s) for s in found]}, form)
        return
    if not found:
        typer.echo("no alert rules yet; declare one in YAML and run: modelport apply -f FILE")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "deployment", "condition", "for", "severity", "generation", "updated")
    for stored in found:
        spec = stored.rule.spec
        table.add_row(
            stored.name,
            stored.deployment,
            condition_text(stored),
            f"{spec.for_:g}s",
            spec.severity,
            str(stored.generation),
            f"{stored.updated_at:%Y-%m-%d %H:%M} by {stored.updated_by}",
        )
    Console(highlight=False).print(table)


@alertrules_app.command("show")
def alertrules_show(name: Annotated[str, _NAME], output: Annotated[str, _OUTPUT] = "table") -> None:
    """Show one alert rule: its document, generation and who changed it last."""
    form = checked_output(output)
    with _service() as (service, _):
        stored = service.get(name)
    if form != "table":
        print_payload(_describe(stored), form)
        return
    import yaml

    typer.echo(
        f"# generation {stored.generation}, created {stored.created_at:%Y-%m-%d %H:%M} "
        f"by {stored.created_by}, updated {stored.updated_at:%Y-%m-%d %H:%M} by "
        f"{stored.updated_by}"
    )
    typer.echo(yaml.safe_dump(stored.rule.document(), sort_keys=False).rstrip())


@alertrules_app.command("delete")
def alertrules_delete(
    name: Annotated[str, _NAME], output: Annotated[str, _OUTPUT] = "table"
) -> None:
    """Delete an alert rule (its alerts stop being evaluated)."""
    form = checked_output(output)
    with _service() as (service, actor):
        removed = service.delete(name, actor)
    if form != "table":
        print_payload(_describe(removed), form)
        return
    typer.echo(f"alertrule/{removed.name} deleted (was generation {removed.generation})")


def attach(app: typer.Typer) -> None:
    """Add the alert rule commands to ``app``."""
    app.add_typer(alertrules_app, name="alertrules")
