"""``modelport experiments show``: an experiment as readable tables (rich)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelport.experiments.experiment_store import StoredDecision, StoredExperiment

__all__ = ["render"]


def render(stored: StoredExperiment, decisions: Sequence[StoredDecision]) -> None:
    """Print where the experiment stands, the newest decision's inputs and the decision list."""
    from rich.console import Console

    console = Console(highlight=False)
    spec = stored.experiment.spec
    step = f", step {stored.step + 1} of {len(spec.steps)}" if spec.steps else ""
    console.print(
        f"experiment [bold]{stored.name}[/bold] on deployment {stored.deployment}: "
        f"{spec.treatment} (treatment) vs {spec.control} (control)"
    )
    console.print(
        f"status {stored.status}{step}; started {stored.started_at:%Y-%m-%d %H:%M:%S}"
        + (f", ended {stored.ended_at:%Y-%m-%d %H:%M:%S}" if stored.ended_at else "")
    )
    guardrails = ", ".join(
        f"{g.metric}{f'[{g.class_}]' if g.class_ else ''} (tolerance {g.tolerance})"
        for g in spec.guardrails
    )
    console.print(
        f"primary {spec.primary.metric}; guardrails {guardrails or 'none'}; alpha {spec.alpha:g}; "
        f"minSamples {spec.min_samples}"
    )
    if not decisions:
        console.print("not evaluated yet")
        return
    latest = decisions[0]
    console.print(
        f"\nlatest decision ({latest.at:%Y-%m-%d %H:%M:%S}): [bold]{latest.decision}[/bold]: "
        f"{latest.reason}"
    )
    inputs = latest.inputs
    _metrics(console, inputs.get("arms", []))
    _tests(console, inputs.get("comparisons", []))
    _shadows(console, inputs.get("shadows", []))
    feedback = inputs.get("feedback")
    if feedback:
        console.print(
            f"feedback: {feedback.get('rows', 0)} rows, {feedback.get('unmatched', 0)} without "
            "a logged prediction in the window"
        )
    _history(console, decisions)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _interval(metric: dict[str, Any]) -> str:
    ci = metric.get("ci")
    value = _number(metric.get("value"))
    return value if not ci else f"{value} [{_number(ci[0])}, {_number(ci[1])}]"


def _metrics(console: Any, arms: Sequence[dict[str, Any]]) -> None:
    from rich.table import Table

    if not arms:
        return
    table = Table(title="metrics per variant (confidence intervals)", title_justify="left")
    table.add_column("metric")
    for arm in arms:
        table.add_column(f"{arm['variant']} (n={arm['requests']}, labelled {arm['labelled']})")
    names = list(arms[0]["metrics"])
    for name in names:
        table.add_row(name, *(_interval(arm["metrics"].get(name, {})) for arm in arms))
    console.print(table)


def _tests(console: Any, comparisons: Sequence[dict[str, Any]]) -> None:
    from rich.table import Table

    if not comparisons:
        return
    table = Table(title="sequential tests (treatment - control)", title_justify="left")
    for column in ("test", "metric", "control", "treatment", "difference", "p (always valid)"):
        table.add_column(column)
    table.add_column("alpha")
    table.add_column("verdict")
    for c in comparisons:
        extra = f" (limit {_number(c.get('threshold'))} ms)" if c.get("threshold") else ""
        table.add_row(
            c["role"],
            c["metric"] + extra,
            _number(c.get("control")),
            _number(c.get("treatment")),
            _number(c.get("difference")),
            _number(c.get("p_value")),
            _number(c.get("alpha")),
            c["verdict"],
        )
    console.print(table)


def _shadows(console: Any, shadows: Sequence[dict[str, Any]]) -> None:
    from rich.table import Table

    if not shadows:
        return
    table = Table(title="shadow comparisons", title_justify="left")
    for column in (
        "shadow", "pairs", "failures", "agreement", "score diff mean", "|score diff| p95",
        "latency diff mean ms", "latency diff p95 ms",
    ):  # fmt: skip
        table.add_column(column)
    for s in shadows:
        table.add_row(
            s["shadow"],
            str(s["pairs"]),
            str(s["failures"]),
            _interval(s["agreement"]),
            _number(s.get("score_diff_mean")),
            _number(s.get("score_diff_abs_p95")),
            _number(s.get("latency_diff_mean_ms")),
            _number(s.get("latency_diff_p95_ms")),
        )
    console.print(table)


def _history(console: Any, decisions: Sequence[StoredDecision]) -> None:
    from rich.table import Table

    table = Table(title="decisions, newest first", title_justify="left")
    table.add_column("at")
    table.add_column("decision")
    table.add_column("reason")
    for decision in decisions:
        table.add_row(f"{decision.at:%Y-%m-%d %H:%M:%S}", decision.decision, decision.reason)
    console.print(table)
