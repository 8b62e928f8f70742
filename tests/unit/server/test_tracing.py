"""Tracing's settings, its start and stop, and its refusal without the ``tracing`` extra."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
from pydantic import ValidationError

from modelport.core.settings import Settings, TracingSettings
from modelport.server.gateway.process import run_gateway_worker
from modelport.server.supervisor import _role
from modelport.server.tracing import INSTALL_HINT, current, start_tracing, stop_tracing
from modelport.server.worker import run_worker
from tests.no_opentelemetry import BLOCK_OPENTELEMETRY


def test_tracing_is_off_by_default_with_documented_defaults() -> None:
    tracing = Settings().tracing
    assert tracing.enabled is False
    assert tracing.endpoint == "http://127.0.0.1:4318/v1/traces"
    assert tracing.service_name is None
    assert tracing.sample_ratio == 1.0
    assert tracing.headers == {}


def test_tracing_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPORT_TRACING__ENABLED", "true")
    monkeypatch.setenv("MODELPORT_TRACING__ENDPOINT", "https://otel.example.com/v1/traces")
    monkeypatch.setenv("MODELPORT_TRACING__SERVICE_NAME", "fraud-gateway")
    monkeypatch.setenv("MODELPORT_TRACING__SAMPLE_RATIO", "0.25")
    monkeypatch.setenv("MODELPORT_TRACING__HEADERS", '{"x-api-key": "s3cret"}')
    tracing = Settings().tracing
    assert tracing.enabled is True
    assert tracing.endpoint == "https://otel.example.com/v1/traces"
    assert tracing.service_name == "fraud-gateway"
    assert tracing.sample_ratio == 0.25
    assert tracing.headers["x-api-key"].get_secret_value() == "s3cret"
    assert "s3cret" not in repr(tracing)  # never printed


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sample_ratio", 1.5, "less than or equal to 1"),
        ("sample_ratio", -0.1, "greater than or equal to 0"),
        ("endpoint", "127.0.0.1:4318", "http:// or https:// URL"),
        ("endpoint", "grpc://127.0.0.1:4317", "http:// or https:// URL"),
        ("service_name", "", "at least 1 character"),
        ("exporter", "otlp", "Extra inputs are not permitted"),
    ],
)
def test_bad_tracing_settings_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TracingSettings.model_validate({field: value})


def test_off_starts_nothing() -> None:
    assert start_tracing(TracingSettings(), "server") is None
    assert current() is None
    stop_tracing()  # nothing to stop


def test_on_starts_one_tracer_for_the_process_and_stopping_ends_it() -> None:
    # Nothing listens on the endpoint: the spans of an idle tracer are never sent, and the
    # stop is bounded either way.
    settings = TracingSettings(enabled=True, endpoint="http://127.0.0.1:9/v1/traces")
    try:
        tracing = start_tracing(settings, "gateway")
        assert tracing is not None and current() is tracing
        assert tracing.role == "gateway"
    finally:
        stop_tracing(timeout_s=2.0)
    assert current() is None


def test_each_process_kind_has_its_own_service_name() -> None:
    assert _role(run_worker) == "server"
    assert _role(functools.partial(run_gateway_worker, in_process=False)) == "gateway"
    assert _role(functools.partial(run_gateway_worker, in_process=True)) == "up"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_on_without_the_extra_is_a_clear_config_error() -> None:
    done = run_python(
        BLOCK_OPENTELEMETRY
        + """
from modelport.core.errors import ConfigError
from modelport.core.settings import TracingSettings
from modelport.server.tracing import check_tracing, start_tracing

assert start_tracing(TracingSettings(), "server") is None  # off: fine without the extra
for attempt in (check_tracing, lambda s: start_tracing(s, "server")):
    try:
        attempt(TracingSettings(enabled=True))
    except ConfigError as exc:
        print(exc.kind.value, exc.message)
    else:
        raise SystemExit("no error")
"""
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("config tracing.enabled is on (MODELPORT_TRACING__ENABLED)")
        assert "opentelemetry" in line and line.endswith(INSTALL_HINT)


def test_the_serving_modules_import_no_opentelemetry() -> None:
    done = run_python(
        """
import sys

import modelport
import modelport.cli.main
import modelport.server.gateway.process
import modelport.server.supervisor
import modelport.server.tracing

print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
"""
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
