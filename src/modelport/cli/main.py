"""The ``modelport`` command: registry, serving and prediction from the shell.

Every command fails with a one-line ``error: ...`` on stderr and an exit code from
:mod:`modelport.cli.errors`.
"""

from __future__ import annotations

import sys

import typer

from modelport.cli import audit_cmd, certs_cmd, keys_cmd, predict_cmd, registry_cmds, serve_cmd
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
registry_cmds.attach(app)
serve_cmd.attach(app)
predict_cmd.attach(app)
keys_cmd.attach(app)
audit_cmd.attach(app)
certs_cmd.attach(app)


def main() -> None:
    """Run the command line and turn modelport errors into a message and an exit code."""
    try:
        app()
    except ModelportError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(EXIT_BY_KIND[exc.kind])
