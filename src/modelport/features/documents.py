"""Feature definitions as documents: the YAML a pipeline applies and the registry stores.

Each definition class has a document kind of the platform's resource shape (``apiVersion``,
``kind``, ``metadata``, ``spec``; camelCase), so ``modelport apply -f``, ``modelport features
apply`` and ``PUT /v1/featureviews/{name}`` all take the same thing::

    apiVersion: modelport.io/v1
    kind: Entity
    metadata: {name: user}
    spec: {joinKeys: [user_id]}
    ---
    apiVersion: modelport.io/v1
    kind: FeatureView
    metadata: {name: user_stats}
    spec:
      entities: [user]
      schema:
        - {name: spend_7d, dtype: Float64}
        - {name: orders_7d, dtype: Int64}
      source:
        file: {path: data/user_stats.parquet, timestampField: event_timestamp}
        # or postgres: {table: public.user_stats, timestampField: ts,
        #               url: "postgresql://postgres@db:5432/features"}   (or query: SELECT ...)
        # or push: {name: user_stats_push, batchSource: {file: {path: "data/stats/*.parquet",
        #           timestampField: ts}}}
      ttl: 2d
      online: true
    ---
    apiVersion: modelport.io/v1
    kind: FeatureService
    metadata: {name: fraud_features}
    spec:
      features:
        - {view: user_stats, features: [spend_7d]}
        - {view: merchant_stats}          # every feature of the view

:func:`to_document` turns a definition into its document (defaults filled in, so equal
definitions give equal documents); :func:`parse_definition` does the reverse, with the entities
and views the document names looked up in ``known`` (a feature view names its entities, a
service its views). Errors are :class:`~modelport.core.errors.InvalidInput` naming the field by
its path (``spec.schema[1].dtype``) and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal, TypeAlias, cast

from pydantic import Field as PydanticField
from pydantic import field_validator, model_validator

from modelport.core.errors import ConfigError, InvalidInput, NotFound
from modelport.core.resources import API_VERSION, Spec, parse_duration, parse_resource
from modelport.features import types
from modelport.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    Field,
    FileSource,
    PostgreSQLSource,
    PushSource,
)

__all__ = [
    "KINDS",
    "Definition",
    "DefinitionKind",
    "document_kind",
    "kind_of",
    "parse_definition",
    "to_document",
]

Definition: TypeAlias = Entity | FeatureView | FeatureService
DefinitionKind: TypeAlias = Literal["Entity", "FeatureView", "FeatureService"]

KINDS: tuple[DefinitionKind, ...] = ("Entity", "FeatureView", "FeatureService")
"""The document kinds of feature definitions, in the order they are applied."""

_DTYPES: dict[str, types.DataType] = {
    str(t): t
    for t in (
        types.Int32,
        types.Int64,
        types.Float32,
        types.Float64,
        types.String,
        types.Bool,
        types.Bytes,
        types.UnixTimestamp,
    )
}


class _Meta(Spec):
    name: str
    labels: dict[str, str] = PydanticField(default_factory=dict)


class _EntitySpec(Spec):
    join_keys: list[str] = PydanticField(min_length=1)
    description: str = ""
    tags: dict[str, str] = PydanticField(default_factory=dict)


class _EntityDoc(Spec):
    api_version: Literal["modelport.io/v1"]
    kind: Literal["Entity"]
    metadata: _Meta
    spec: _EntitySpec


class _FieldSpec(Spec):
    name: str
    dtype: str
    description: str = ""
    tags: dict[str, str] = PydanticField(default_factory=dict)

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, dtype: str) -> str:
        if dtype not in _DTYPES:
            raise ValueError(f"expected one of {', '.join(_DTYPES)}")
        return dtype


class _FileSpec(Spec):
    path: str = PydanticField(min_length=1)
    timestamp_field: str
    created_timestamp_column: str = ""
    file_format: Literal["parquet", "csv"] | None = None
    name: str = ""
    description: str = ""


class _PostgresSpec(Spec):
    url: str
    table: str = ""
    query: str = ""
    timestamp_field: str
    created_timestamp_column: str = ""
    name: str = ""
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = PydanticField(default_factory=dict)


class _BatchSpec(Spec):
    """Exactly one of its fields."""

    file: _FileSpec | None = None
    postgres: _PostgresSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> _BatchSpec:
        if (self.file is None) == (self.postgres is None):
            raise ValueError("expected exactly one of file or postgres")
        return self


class _PushSpec(Spec):
    name: str
    batch_source: _BatchSpec
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = PydanticField(default_factory=dict)


class _SourceSpec(Spec):
    """Exactly one of its fields."""

    file: _FileSpec | None = None
    postgres: _PostgresSpec | None = None
    push: _PushSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> _SourceSpec:
        if sum(x is not None for x in (self.file, self.postgres, self.push)) != 1:
            raise ValueError("expected exactly one of file, postgres or push")
        return self


class _ViewSpec(Spec):
    entities: list[str] = PydanticField(min_length=1)
    schema_: list[_FieldSpec] = PydanticField(alias="schema", min_length=1)
    source: _SourceSpec
    ttl: float = 0.0
    online: bool = True
    description: str = ""
    tags: dict[str, str] = PydanticField(default_factory=dict)

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, ttl: object) -> float:
        return parse_duration(ttl)


class _ViewDoc(Spec):
    api_version: Literal["modelport.io/v1"]
    kind: Literal["FeatureView"]
    metadata: _Meta
    spec: _ViewSpec


class _Projection(Spec):
    view: str
    features: list[str] | None = None
    """The view's features to use, in order; all of them when absent."""


