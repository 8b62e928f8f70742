"""The feature registry on SQLite and PostgreSQL: definitions and materialisation persist.

Two FeatureStore objects on one registry stand for two processes: what one applies, deletes or
materialises, the other sees after ``refresh()``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.core.errors import Conflict, IntegrityError, NotFound
from modelport.features import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float64,
    Int64,
)
from modelport.features._schema import MIGRATIONS, metadata
from modelport.features.online import SqliteOnlineStoreConfig
from modelport.features.registry import FeatureRegistry
from tests.contract._schema import schema_drift

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _definitions(tmp_path: Path) -> tuple[Entity, FeatureView, FeatureService]:
    path = tmp_path / "stats.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": [1, 1, 2],
                "event_timestamp": [T0, T0 + timedelta(days=2), T0 + timedelta(days=1)],
                "spend": [10.0, 30.0, 5.0],
                "orders": [1, 3, 1],
            }
        ),
        path,
    )
    user = Entity(name="user", join_keys=["user_id"], description="a customer")
    stats = FeatureView(
        name="stats",
        entities=[user],
        schema=[Field(name="spend", dtype=Float64), Field(name="orders", dtype=Int64)],
        source=FileSource(path=str(path), timestamp_field="event_timestamp"),
        ttl=timedelta(days=2),
        tags={"team": "risk"},
    )
    service = FeatureService(name="fraud", features=[stats[["spend"]]])
    return user, stats, service


def test_the_migrated_schema_matches_the_tables(backend_url: str) -> None:
    FeatureRegistry(backend_url).close()
    assert schema_drift(backend_url, MIGRATIONS, metadata) == []


def test_another_store_sees_what_one_applied(backend_url: str, tmp_path: Path) -> None:
    user, stats, service = _definitions(tmp_path)
    with FeatureStore([user, stats, service], registry=backend_url, actor="ana") as first:
        with FeatureStore(registry=backend_url) as second:
            assert [v.name for v in second.list_feature_views()] == ["stats"]
            view = second.get_feature_view("stats")
            assert view.ttl == timedelta(days=2)
            assert view.tags == {"team": "risk"}
            assert [f.name for f in view.features] == ["spend", "orders"]
            assert second.get_entity("user").description == "a customer"
            assert second.get_feature_service("fraud").feature_refs() == ["stats:spend"]
            assert second.refresh() is False

            longer = FeatureView(
                name="stats",
                entities=[user],
                schema=stats.schema,
                source=stats.source,
                ttl=timedelta(days=7),
            )
            first.apply([longer])
            assert second.refresh() is True
            assert second.get_feature_view("stats").ttl == timedelta(days=7)

            entity = FeatureRegistry(backend_url)
            try:
                stored = entity.get("FeatureView", "stats")
                assert stored.generation == 2
                assert stored.created_by == "ana"
                # Applying the same definition again changes nothing.
                first.apply([longer])
                assert entity.get("FeatureView", "stats").generation == 2
            finally:
                entity.close()


def test_deleting_what_is_used_is_refused(backend_url: str, tmp_path: Path) -> None:
    user, stats, service = _definitions(tmp_path)
    with FeatureStore([user, stats, service], registry=backend_url) as store:
        with pytest.raises(Conflict, match="used by feature service 'fraud'"):
            store.delete("FeatureView", "stats")
        with pytest.raises(Conflict, match="used by feature view 'stats'"):
            store.delete("Entity", "user")
        store.delete("FeatureService", "fraud")
        store.delete("FeatureView", "stats")
        store.delete("Entity", "user")
        with pytest.raises(NotFound, match="feature view 'stats' does not exist"):
            store.delete("FeatureView", "stats")
    with FeatureStore(registry=backend_url) as fresh:
        assert fresh.list_feature_views() == []


def test_incremental_materialisation_continues_across_processes(
    backend_url: str, tmp_path: Path
) -> None:
    user, stats, _ = _definitions(tmp_path)
    online = SqliteOnlineStoreConfig(path=tmp_path / "online.db")
    with FeatureStore([user, stats], registry=backend_url, online_store=online) as first:
        summary = first.materialize_incremental(T0 + timedelta(days=1))
        assert summary.start["stats"] == T0 + timedelta(days=1) - timedelta(days=2)
    with FeatureStore(registry=backend_url, online_store=online) as second:
        summary = second.materialize_incremental(T0 + timedelta(days=3))
        assert summary.start["stats"] == T0 + timedelta(days=1)  # where the first ended
        # Both bounds are inclusive: user 2's row at the first run's end is read again, harmlessly.
        assert summary.rows["stats"] == 2
        answer = second.get_online_features(
            ["stats:spend"], [{"user_id": 1}, {"user_id": 2}], now=T0 + timedelta(days=3)
        )
        assert answer.to_dict() == {"user_id": [1, 2], "spend": [30.0, 5.0]}


def test_a_stored_document_that_no_longer_builds_is_reported(
    backend_url: str, tmp_path: Path
) -> None:
    user, stats, _ = _definitions(tmp_path)
    with FeatureStore([user, stats], registry=backend_url):
        pass
    registry = FeatureRegistry(backend_url)
    try:
        from sqlalchemy import update

        from modelport.db import write
        from modelport.features._schema import feature_views

        broken = registry.get("FeatureView", "stats").document()
        broken["spec"]["schema"][0]["dtype"] = "Complex128"
        with write(registry._engine) as conn:
            conn.execute(update(feature_views).values(document=broken))
        with pytest.raises(IntegrityError, match="stored feature view 'stats' is not valid"):
            registry.load()
    finally:
        registry.close()
