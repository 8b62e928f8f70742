"""Alert commands: ``alerts list``.

It reads the metadata database directly (embedded mode), through the same service as the
control plane's ``GET /v1/alerts``: ``-o json`` prints exactly what that route answers. The
control plane's ``evaluate-alerts`` job keeps the alerts current; rules are applied with
``modelport apply -f`` (``kind: AlertRule`` documents).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

from modelport.core.errors import InvalidInput

__all__ = ["alerts_app", "attach"]

alerts_app = typer.Typer(
    help="Alerts: what the alert rules found (firing, pending, recently resolved).",
    no_args_is_help=True,
)

_OUTPUT = typer.Option("--output", "-o", help="table (readable) or json (what the API returns).")


@alerts_app.command("list")
def alerts_list(
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="Only this deployment's alerts.")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Add the alerts resolved in the last 24 hours.")
    ] = False,
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """List firing and pending alerts with their labels, since when, value and notifications."""
    from modelport.cli._settings import checked_settings
    from modelport.service.alert_jobs import open_alerts

    if output not in ("table", "json"):
        raise InvalidInput(f"--output {output!r}: expected table or json")
    with open_alerts(checked_settings()) as service:
        listed = service.list_alerts(deployment, everything)
    if output == "json":
        typer.echo(orjson.dumps(listed, option=orjson.OPT_INDENT_2).decode())
        return
    alerts: list[dict[str, Any]] = listed["alerts"]
    if not alerts:
        typer.echo(
            "no alerts" + ("" if everything else " firing or pending")
            + (f" on {deployment}" if deployment else "")
        )  # fmt: skip
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("alert", "state", "labels", "since", "value", "notifications pending")
    for alert in alerts:
        labels = {
            k: v
            for k, v in alert["labels"].items()
            if k not in ("alertname", "deployment", "severity")
        }
        table.add_row(
            f"{alert['rule']} ({alert['deployment']}, {alert['labels'].get('severity', '')})",
            alert["state"],
            ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-",
            (alert["since"] or "-").replace("T", " ")[:19],
            "-" if alert["value"] is None else f"{alert['value']:.4g}",
            str(alert["pendingNotifications"]),
        )
    Console(highlight=False).print(table)


def attach(app: typer.Typer) -> None:
    """Add the alert commands to ``app``."""
    app.add_typer(alerts_app, name="alerts")
