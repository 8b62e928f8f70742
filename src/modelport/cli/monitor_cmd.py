"""``modelport monitor export``: stored alert rules as Prometheus rules, and a Grafana dashboard.

For teams that run their own Prometheus and Grafana (the Prometheus Operator on Kubernetes):
``prometheusrule.yaml`` is a ``PrometheusRule`` resource to ``kubectl apply``, with each stored
AlertRule translated to PromQL over the metrics modelport exposes, and
``grafana-dashboard.json`` a dashboard to import. The translation is
:mod:`modelport.monitoring.export`; the bucket edges and the batch queue's capacity it needs
come from this process's settings (``monitoring.slo_latency_seconds``,
``batching.max_queue_rows``), which should be those of the serving processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from modelport.monitoring.alert_rules import StoredAlertRule

__all__ = ["attach", "monitor_app"]

monitor_app = typer.Typer(
    help="Monitoring: Prometheus alert rules and a Grafana dashboard for your own stack.",
    no_args_is_help=True,
)

RULES_FILE = "prometheusrule.yaml"
DASHBOARD_FILE = "grafana-dashboard.json"

_HEADER = """\
# Written by `modelport monitor export` from the stored alert rules, for the Prometheus
# Operator (kubectl apply -f {file}). The rules read the metrics modelport exposes.
"""


@monitor_app.command("export")
def monitor_export(
    deployment: Annotated[
        str | None,
        typer.Option("--deployment", "-d", help="Only this deployment's rules (and dashboard)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder the two files are written to.")] = Path(
        "."
    ),
) -> None:
    """Write prometheusrule.yaml and grafana-dashboard.json for the stored alert rules."""
    import orjson
    import yaml

    from modelport.cli._settings import checked_settings
    from modelport.core.errors import InvalidInput, NotFound
    from modelport.monitoring import latency_buckets
    from modelport.monitoring.export import ExportContext, grafana_dashboard, prometheus_rule
    from modelport.service.wiring import open_alert_rules

    settings = checked_settings()
    with open_alert_rules(settings) as service:
        stored = service.list(deployment)
        models = {
            d.name: sorted({v.ref.name for v in d.deployment.spec.variants})
            for d in service.deployments.list()
        }
    if deployment is not None and deployment not in models:
        raise NotFound(f"no deployment {deployment!r}; see modelport deployments list")
    kept = _existing(stored, models)
    context = ExportContext(
        latency_buckets(settings.monitoring.slo_latency_seconds),
        settings.batching.max_queue_rows,
        models,
    )
    name = "modelport" if deployment is None else f"modelport-{deployment}"
    rules = prometheus_rule([s.rule for s in kept], context, name=name)
    dashboard = grafana_dashboard(deployment)
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"--out {str(out)!r} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    rules_path, dashboard_path = out / RULES_FILE, out / DASHBOARD_FILE
    rules_path.write_text(
        _HEADER.format(file=RULES_FILE) + yaml.safe_dump(rules, sort_keys=False, width=100_000),
        encoding="utf-8",
    )
    dashboard_path.write_bytes(orjson.dumps(dashboard, option=orjson.OPT_INDENT_2) + b"\n")
    groups = rules["spec"]["groups"]
    count = sum(len(g["rules"]) for g in groups)
    typer.echo(f"wrote {rules_path}: {count} alerting rules in {len(groups)} groups")
    typer.echo(f"wrote {dashboard_path}: {len(dashboard['panels'])} panels")


def _existing(stored: list[StoredAlertRule], models: dict[str, list[str]]) -> list[StoredAlertRule]:
    """The rules whose deployment exists; the others are named on stderr and left out."""
    kept = []
    for rule in stored:
        if rule.deployment in models:
            kept.append(rule)
        else:
            typer.echo(
                f"warning: alert rule {rule.name!r} left out: its deployment "
                f"{rule.deployment!r} no longer exists (modelport alertrules delete {rule.name})",
                err=True,
            )
    return kept


def attach(app: typer.Typer) -> None:
    """Add ``monitor export`` to ``app``."""
    app.add_typer(monitor_app, name="monitor")
