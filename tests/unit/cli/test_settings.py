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


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("[0.5, 0.2]", "smallest first without repeats, got 0.5 before 0.2"),
        ("[0.2, 0.2]", "smallest first without repeats"),
        ("[0, 0.2]", "positive number of seconds, got 0.0"),
        ("[-0.1]", "positive number of seconds, got -0.1"),
    ],
)
def test_slo_thresholds_must_be_positive_and_increasing(
    monkeypatch: pytest.MonkeyPatch, value: str, why: str
) -> None:
    monkeypatch.setenv("MODELPORT_MONITORING__SLO_LATENCY_SECONDS", value)
    with pytest.raises(ConfigError) as refused:
        checked_settings()
    message = refused.value.message
    assert message.startswith(
        "invalid setting: MODELPORT_MONITORING__SLO_LATENCY_SECONDS "
        "(monitoring.slo_latency_seconds)"
    )
    assert why in message


def test_slo_thresholds_are_read_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    assert checked_settings().monitoring.slo_latency_seconds == [0.1, 0.25, 0.5, 1.0]
    monkeypatch.setenv("MODELPORT_MONITORING__SLO_LATENCY_SECONDS", "[0.05, 0.2]")
    assert checked_settings().monitoring.slo_latency_seconds == [0.05, 0.2]
    monkeypatch.setenv("MODELPORT_MONITORING__SLO_LATENCY_SECONDS", "[0.05,")
    with pytest.raises(ConfigError, match="list and mapping settings are JSON"):
        checked_settings()
