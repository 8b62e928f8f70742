"""Bad input: each mistake is a clear error of the right kind that names what was expected."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.core.errors import ConfigError, InvalidInput, NotFound
from modelport.features import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float64,
    Int64,
    String,
)

DRIVER = Entity(name="driver", join_keys=["driver_id"])


def _write(path: Path, **columns: pa.Array) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _view(path: Path, *fields: Field, name: str = "stats") -> FeatureView:
    return FeatureView(
        name=name,
        entities=[DRIVER],
        schema=list(fields) or [Field(name="trips", dtype=Int64)],
        source=FileSource(path=str(path), timestamp_field="event_ts"),
        ttl=timedelta(days=1),
    )


@pytest.fixture()
def stats_file(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "stats.parquet",
        driver_id=pa.array([1, 2], pa.int64()),
        event_ts=pa.array([datetime(2024, 1, 1)] * 2, pa.timestamp("us")),
        trips=pa.array([3, 4], pa.int64()),
        city=pa.array(["a", "b"], pa.string()),
    )


@pytest.fixture()
def store(stats_file: Path) -> FeatureStore:
    fs = FeatureStore()
    fs.apply([DRIVER, _view(stats_file)])
    return fs


def _entities(**overrides: pa.Array | None) -> pa.Table:
    cols: dict[str, pa.Array | None] = {
        "driver_id": pa.array([1], pa.int64()),
        "event_timestamp": pa.array([datetime(2024, 1, 2)], pa.timestamp("us")),
    }
    cols.update(overrides)
    return pa.table({k: v for k, v in cols.items() if v is not None})


def test_unknown_view(store: FeatureStore) -> None:
    with pytest.raises(NotFound, match=r"feature view 'nope'.*known: stats"):
        store.get_historical_features(_entities(), ["nope:trips"])


def test_unknown_feature(store: FeatureStore) -> None:
    with pytest.raises(NotFound, match=r"feature 'speed' in view 'stats'.*trips"):
        store.get_historical_features(_entities(), ["stats:speed"])


@pytest.mark.parametrize("ref", ["stats", "stats:", ":trips", "a:b:c"])
def test_malformed_reference(store: FeatureStore, ref: str) -> None:
    with pytest.raises(InvalidInput, match="'view:feature'"):
        store.get_historical_features(_entities(), [ref])


def test_no_features(store: FeatureStore) -> None:
    with pytest.raises(InvalidInput, match="at least one feature"):
        store.get_historical_features(_entities(), [])


def test_entity_frame_missing_join_key(store: FeatureStore) -> None:
    with pytest.raises(InvalidInput, match=r"join key 'driver_id'.*view 'stats'"):
        store.get_historical_features(_entities(driver_id=None), ["stats:trips"])


def test_entity_frame_missing_timestamp(store: FeatureStore) -> None:
    with pytest.raises(InvalidInput, match="'event_timestamp'"):
        store.get_historical_features(_entities(event_timestamp=None), ["stats:trips"])


def test_entity_timestamp_not_a_timestamp(store: FeatureStore) -> None:
    with pytest.raises(InvalidInput, match=r"'event_timestamp'.*timestamp"):
        store.get_historical_features(
            _entities(event_timestamp=pa.array(["2024-01-02"])), ["stats:trips"]
        )


def test_entity_frame_not_a_table(store: FeatureStore) -> None:
    with pytest.raises(InvalidInput, match="pyarrow.Table"):
        store.get_historical_features([{"driver_id": 1}], ["stats:trips"])  # type: ignore[arg-type]


def test_entity_column_clashes_with_a_feature(store: FeatureStore) -> None:
    with pytest.raises(InvalidInput, match="'trips'"):
        store.get_historical_features(_entities(trips=pa.array([1])), ["stats:trips"])


def test_source_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.parquet"
    fs = FeatureStore()
    fs.apply([DRIVER, _view(missing)])
    with pytest.raises(NotFound, match=str(missing)):
        fs.get_historical_features(_entities(), ["stats:trips"]).to_arrow()


def test_field_dtype_mismatch(stats_file: Path) -> None:
    fs = FeatureStore()
    fs.apply([DRIVER, _view(stats_file, Field(name="city", dtype=Float64))])
    with pytest.raises(ConfigError, match=r"'city'.*Float64.*VARCHAR"):
        fs.get_historical_features(_entities(), ["stats:city"]).to_arrow()


def test_field_missing_from_file(stats_file: Path) -> None:
    fs = FeatureStore()
    fs.apply([DRIVER, _view(stats_file, Field(name="speed", dtype=Float64))])
    with pytest.raises(ConfigError, match=r"'speed'.*not in the source"):
        fs.get_historical_features(_entities(), ["stats:speed"]).to_arrow()


def test_join_key_type_mismatch(store: FeatureStore) -> None:
    with pytest.raises(InvalidInput, match="driver_id"):
        store.get_historical_features(
            _entities(driver_id=pa.array(["1"])), ["stats:trips"]
        ).to_arrow()


def test_name_clash_between_views_needs_full_names(stats_file: Path) -> None:
    fs = FeatureStore()
    fs.apply([DRIVER, _view(stats_file), _view(stats_file, name="stats2")])
    with pytest.raises(InvalidInput, match="full_feature_names"):
        fs.get_historical_features(_entities(), ["stats:trips", "stats2:trips"])
    out = fs.get_historical_features(
        _entities(), ["stats:trips", "stats2:trips"], full_feature_names=True
    ).to_arrow()
    assert out.column_names[-2:] == ["stats__trips", "stats2__trips"]


def test_string_dtype_is_checked_too(stats_file: Path) -> None:
    fs = FeatureStore()
    fs.apply([DRIVER, _view(stats_file, Field(name="trips", dtype=String))])
    with pytest.raises(ConfigError, match=r"'trips'.*String.*BIGINT"):
        fs.get_historical_features(_entities(), ["stats:trips"]).to_arrow()
