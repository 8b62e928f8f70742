"""The ``modelport`` command: registry, serving and prediction from the shell.

Every command fails with a one-line ``error: ...`` on stderr and an exit code from
:mod:`modelport.cli.errors`.

The command starts fast because nothing heavy is imported to parse its arguments: the command
modules declare their options at import and import servers, storage, cryptography and HTTP
clients inside the command functions.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from modelport import __version__
from modelport.cli import (
    alertrules_cmd,
    alerts_cmd,
    audit_cmd,
    certs_cmd,
    controlplane_cmd,
    deployments_cmd,
    drift_cmd,
    experiments_cmd,
    features_cmd,
    feedback_cmd,
    gateway_cmd,
    keys_cmd,
    logs_cmd,
    monitor_cmd,
    predict_cmd,
    registry_cmds,
    serve_cmd,
)
from modelport.cli.errors import EXIT_BY_KIND
from modelport.core.errors import ModelportError

__all__ = ["app", "main"]

app = typer.Typer(
    name="modelport",
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


# `modelport --help` lists the commands in the order they are attached.
registry_cmds.attach(app)  # register, models, alias
deployments_cmd.attach(app)  # apply, deployments
experiments_cmd.attach(app)
serve_cmd.attach(app)
controlplane_cmd.attach(app)
gateway_cmd.attach(app)  # gateway, up
predict_cmd.attach(app)
keys_cmd.attach(app)
audit_cmd.attach(app)
logs_cmd.attach(app)
drift_cmd.attach(app)
alertrules_cmd.attach(app)
alerts_cmd.attach(app)
monitor_cmd.attach(app)
features_cmd.attach(app)
feedback_cmd.attach(app)
certs_cmd.attach(app)


def main(args: Sequence[str] | None = None) -> None:
    """Run the command line and turn modelport errors into a message and an exit code."""
    try:
        app(args=args, prog_name="modelport")
    except ModelportError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(EXIT_BY_KIND[exc.kind])
