"""The command line's wiring: lazily registered commands and constants kept light on purpose."""

from __future__ import annotations

import inspect

import pytest

from modelport.cli import certs_cmd, main, registry_cmds
from modelport.registry.records import DEFAULT_JURISDICTION
from modelport.security.certs import DEFAULT_HOSTS


@pytest.mark.parametrize("name", sorted(main._LAZY))
def test_a_lazy_command_is_listed_with_its_own_summary(name: str) -> None:
    command = main.load_command(name)
    assert command.name == name
    summary = main._LAZY[name][1]
    assert (command.help or "").strip().splitlines()[0] == summary


def test_the_cli_copies_of_library_defaults_match() -> None:
    # Copied so that `modelport --help` does not import cryptography or SQLAlchemy.
    assert certs_cmd.DEFAULT_HOSTS == DEFAULT_HOSTS
    jurisdiction = inspect.signature(registry_cmds.register).parameters["jurisdiction"]
    assert jurisdiction.default == DEFAULT_JURISDICTION
