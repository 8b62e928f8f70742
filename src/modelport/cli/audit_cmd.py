"""Audit commands: ``audit verify``, ``audit list``, ``audit export`` and ``audit checkpoint``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from modelport.cli import _when
from modelport.cli._files import existing_file
from modelport.core.errors import ConfigError, IntegrityError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from modelport.security.store import SecurityStore

__all__ = ["attach", "audit_app"]

audit_app = typer.Typer(
    help=(
        "The tamper-evident audit log: check its hash chain against the signed checkpoints, "
        "list and export entries."
    ),
    no_args_is_help=True,
)

# The commands import the store, the settings, orjson and rich when they run, so that loading
# this module (for `modelport --help`) stays cheap.


def _store() -> SecurityStore:
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import open_security_store

    return open_security_store(checked_settings())


def _public_keys(paths: list[Path]) -> list[Ed25519PublicKey]:
    from modelport.security.signing import load_public_key

    return [load_public_key(existing_file(path, "--public-key")) for path in paths]


@audit_app.command("verify")
def audit_verify(
    json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    public_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--public-key",
            help=(
                "Also accept checkpoints signed by this Ed25519 public key (PEM); give a copy "
                "kept outside the data directory. Repeatable."
            ),
        ),
    ] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            "--checkpoints",
            help=(
                "Check against this checkpoint file (an `audit export --checkpoints` copy kept "
                "elsewhere) instead of the data directory's."
            ),
        ),
    ] = None,
) -> None:
    """Check the audit log's hash chain and signed checkpoints; exit non-zero naming each problem.

    Reported by name: edited, deleted, inserted, reordered and truncated entries, entries
    re-sealed after a change (resealed), a head record rewritten behind the last checkpoint
    (head-rewritten), checkpoints whose signature does not verify (bad-checkpoint), and a
    database with entries but no checkpoint file (checkpoints-missing).
    """
    import orjson

    keys = _public_keys(public_key or [])
    existing_file(checkpoints, "--checkpoints")
    with _store() as store:
        report = store.verify_audit(keys, checkpoints)
    last = report.last_checkpoint
    if json:
        payload = {
            "intact": report.intact,
            "entries": report.entries,
            "head": ({"seq": report.head.seq, "hash": report.head.hash} if report.head else None),
            "checkpoints": report.checkpoints,
            "last_checkpoint": (
                {"seq": last.seq, "hash": last.hash, "at": last.at.isoformat()} if last else None
            ),
            "problems": [
                {"seq": p.seq, "kind": p.kind.value, "message": p.message} for p in report.problems
            ],
        }
        typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    elif report.intact:
        noun = "entry" if report.entries == 1 else "entries"
        unanchored = " (no checkpoint file: not anchored)" if report.checkpoints is None else ""
        typer.echo(f"audit log intact: {report.entries} {noun}{unanchored}")
    else:
        for problem in report.problems:
            typer.echo(str(problem))
    if not report.intact:
        count = len(report.problems)
        raise IntegrityError(
            f"the audit log was tampered with: {count} problem{'s' if count != 1 else ''} in "
            f"{report.entries} entries"
        )


@audit_app.command("list")
def audit_list(
    since: Annotated[
        str | None,
        typer.Option(help="Only entries since a time (ISO-8601) or for a duration back (1h, 7d)."),
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor (key:ID, a user).")] = None,
    action: Annotated[
        str | None,
        typer.Option(help="Only this action (key.create); a trailing * matches a prefix."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, the newest.")] = 100,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List audit entries, oldest first (the newest LIMIT that match)."""
    import orjson
    from rich.console import Console
    from rich.table import Column, Table

    from modelport.core.clock import SystemClock
    from modelport.security.audit import entry_to_dict

    start = _when.since(since, SystemClock().now()) if since is not None else None
    with _store() as store:
        entries = store.list_audit(since=start, actor=actor, action=action, limit=limit)
    if json:
        payload = [entry_to_dict(e) for e in entries]
        typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return
    if not entries:
        Console(highlight=False).print("no audit entries match")
        return
    # Details and request ids are in --json; the table keeps what fits a terminal.
    table = Table(
        Column("seq", no_wrap=True, min_width=3),
        Column("at", no_wrap=True, min_width=19),
        Column("actor", overflow="fold"),
        Column("action", no_wrap=True),
        Column("target", overflow="fold"),
        Column("outcome", no_wrap=True),
    )
    for e in entries:
        table.add_row(
            str(e.seq),
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            e.target or "-",
            e.outcome,
        )
    Console(highlight=False).print(table, markup=False)


def _write_atomically(file: str, write: Callable[[IO[bytes]], int]) -> int:
    """Write through ``write`` to ``file`` via a partial file renamed into place."""
    path = Path(file)
    if path.is_dir():
        raise ConfigError(f"{file!r} is a folder; give a file name")
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as out:
            count = write(out)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {file!r}: {exc}") from None
    return count


@audit_app.command("export")
def audit_export(
    file: Annotated[
        str, typer.Argument(help="File to write JSON lines to; - for standard output.")
    ] = "-",
    checkpoints: Annotated[
        str | None,
        typer.Option(
            "--checkpoints",
            help="Also copy the signed checkpoints (JSON lines) to this file; - for standard "
            "output (then without the entries unless FILE is a file).",
        ),
    ] = None,
) -> None:
    """Export every audit entry as JSON lines (with its hashes), oldest first."""
    if checkpoints is not None and checkpoints == file:
        raise ConfigError("--checkpoints must name another file than the entries' export")
    with _store() as store:
        if checkpoints is not None:
            if checkpoints == "-":
                out = sys.stdout.buffer
                store.export_checkpoints(out)
                out.flush()
                if file == "-":
                    return
            else:
                cp_count = _write_atomically(checkpoints, store.export_checkpoints)
                typer.echo(f"exported {cp_count} audit checkpoints to {checkpoints}")
        if file == "-":
            out = sys.stdout.buffer
            store.export_audit(out)
            out.flush()
            return
        count = _write_atomically(file, store.export_audit)
    # Standard output may carry the checkpoints; the note then goes to standard error.
    typer.echo(f"exported {count} audit entries to {file}", err=checkpoints == "-")


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign a checkpoint of the last audit entry now (after checking the whole log).

    Needed once after upgrading from a modelport without checkpoints; also for a scheduler
    that wants denials anchored sooner than the server's own policy.
    """
    with _store() as store:
        checkpoint = store.checkpoint_audit()
        where = store.checkpoints.path if store.checkpoints is not None else "?"
    if checkpoint is None:
        typer.echo("the audit log is empty: nothing to checkpoint")
    else:
        typer.echo(f"checkpointed audit entry {checkpoint.seq} in {where}")


def attach(app: typer.Typer) -> None:
    """Add the ``audit`` command group to ``app``."""
    app.add_typer(audit_app, name="audit")