class _ServiceSpec(Spec):
    features: list[_Projection] = PydanticField(min_length=1)
    description: str = ""
    tags: dict[str, str] = PydanticField(default_factory=dict)


class _ServiceDoc(Spec):
    api_version: Literal["modelport.io/v1"]
    kind: Literal["FeatureService"]
    metadata: _Meta
    spec: _ServiceSpec


def kind_of(definition: Definition) -> DefinitionKind:
    """The document kind of a definition."""
    if isinstance(definition, Entity):
        return "Entity"
    if isinstance(definition, FeatureView):
        return "FeatureView"
    return "FeatureService"


def to_document(definition: Definition) -> dict[str, Any]:
    """The document of a definition (camelCase, defaults filled in).

    Raises:
        ConfigError: The definition's source has no document form.
    """
    if isinstance(definition, Entity):
        spec: dict[str, Any] = {"joinKeys": definition.join_keys}
    elif isinstance(definition, FeatureView):
        spec = {
            "entities": [e.name for e in definition.entities],
            "schema": [_field_document(f) for f in definition.schema],
            "source": _source_document(definition),
            "ttl": definition.ttl.total_seconds(),
            "online": definition.online,
        }
    else:
        spec = {
            "features": [
                {"view": p.name, "features": [f.name for f in p.features]}
                for p in definition.projections
            ]
        }
    spec["description"] = definition.description
    spec["tags"] = dict(definition.tags)
    return {
        "apiVersion": API_VERSION,
        "kind": type(definition).__name__,
        "metadata": {"name": definition.name, "labels": {}},
        "spec": spec,
    }


def _field_document(field: Field) -> dict[str, Any]:
    return {
        "name": field.name,
        "dtype": str(field.dtype),
        "description": field.description,
        "tags": dict(field.tags),
    }


def _source_document(view: FeatureView) -> dict[str, Any]:
    source = view.source
    if isinstance(source, PushSource):
        return {
            "push": {
                "name": source.name,
                "batchSource": _batch_document(source.batch_source),
                "description": source.description,
                "owner": source.owner,
                "tags": dict(source.tags),
            }
        }
    return _batch_document(source)


def _batch_document(source: FileSource | PostgreSQLSource) -> dict[str, Any]:
    if isinstance(source, PostgreSQLSource):
        return {
            "postgres": {
                "url": source.url,
                "table": source.table,
                "query": source.query,
                "timestampField": source.timestamp_field,
                "createdTimestampColumn": source.created_timestamp_column,
                "name": source.name,
                "description": source.description,
                "owner": source.owner,
                "tags": dict(source.tags),
            }
        }
    return {
        "file": {
            "path": source.path,
            "timestampField": source.timestamp_field,
            "createdTimestampColumn": source.created_timestamp_column,
            "fileFormat": source.file_format,
            "name": source.name,
            "description": source.description,
        }
    }


