"""Feature definitions as documents: round trips, Feast-style YAML, and each refusal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml

from modelport.core.errors import InvalidInput, NotFound
from modelport.features import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    Float32,
    Int64,
    String,
)
from modelport.features.documents import parse_definition, to_document

USER = Entity(name="user", join_keys=["user_id"], description="a customer", tags={"pii": "no"})
STATS = FeatureView(
    name="stats",
    entities=[USER],
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="spend", dtype=Float32, description="7-day spend"),
        Field(name="country", dtype=String),
    ],
    source=FileSource(
        path="/data/stats/*.parquet",
        timestamp_field="ts",
        created_timestamp_column="created",
    ),
    ttl=timedelta(hours=36),
    online=False,
)


def test_definitions_survive_a_round_trip() -> None:
    entity = parse_definition(to_document(USER), {}, {})
    assert isinstance(entity, Entity)
    assert (entity.name, entity.join_keys, entity.description, entity.tags) == (
        "user",
        ["user_id"],
        "a customer",
        {"pii": "no"},
    )
    view = parse_definition(to_document(STATS), {"user": USER}, {})
    assert isinstance(view, FeatureView)
    assert to_document(view) == to_document(STATS)
    assert view.ttl == timedelta(hours=36) and view.online is False
    assert view.source.created_timestamp_column == "created"
    assert [f.name for f in view.features] == ["spend", "country"]
    service = FeatureService(name="fraud", features=[STATS[["country"]], STATS])
    back = parse_definition(to_document(service), {}, {"stats": STATS})
    assert isinstance(back, FeatureService)
    assert back.feature_refs() == ["stats:country", "stats:spend", "stats:country"]


def test_a_handwritten_yaml_view_with_a_duration_ttl() -> None:
    document = yaml.safe_load(
        """
        apiVersion: modelport.io/v1
        kind: FeatureView
        metadata: {name: stats}
        spec:
          entities: [user]
          schema:
            - {name: spend, dtype: Float32}
          source:
            file: {path: stats.csv, timestampField: ts}
          ttl: 2d
        """
    )
    view = parse_definition(document, {"user": USER}, {})
    assert isinstance(view, FeatureView)
    assert view.ttl == timedelta(days=2)
    assert view.source.file_format == "csv"
    assert view.online is True


def _view_doc(**spec: Any) -> dict[str, Any]:
    base = to_document(STATS)
    base["spec"].update(spec)
    return base


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"kind": "Deployment"}, "kind 'Deployment' is not a feature definition"),
        ([], "kind None is not a feature definition"),
        (_view_doc(ttl="soon"), r"spec.ttl: expected a duration"),
        (_view_doc(ttl=-5), r"spec.ttl: a duration must be a finite number of seconds >= 0"),
        (
            _view_doc(schema=[{"name": "x", "dtype": "Complex"}]),
            r"spec.schema\[0\].dtype: expected one of Int32, Int64",
        ),
        (_view_doc(schema=[]), r"spec.schema: List should have at least 1 item"),
        (_view_doc(online="maybe"), r"spec.online"),
        (_view_doc(colour="red"), r"spec.colour: unknown field"),
        (_view_doc(source={"file": {"timestampField": "ts"}}), r"spec.source.file.path"),
        (
            _view_doc(schema=[{"name": "user_id", "dtype": "Int64"}]),
            "invalid FeatureView: feature view 'stats' has no features",
        ),
        (
            _view_doc(source={"file": {"path": "x.txt", "timestampField": "ts"}}),
            "cannot tell the format of 'x.txt'",
        ),
    ],
)
def test_bad_documents_are_refused_with_the_field_named(document: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_definition(document, {"user": USER}, {})


def test_unknown_references_are_named() -> None:
    with pytest.raises(
        NotFound, match=r"spec.entities: no entity 'user' is applied \(known: none\)"
    ):
        parse_definition(to_document(STATS), {}, {})
    service = to_document(FeatureService(name="fraud", features=[STATS[["spend"]]]))
    with pytest.raises(NotFound, match=r"spec.features\[0\]: no feature view 'stats'"):
        parse_definition(service, {}, {})
    service["spec"]["features"][0]["features"] = ["nope"]
    with pytest.raises(NotFound, match=r"spec.features\[0\]: feature 'nope' in view 'stats'"):
        parse_definition(service, {}, {"stats": STATS})
