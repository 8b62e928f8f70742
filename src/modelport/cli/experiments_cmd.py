"""Experiment commands: ``experiments list|show|pause|resume|abort|promote|...``.

They work on the metadata database directly (embedded mode), through the same service the
control plane uses: the same checks, audit entries and JSON shapes. ``modelport apply -f``
starts experiments (``kind: Experiment`` documents) beside deployments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from modelport.core.errors import InvalidInput

if TYPE_CHECKING:
    from modelport.experiments.experiment_store import StoredExperiment
    from modelport.service.experiments import ExperimentService

__all__ = ["attach", "experiments_app"]

experiments_app = typer.Typer(
    help="Experiments: canaries and A/B tests that promote or roll back on their own.",
    no_args_is_help=True,
)

_OUTPUT = typer.Option("--output", "-o", help="table (readable) or json (what the API returns).")
_NAME = typer.Argument(help="Experiment name.")


@contextmanager
def _service(evaluate: bool = False) -> Iterator[tuple[ExperimentService, str]]:
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import current_user, open_experiments

    settings = checked_settings()
    with open_experiments(settings, evaluate=evaluate) as service:
        yield service, current_user(settings)


def _json(output: str) -> bool:
    if output not in ("table", "json"):
        raise InvalidInput(f"--output {output!r}: expected table or json")
    return output == "json"


def _print_json(payload: Any) -> None:
    typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


@experiments_app.command("list")
def experiments_list(output: Annotated[str, _OUTPUT] = "table") -> None:
    """List experiments with their status and step."""
    from modelport.service.experiments import describe_experiment

    as_json = _json(output)
    with _service() as (service, _):
        found = service.list()
    if as_json:
        _print_json([describe_experiment(s) for s in found])
        return
    if not found:
        typer.echo("no experiments yet; declare one in YAML and run: modelport apply -f FILE")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "deployment", "compares", "status", "step", "started")
    for stored in found:
        spec = stored.experiment.spec
        steps = f"{stored.step + 1} of {len(spec.steps)}" if spec.steps else "-"
        table.add_row(
            stored.name,
            stored.deployment,
            f"{spec.treatment} vs {spec.control}",
            stored.status,
            steps,
            f"{stored.started_at:%Y-%m-%d %H:%M}",
        )
    Console(highlight=False).print(table)


@experiments_app.command("show")
def experiments_show(
    name: Annotated[str, _NAME],
    output: Annotated[str, _OUTPUT] = "table",
    decisions: Annotated[
        int, typer.Option("--decisions", min=1, help="How many recent decisions to list.")
    ] = 10,
) -> None:
    """Show an experiment: where it stands, its metrics per variant, its tests and decisions."""
    from modelport.service.experiments import describe_experiment

    as_json = _json(output)
    with _service() as (service, _):
        stored = service.get(name)
        recent = service.decisions(name, decisions)
    if as_json:
        _print_json(describe_experiment(stored, recent))
        return
    from modelport.cli._experiment_view import render

    render(stored, recent)


def _action(verb: str, done: str) -> Callable[[str, str], None]:
    def command(name: Annotated[str, _NAME], output: Annotated[str, _OUTPUT] = "table") -> None:
        from modelport.service.experiments import describe_experiment

        as_json = _json(output)
        with _service(evaluate=verb in ("promote", "evaluate")) as (service, actor):
            if verb == "evaluate":
                decision = service.evaluate(name)
                stored = service.get(name)
                if not as_json:
                    typer.echo(f"experiment/{name}: {decision.action}: {decision.reason}")
            else:
                act: Callable[..., StoredExperiment] = getattr(service, verb)
                stored = act(name, actor)
                if not as_json:
                    typer.echo(f"experiment/{name} {done} (status {stored.status})")
            if as_json:
                _print_json(describe_experiment(stored, service.decisions(name, 1)))

    return command


_ACTIONS: Sequence[tuple[str, str, str]] = (
    ("pause", "paused", "Stop evaluating an experiment; its traffic stays as it is."),
    ("resume", "resumed", "Evaluate a paused experiment again."),
    ("abort", "aborted", "End an experiment now: the control takes all the traffic."),
    (
        "promote",
        "promoted",
        "End an experiment now in the treatment's favour: all the traffic, and the alias moves.",
    ),
    (
        "acknowledge",
        "acknowledged",
        "Acknowledge a sample-ratio mismatch: decisions resume, counting traffic from now.",
    ),
    ("evaluate", "evaluated", "Evaluate an experiment now and act on the decision."),
    ("delete", "deleted", "Delete an experiment that has ended, with its decisions."),
)

for _verb, _done, _help in _ACTIONS:
    experiments_app.command(_verb, help=_help)(_action(_verb, _done))


def attach(app: typer.Typer) -> None:
    """Add the experiment commands to ``app``."""
    app.add_typer(experiments_app, name="experiments")
