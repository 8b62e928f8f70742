"""The command line's wiring: every command listed, constants kept light on purpose."""

from __future__ import annotations

import inspect

import typer

from modelport.cli import certs_cmd, main, registry_cmds
from modelport.registry.records import DEFAULT_JURISDICTION
from modelport.security.certs import DEFAULT_HOSTS


def test_help_lists_every_command() -> None:
    group = typer.main.get_group(main.app)
    assert set(group.list_commands(None)) == {  # type: ignore[arg-type]
        "register",
        "models",
        "alias",
        "apply",
        "deployments",
        "drift",
        "alertrules",
        "monitor",
        "features",
        "alerts",
        "experiments",
        "feedback",
        "serve",
        "gateway",
        "up",
        "controlplane",
        "predict",
        "keys",
        "audit",
        "logs",
        "certs",
    }


def test_the_cli_copies_of_library_defaults_match() -> None:
    # Copied so that `modelport --help` does not import cryptography or SQLAlchemy.
    assert certs_cmd.DEFAULT_HOSTS == DEFAULT_HOSTS
    jurisdiction = inspect.signature(registry_cmds.register).parameters["jurisdiction"]
    assert jurisdiction.default == DEFAULT_JURISDICTION
