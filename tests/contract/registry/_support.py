"""Helpers shared by the registry contract tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from modelport.registry import Lineage, NewVersion

# Reported in UTC+2 on purpose: the store must convert to UTC.
START = datetime(2025, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))


class FakeClock:
    """A clock that stands still until told to move."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start
        self._mono = 0.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        self._mono += seconds
        return self.current


def new_version(name: str = "fraud", **changes: Any) -> NewVersion:
    """A valid registration request; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "name": name,
        "artifact_digest": "sha256:" + "ab" * 32,
        "artifact_size": 1234,
        "artifact_filename": "model.onnx",
        "framework": "onnx",
        "lineage": Lineage(registered_by="alice"),
    }
    fields.update(changes)
    return NewVersion(**fields)
