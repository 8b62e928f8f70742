"""The ``modelport`` command: registry, serving and prediction from the shell.

Every command fails with a one-line ``error: ...`` on stderr and an exit code from
:mod:`modelport.cli.errors`.

The command starts fast because nothing heavy is imported to parse its arguments: the command
modules declare their options at import and import servers, storage, cryptography and HTTP
clients inside the command functions. ``serve`` and ``audit`` are registered lazily instead
(:data:`_LAZY`): their modules are imported only when one of them runs or prints its help.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Annotated, Any, Final

import typer
from typer.core import TyperCommand, TyperGroup

from modelport import __version__
from modelport.cli import certs_cmd, keys_cmd, predict_cmd, registry_cmds
from modelport.cli.errors import EXIT_BY_KIND
from modelport.core.errors import ModelportError

__all__ = ["app", "main"]

_ORDER: Final = ("register", "models", "alias", "serve", "predict", "keys", "audit", "certs")
"""The order ``modelport --help`` lists the commands in."""

_LAZY: Final[dict[str, tuple[str, str]]] = {
    "serve": (
        "modelport.cli.serve_cmd",
        "Serve models over REST and gRPC (Open Inference Protocol v2) until interrupted.",
    ),
    "audit": (
        "modelport.cli.audit_cmd",
        "The tamper-evident audit log: check its hash chain against the signed checkpoints, "
        "list and export entries.",
    ),
}
"""Commands whose modules are imported on use: name -> (module with ``attach(app)``, summary).

The summary is what ``modelport --help`` lists; a test checks it against the command's own."""


class _Placeholder(TyperCommand):
    """Stands in for a lazily registered command until it is resolved to run.

    ``modelport --help`` lists it (name and summary); :meth:`_LazyGroup.resolve_command` swaps
    it for the real command before anything parses its arguments.
    """


def load_command(name: str) -> Any:
    """Import the module of a lazily registered command and return its click command or group."""
    module = importlib.import_module(_LAZY[name][0])
    holder = typer.Typer()
    module.attach(holder)
    return typer.main.get_group(holder).commands[name]


class _LazyGroup(TyperGroup):
    """The root command group: lists every command, imports the lazy ones on use."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, (_, summary) in _LAZY.items():
            self.commands.setdefault(name, _Placeholder(name, help=summary))
        rank = {name: i for i, name in enumerate(_ORDER)}
        ordered = sorted(self.commands.items(), key=lambda item: rank.get(item[0], len(rank)))
        self.commands = dict(ordered)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        """Find the command to run, importing it if it was registered lazily."""
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and isinstance(command, _Placeholder):
            command = self.commands[name] = load_command(name)
        return name, command, rest

    def list_commands(self, ctx: Any) -> list[str]:
        """List the commands in :data:`_ORDER`."""
        return list(self.commands)


app = typer.Typer(
    name="modelport",
    cls=_LazyGroup,
    help="Deploy and serve machine-learning models over the Open Inference Protocol.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"modelport {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print modelport's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Deploy and serve machine-learning models over the Open Inference Protocol."""


registry_cmds.attach(app)
predict_cmd.attach(app)
keys_cmd.attach(app)
certs_cmd.attach(app)


def main(args: Sequence[str] | None = None) -> None:
    """Run the command line and turn modelport errors into a message and an exit code."""
    try:
        app(args=args, prog_name="modelport")
    except ModelportError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(EXIT_BY_KIND[exc.kind])
