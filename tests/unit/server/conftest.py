"""Fixtures of the in-process transport tests: a real data plane and a real security store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.core.clock import SystemClock
from modelport.core.settings import RuntimeSettings, SecuritySettings, Settings
from modelport.security.store import SecurityStore
from modelport.service.access import AccessControl, build_access_control
from modelport.service.dataplane import DataPlane
from modelport.service.models import ModelRepository, ModelSource
from modelport.service.wiring import open_security_store

MODEL = """
class Doubler:
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "double", "datatype": "FP32", "shape": [-1, 2]}],
    }

    def predict(self, inputs):
        return {"double": inputs["x"] * 2}
"""
MODEL_NAMES = ("fraud-a", "credit-a")


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[SecurityStore]:
    """The security store of a fresh data directory (SQLite)."""
    with open_security_store(Settings(home=tmp_path / "home")) as opened:
        yield opened


@pytest.fixture()
def dataplane(tmp_path: Path) -> DataPlane:
    """A data plane serving the Python model ``Doubler`` as ``fraud-a`` and ``credit-a``."""
    model = tmp_path / "doubler.py"
    model.write_text(MODEL)
    repository = ModelRepository(RuntimeSettings())
    for name in MODEL_NAMES:
        source = ModelSource(
            name=name, version="1", framework="python", artifact=model, entrypoint="Doubler"
        )
        repository.add(source)
    repository.load_all()
    return DataPlane(repository)


@pytest.fixture()
def access(store: SecurityStore) -> Iterator[AccessControl]:
    """Access control with authentication on, keys and audit log in ``store``."""
    control = build_access_control(SecuritySettings(), store, store, SystemClock())
    yield control
    control.close()
