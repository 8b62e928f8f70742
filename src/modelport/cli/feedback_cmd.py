"""Feedback commands: ``feedback import FILE`` (JSON lines or CSV) on the data directory.

The command works on the metadata database and the prediction log directly (like ``modelport
logs``), through the same service as ``POST /v2/feedback``: the same checks, the same lookup of
every request id in the prediction log, the same table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from modelport.cli._files import existing_file
from modelport.core.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from modelport.experiments.feedback import Feedback
    from modelport.service.feedback import FeedbackReceipt
    from modelport.service.feedback_forms import Entry

# Storage is imported by the command, not to parse options.

__all__ = ["attach", "feedback_app"]

feedback_app = typer.Typer(
    help="Feedback: the true labels or values of logged predictions, for experiments.",
    no_args_is_help=True,
)

_FORMS = ("jsonl", "csv")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}


@feedback_app.command("import")
def feedback_import(
    file: Annotated[
        Path, typer.Argument(help="JSON lines (.jsonl, .ndjson) or CSV (.csv) of feedback.")
    ],
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment", "-d", help="The deployment of rows that name none (CSV, JSON lines)."
        ),
    ] = None,
    form: Annotated[
        str | None,
        typer.Option("--format", help="jsonl or csv (default: from the file's suffix)."),
    ] = None,
    skip_unknown: Annotated[
        bool,
        typer.Option(
            "--skip-unknown",
            help="Store the rows whose request ids are logged and count the others, instead of "
            "refusing the whole file.",
        ),
    ] = False,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects", help="Write the rows whose request ids are not logged here (JSON lines)."
        ),
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="text (one line) or json.")
    ] = "text",
) -> None:
    """Store feedback from a file, all or nothing: any unknown request id stores nothing."""
    if output not in ("text", "json"):
        raise InvalidInput(f"--output {output!r}: expected text or json")
    path = existing_file(file, "FILE")
    chosen = _form(path, form)
    if rejects is not None and rejects.resolve() == path.resolve():
        raise InvalidInput("--rejects names the file being imported; give another file")
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import current_user, open_feedback, open_prediction_sink

    settings = checked_settings()
    with ExitStack() as stack:
        sink = open_prediction_sink(settings)
        stack.callback(sink.close)
        service = stack.enter_context(open_feedback(settings, sink))
        saved = None if rejects is None else stack.enter_context(rejects.open("w"))
        try:
            receipt = service.import_entries(
                lambda: _entries(path, chosen, deployment),
                current_user(settings),
                skip_unknown=skip_unknown,
                rejects=None if saved is None else lambda rows: _save(saved, rows),
            )
        except NotFound as exc:
            hint = "; --skip-unknown stores the others"
            if saved is not None:
                hint += f" (the unknown ones are in {rejects})"
            raise NotFound(exc.message + hint) from None
    _report(receipt, rejects, output)


def _form(path: Path, form: str | None) -> str:
    if form is not None:
        if form not in _FORMS:
            raise InvalidInput(f"--format {form!r}: expected jsonl or csv")
        return form
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise InvalidInput(
            f"cannot tell the format of {str(path)!r} from its suffix; give --format jsonl or "
            "--format csv"
        )
    return found


def _entries(path: Path, form: str, deployment: str | None) -> Iterator[Entry]:
    """The file's feedback, read lazily (a BOM at the start is ignored)."""
    from modelport.service.feedback_forms import iter_feedback_csv, iter_feedback_lines

    try:
        with path.open(encoding="utf-8-sig", newline="" if form == "csv" else None) as file:
            if form == "csv":
                yield from iter_feedback_csv(file, deployment)
            else:
                yield from iter_feedback_lines(file, deployment)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{str(path)!r} is not UTF-8 text ({exc})") from None


def _save(file: TextIO, rows: Sequence[tuple[str, Feedback]]) -> None:
    """Write rejected feedback as JSON lines that ``feedback import`` takes back."""
    import orjson

    for name, item in rows:
        file.write(
            f'{{"deployment":{orjson.dumps(name).decode()},'
            f'"request_id":{orjson.dumps(item.request_id).decode()},'
            f'"{item.kind}":{item.truth_json}}}\n'
        )


def _report(receipt: FeedbackReceipt, rejects: Path | None, output: str) -> None:
    if output == "json":
        import orjson

        payload: dict[str, Any] = {
            "accepted": receipt.accepted,
            "replaced": receipt.replaced,
            "unknown": receipt.unknown,
            "unknown_ids": list(receipt.unknown_ids),
        }
        typer.echo(orjson.dumps(payload).decode())
        return
    line = f"stored {receipt.accepted} feedback ({receipt.replaced} replaced an earlier one)"
    if receipt.unknown:
        line += f"; skipped {receipt.unknown} with unknown request ids"
        line += f" (written to {rejects})" if rejects is not None else ""
    typer.echo(line)


def attach(app: typer.Typer) -> None:
    """Add the feedback commands to ``app``."""
    app.add_typer(feedback_app, name="feedback")
