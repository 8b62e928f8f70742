"""Key commands: API keys (``keys create|list|revoke``) and KEK rotation (``keys rotate-kek``)."""

from __future__ import annotations

import typer

__all__ = ["attach", "keys_app"]

keys_app = typer.Typer(
    help="API keys for callers, and rotation of the artifact key-encryption key.",
    no_args_is_help=True,
)


def attach(app: typer.Typer) -> None:
    """Add the ``keys`` command group to ``app``."""
    app.add_typer(keys_app, name="keys")
