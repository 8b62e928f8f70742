"""Helpers shared by the registry contract tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text

from modelport.db import migrate, open_engine
from modelport.registry import Lineage, NewVersion
from modelport.registry._schema import MIGRATIONS
from modelport.testing import FakeClock as FakeClock  # the contract tests import it from here

# Reported in UTC+2 on purpose: the store must convert to UTC.
START = datetime(2025, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))


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


def seed_old_database(url: str, revision: str, at: datetime) -> int:
    """Migrate a new database only to ``revision`` and add model ``old`` with version 1 by SQL,
    as an older modelport would have left it; return the model's id.

    The columns written are those of migration 0001, which every later revision keeps.
    """
    engine = open_engine(url)
    try:
        migrate(engine, MIGRATIONS, revision)
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO models (name, created_at, updated_at) VALUES ('old', :at, :at)"),
                {"at": at},
            )
            model_id: int = conn.execute(
                text("SELECT id FROM models WHERE name = 'old'")
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO model_versions (model_id, version, artifact_digest, "
                    "artifact_size, artifact_filename, framework, tags, metrics, description, "
                    "registered_by, created_at, status) VALUES (:m, 1, :d, 10, 'tree.joblib', "
                    "'sklearn', '{}', '{}', '', 'alice', :at, 'active')"
                ),
                {"m": model_id, "d": "sha256:" + "12" * 32, "at": at},
            )
        return model_id
    finally:
        engine.dispose()
