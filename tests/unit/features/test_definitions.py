"""Definitions (Feast's signatures) and the in-memory registry's checks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelport import features
from modelport.core.errors import ConfigError, NotFound
from modelport.features import (
    Bool,
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float32,
    Float64,
    Int32,
    Int64,
    String,
)

DRIVER = Entity(name="driver", join_keys=["driver_id"])


def _view(name: str = "stats", entities: list[Entity] | None = None) -> FeatureView:
    return FeatureView(
        name=name,
        entities=entities or [DRIVER],
        schema=[
            Field(name="driver_id", dtype=Int64),
            Field(name="trips", dtype=Int64),
            Field(name="ok", dtype=Bool),
        ],
        source=FileSource(path="stats.parquet", timestamp_field="event_ts"),
        ttl=timedelta(days=1),
    )


def test_exports() -> None:
    assert "FeatureStore" in features.__all__
    for name in features.__all__:
        assert hasattr(features, name), name


def test_entity_join_keys_default_to_its_name() -> None:
    assert Entity(name="driver").join_keys == ["driver"]
    assert Entity(name="driver", join_keys=["driver_id"]).join_key == "driver_id"


def test_feature_view_splits_entity_columns_from_features() -> None:
    view = _view()
    assert [f.name for f in view.features] == ["trips", "ok"]
    assert [f.name for f in view.entity_columns] == ["driver_id"]
    assert view.join_keys == ["driver_id"]
    assert view.online is True


def test_projection() -> None:
    proj = _view()[["ok"]]
    assert proj.name == "stats"
    assert [f.name for f in proj.features] == ["ok"]
    with pytest.raises(NotFound, match="'nope'"):
        _view()[["nope"]]


def test_file_format_from_extension() -> None:
    assert FileSource(path="a.parquet", timestamp_field="t").file_format == "parquet"
    assert FileSource(path="dir/*.csv", timestamp_field="t").file_format == "csv"
    assert FileSource(path="a.dat", timestamp_field="t", file_format="csv").file_format == "csv"
    with pytest.raises(ConfigError, match="file_format"):
        FileSource(path="a.dat", timestamp_field="t")
    with pytest.raises(ConfigError, match="timestamp_field"):
        FileSource(path="a.parquet", timestamp_field="")


def test_dtypes_print_as_feast_names() -> None:
    assert [str(t) for t in (Float32, Float64, Int32, Int64, String, Bool)] == [
        "Float32",
        "Float64",
        "Int32",
        "Int64",
        "String",
        "Bool",
    ]


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: Entity(name="", join_keys=["x"]), "name"),
        (lambda: Entity(name="d", join_keys=[]), "join_keys"),
        (lambda: Field(name="a b", dtype=Int64), "'a b'"),
        (lambda: Field(name="__mp_x", dtype=Int64), "reserved"),
        (lambda: Field(name="a", dtype=int), "dtype"),  # type: ignore[arg-type]
        (
            lambda: FeatureView(
                name="v",
                entities=[DRIVER],
                schema=[Field(name="a", dtype=Int64), Field(name="a", dtype=Int64)],
                source=FileSource(path="x.parquet", timestamp_field="t"),
            ),
            "twice",
        ),
        (
            lambda: FeatureView(
                name="v",
                entities=[DRIVER],
                schema=[Field(name="a", dtype=Int64)],
                source=FileSource(path="x.parquet", timestamp_field="t"),
                ttl=timedelta(seconds=-1),
            ),
            "ttl",
        ),
        (
            lambda: FeatureView(
                name="v",
                entities=[DRIVER],
                schema=[Field(name="driver_id", dtype=Int64)],
                source=FileSource(path="x.parquet", timestamp_field="t"),
            ),
            "no features",
        ),
        (
            lambda: FeatureView(
                name="v",
                entities=[],
                schema=[Field(name="a", dtype=Int64)],
                source=FileSource(path="x.parquet", timestamp_field="t"),
            ),
            "entity",
        ),
        (lambda: FeatureService(name="s", features=[]), "features"),
    ],
)
def test_bad_definitions(build: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()  # type: ignore[operator]


def test_apply_rejects_duplicates_and_unknown_references() -> None:
    fs = FeatureStore()
    with pytest.raises(ConfigError, match="'stats'.*twice"):
        fs.apply([DRIVER, _view(), _view()])
    with pytest.raises(NotFound, match="entity 'rider'"):
        fs.apply([_view(entities=[Entity(name="rider")])])
    with pytest.raises(NotFound, match="feature view 'stats'"):
        fs.apply([FeatureService(name="svc", features=[_view()])])
    assert fs.list_feature_views() == []  # a failed apply changes nothing


def test_apply_replaces_by_name_and_lists() -> None:
    fs = FeatureStore()
    fs.apply([DRIVER, _view()])
    fs.apply([_view()])  # same name again: replaced, as Feast's apply does
    fs.apply([FeatureService(name="svc", features=[_view()[["trips"]]])])
    assert [v.name for v in fs.list_feature_views()] == ["stats"]
    assert [e.name for e in fs.list_entities()] == ["driver"]
    assert fs.get_feature_view("stats").name == "stats"
    assert fs.get_feature_service("svc").name == "svc"
    with pytest.raises(NotFound, match="feature service 'nope'"):
        fs.get_feature_service("nope")
    with pytest.raises(ConfigError, match="apply"):
        fs.apply([object()])  # type: ignore[list-item]