def document_kind(document: object, number: int | None = None) -> DefinitionKind:
    """The kind of a feature definition document.

    Args:
        document: A parsed YAML or JSON document.
        number: Its position in a file, for the message.

    Raises:
        InvalidInput: It is not a mapping, or its kind is not a feature definition's.
    """
    where = "the document" if number is None else f"document {number}"
    kind = document.get("kind") if isinstance(document, dict) else None
    if kind not in KINDS:
        raise InvalidInput(
            f"{where}: kind {kind!r} is not a feature definition; expected one of "
            + ", ".join(KINDS)
        )
    return cast(DefinitionKind, kind)


def parse_definition(
    document: object,
    entities: Mapping[str, Entity],
    views: Mapping[str, FeatureView],
) -> Definition:
    """Build the definition a document declares.

    Args:
        document: A parsed YAML or JSON document of kind Entity, FeatureView or
            FeatureService.
        entities: The entities a feature view may name, by name.
        views: The views a feature service may name, by name.

    Raises:
        InvalidInput: The document is not a valid definition (the message names the field).
        NotFound: A feature view names an unknown entity, or a service an unknown view or
            feature.
    """
    kind = document_kind(document)
    try:
        if kind == "Entity":
            return _entity(parse_resource(_EntityDoc, document))
        if kind == "FeatureView":
            return _view(parse_resource(_ViewDoc, document), entities)
        return _service(parse_resource(_ServiceDoc, document), views)
    except ConfigError as exc:  # what the definition classes refuse, in document terms
        raise InvalidInput(f"invalid {kind}: {exc.message}") from None


def _entity(doc: _EntityDoc) -> Entity:
    spec = doc.spec
    return Entity(
        name=doc.metadata.name,
        join_keys=spec.join_keys,
        description=spec.description,
        tags=spec.tags,
    )


def _view(doc: _ViewDoc, entities: Mapping[str, Entity]) -> FeatureView:
    spec, name = doc.spec, doc.metadata.name
    used = [
        _named(entities, e, f"feature view {name!r}, spec.entities", "entity")
        for e in spec.entities
    ]
    given = spec.source
    source: FileSource | PostgreSQLSource | PushSource
    if given.push is not None:
        push = given.push
        source = PushSource(
            name=push.name,
            batch_source=_batch_source(push.batch_source.file, push.batch_source.postgres),
            description=push.description,
            tags=push.tags,
            owner=push.owner,
        )
    else:
        source = _batch_source(given.file, given.postgres)
    return FeatureView(
        name=name,
        entities=used,
        schema=[
            Field(name=f.name, dtype=_DTYPES[f.dtype], description=f.description, tags=f.tags)
            for f in spec.schema_
        ],
        source=source,
        ttl=timedelta(seconds=spec.ttl),
        online=spec.online,
        description=spec.description,
        tags=spec.tags,
    )


def _batch_source(
    file: _FileSpec | None, postgres: _PostgresSpec | None
) -> FileSource | PostgreSQLSource:
    if postgres is not None:
        return PostgreSQLSource(
            url=postgres.url,
            table=postgres.table,
            query=postgres.query,
            timestamp_field=postgres.timestamp_field,
            created_timestamp_column=postgres.created_timestamp_column,
            name=postgres.name,
            description=postgres.description,
            tags=postgres.tags,
            owner=postgres.owner,
        )
    if file is None:  # the specs' validators allow no other case
        raise InvalidInput("spec.source: expected exactly one of file, postgres or push")
    return FileSource(
        path=file.path,
        timestamp_field=file.timestamp_field,
        created_timestamp_column=file.created_timestamp_column,
        file_format=file.file_format,
        name=file.name,
        description=file.description,
    )


def _service(doc: _ServiceDoc, views: Mapping[str, FeatureView]) -> FeatureService:
    spec, name = doc.spec, doc.metadata.name
    items: list[FeatureView | FeatureViewProjection] = []
    for number, projection in enumerate(spec.features):
        where = f"feature service {name!r}, spec.features[{number}]"
        view = _named(views, projection.view, where, "feature view")
        if projection.features is None:
            items.append(view)
            continue
        try:
            items.append(view[projection.features])
        except NotFound as exc:
            raise NotFound(f"{where}: {exc.message}") from None
    return FeatureService(name=name, features=items, description=spec.description, tags=spec.tags)


def _named(known: Mapping[str, Any], name: str, where: str, kind: str) -> Any:
    found = known.get(name)
    if found is None:
        shown = ", ".join(sorted(known)) or "none"
        raise NotFound(f"{where}: no {kind} {name!r} is applied (known: {shown})")
    return found
