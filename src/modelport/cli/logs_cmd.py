"""Prediction log commands: ``logs query`` (table, JSON lines, CSV, Parquet), ``logs prune``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from modelport.cli import _when
from modelport.core.errors import InvalidInput

# pyarrow is imported by the commands that use it, not to parse options.

__all__ = ["attach", "logs_app"]

logs_app = typer.Typer(
    help="The prediction log: query the logged predictions, apply the retention rules.",
    no_args_is_help=True,
)

_FORMS = ("table", "json", "csv", "parquet")


@logs_app.command("query")
def logs_query(
    deployment: Annotated[
        str | None, typer.Option("--deployment", "-d", help="Only this deployment's predictions.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only predictions from this long ago (1h, 30m, 7d) or since a time."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Only predictions before this time, or before this long ago (1h)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many, the newest (table and json).")
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="table, json (one object per line), csv, or parquet (binary: redirect it).",
        ),
    ] = "table",
) -> None:
    """Print logged predictions, oldest first."""
    if output not in _FORMS:
        raise InvalidInput(f"--output {output!r}: expected one of {', '.join(_FORMS)}")
    from modelport.cli._settings import checked_settings
    from modelport.core.clock import SystemClock
    from modelport.service.wiring import open_prediction_sink

    settings = checked_settings()
    start, end = _when.time_range(since, until, SystemClock().now())
    sink = open_prediction_sink(settings)
    try:
        # With an end, the newest `limit` before it: read to the end, then keep them.
        table = sink.read(deployment, start, limit if end is None else None)
    finally:
        sink.close()
    if end is not None:
        table = _before(table, end, limit)
    if output in ("parquet", "csv"):
        _write_binary(table, output)
    elif output == "json":
        import orjson

        for row in table.to_pylist():
            typer.echo(orjson.dumps(row).decode())
    else:
        _print_table(table)


@logs_app.command("prune")
def logs_prune() -> None:
    """Delete what is beyond the retention settings (age, then total size), oldest days first."""
    from modelport.cli._settings import checked_settings
    from modelport.core.clock import SystemClock
    from modelport.service.wiring import open_prediction_sink

    settings = checked_settings()
    rules = settings.predictions
    max_age_s = rules.retention_days * 86_400 if rules.retention_days is not None else None
    sink = open_prediction_sink(settings)
    try:
        pruned = sink.prune(SystemClock().now(), max_age_s, rules.max_bytes)
    finally:
        sink.close()
    count = len(pruned.removed)
    n = pruned.records
    records = "" if n is None else f" ({n} record{'s' if n != 1 else ''})"
    typer.echo(f"deleted {count} {pruned.unit}{'s' if count != 1 else ''}{records}")


def _before(table: Any, end: Any, limit: int | None) -> Any:
    """The rows of ``table`` answered before ``end``, the newest ``limit`` of them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kept = table.filter(pc.less(table["time"], pa.scalar(end, pa.timestamp("us", "UTC"))))
    if limit is not None and kept.num_rows > limit:
        kept = kept.slice(kept.num_rows - limit)
    return kept


def _write_binary(table: Any, form: str) -> None:
    """Write ``table`` to standard output as Parquet or CSV bytes."""
    import io

    buffer = io.BytesIO()
    if form == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, buffer, compression="zstd")
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, buffer)
    sys.stdout.buffer.write(buffer.getvalue())
    sys.stdout.buffer.flush()


def _print_table(table: Any) -> None:
    if table.num_rows == 0:
        typer.echo("no predictions logged (for this deployment and time)")
        return
    from rich.console import Console
    from rich.table import Table

    shown = Table("time", "deployment", "variant", "version", "ms", "request id", "outputs")
    for row in table.to_pylist():
        shown.add_row(
            f"{row['time']:%Y-%m-%d %H:%M:%S.%f}"[:-3],
            row["deployment"],
            row["variant"] + (" (shadow)" if row["shadow"] else ""),
            row["model_version"],
            f"{row['latency_ms']:.2f}",
            row["request_id"],
            row["outputs"] if len(row["outputs"]) <= 60 else row["outputs"][:57] + "...",
        )
    Console(highlight=False).print(shown)


def attach(app: typer.Typer) -> None:
    """Add the prediction log commands to ``app``."""
    app.add_typer(logs_app, name="logs")
