"""A bad MODELPORT_* value is a one-line config error naming the variable, not a traceback."""

from __future__ import annotations

import pytest

from modelport.cli._settings import checked_settings
from modelport.core.errors import ConfigError


def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPORT_CONTROLPLANE__PORT", "notaport")
    with pytest.raises(ConfigError) as refused:
        checked_settings()
    assert refused.value.message.startswith(
        "invalid setting: MODELPORT_CONTROLPLANE__PORT (controlplane.port): Input should be a "
        "valid integer"
    )
    assert refused.value.message.endswith("(got 'notaport')")


def test_every_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPORT_CONTROLPLANE__PORT", "70000")
    monkeypatch.setenv("MODELPORT_CONTROLPLANE__PRUNE_INTERVAL_S", "-1")
    with pytest.raises(ConfigError) as refused:
        checked_settings()
    message = refused.value.message
    assert "MODELPORT_CONTROLPLANE__PORT (controlplane.port)" in message
    assert "MODELPORT_CONTROLPLANE__PRUNE_INTERVAL_S" in message and "(got '-1')" in message


def test_good_values_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPORT_CONTROLPLANE__PORT", "9999")
    assert checked_settings().controlplane.port == 9999
