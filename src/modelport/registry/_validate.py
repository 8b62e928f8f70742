"""Checks on what callers hand the registry, before anything touches the database."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from modelport.core.errors import ConfigError, InvalidInput
from modelport.core.refs import validate_model_name
from modelport.registry.artifacts import parse_digest
from modelport.registry.records import NewVersion

__all__ = ["check_new_version", "check_text", "format_versions", "quoted", "utc_time"]


def check_text(value: object, what: str) -> str:
    """Return ``value`` if it is a non-blank string.

    Raises:
        InvalidInput: It is not a string or is blank.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_new_version(new: NewVersion) -> None:
    """Validate a registration request.

    Raises:
        InvalidInput: A field is malformed: name, digests, size, filename, framework, lineage,
            tags (strings to strings), metrics (finite numbers), the serving artifact or the
            compile report.
    """
    validate_model_name(new.name)
    parse_digest(new.artifact_digest)
    if isinstance(new.artifact_size, bool) or not isinstance(new.artifact_size, int):
        raise InvalidInput(f"artifact_size must be an integer, got {new.artifact_size!r}")
    if new.artifact_size < 0:
        raise InvalidInput(f"artifact_size must be 0 or more, got {new.artifact_size}")
    filename = check_text(new.artifact_filename, "artifact_filename")
    if "/" in filename or "\\" in filename or filename in (".", ".."):
        raise InvalidInput(
            f"artifact_filename must be a bare file name such as 'model.onnx', got {filename!r}"
        )
    check_text(new.framework, "framework")
    if new.entrypoint is not None:
        check_text(new.entrypoint, "entrypoint")
    if not isinstance(new.description, str):
        raise InvalidInput(f"description must be a string, got {new.description!r}")
    check_text(new.lineage.registered_by, "lineage.registered_by")
    if new.lineage.training_data_digest is not None:
        parse_digest(new.lineage.training_data_digest)
    if new.lineage.code_version is not None:
        check_text(new.lineage.code_version, "lineage.code_version")
    parent = new.lineage.parent_version
    if parent is not None and (
        isinstance(parent, bool) or not isinstance(parent, int) or parent < 1
    ):
        raise InvalidInput(f"lineage.parent_version must be a version number >= 1, got {parent!r}")
    for key, value in new.tags.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise InvalidInput(
                f"tags must map non-empty strings to strings; got {key!r}: {value!r}"
            )
    _check_serving(new)
    for key, metric in new.metrics.items():
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"metric names must be non-empty strings, got {key!r}")
        if isinstance(metric, bool) or not isinstance(metric, int | float):
            raise InvalidInput(f"metric {key!r} must be a number, got {metric!r}")
        if not math.isfinite(metric):
            raise InvalidInput(f"metric {key!r} must be finite, got {metric!r}")


def _check_serving(new: NewVersion) -> None:
    serving = new.serving
    if serving is not None:
        check_text(serving.framework, "serving.framework")
        parse_digest(serving.digest)
        if isinstance(serving.size, bool) or not isinstance(serving.size, int) or serving.size < 0:
            raise InvalidInput(f"serving.size must be an integer >= 0, got {serving.size!r}")
    report = new.compile_report
    if report is None:
        return
    if not isinstance(report.compiled, bool):
        raise InvalidInput(f"compile_report.compiled must be a bool, got {report.compiled!r}")
    for key in ("max_abs_diff", "atol"):
        value = getattr(report, key)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (number and math.isfinite(value)):
            raise InvalidInput(f"compile_report.{key} must be a finite number, got {value!r}")
    if report.compiled and serving is None:
        raise InvalidInput("compile_report says compiled, but no serving artifact is given")


def utc_time(value: object) -> datetime:
    """Return a clock reading in UTC, refusing one that is not an aware datetime.

    Raises:
        ConfigError: The clock returned a naive datetime or something else (it is misconfigured).
    """
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigError(f"the injected clock must return aware datetimes, got {value!r}")
    return value.astimezone(UTC)


def quoted(names: Sequence[str]) -> str:
    """Return ``'a', 'b'`` for messages, or ``none``."""
    return ", ".join(repr(n) for n in names) or "none"


def format_versions(versions: Sequence[int]) -> str:
    """Return ``1, 2, 3`` for messages, shortened to ``1, 2, ..., 57`` for long lists."""
    if not versions:
        return "none"
    if len(versions) > 10:
        return f"{versions[0]}, {versions[1]}, ..., {versions[-1]}"
    return ", ".join(str(v) for v in versions)
