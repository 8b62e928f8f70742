"""The feature store: definitions, the offline store (point-in-time joins) and online stores.

Feast's names, so a Feast feature repository ports by changing its imports::

    from modelport.features import Entity, FeatureView, Field, FileSource, Float64

Sources are files (:class:`FileSource`), PostgreSQL tables or queries
(:class:`PostgreSQLSource`) and push sources (:class:`PushSource`, written by
:meth:`FeatureStore.push` with a :class:`PushMode`). Timestamps are instants in UTC: naive
values are taken as UTC, zoned ones are converted.
The online stores (SQLite, Redis) are in :mod:`modelport.features.online`; a
:class:`FeatureStore` given one materialises views into it and serves online reads.
"""

from __future__ import annotations

from modelport.features._online_read import OnlineResponse
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
from modelport.features.materialize import MaterializeSummary
from modelport.features.offline import RetrievalJob
from modelport.features.push import PushMode, PushSummary
from modelport.features.store import FeatureStore
from modelport.features.types import (
    Bool,
    Bytes,
    DataType,
    Float32,
    Float64,
    Int32,
    Int64,
    String,
    UnixTimestamp,
)

__all__ = [
    # definitions and types
    "Bool",
    "Bytes",
    "DataType",
    "Entity",
    "FeatureService",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "FileSource",
    "PostgreSQLSource",
    "PushSource",
    "Float32",
    "Float64",
    "Int32",
    "Int64",
    "String",
    "UnixTimestamp",
    # the store, its offline retrieval, materialisation and online reads
    "FeatureStore",
    "MaterializeSummary",
    "OnlineResponse",
    "PushMode",
    "PushSummary",
    "RetrievalJob",
]
