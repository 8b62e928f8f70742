"""Feature definitions with Feast's signatures: a Feast repository ports by changing its imports.

``Entity``, ``Field``, ``FileSource`` (Parquet and CSV), ``FeatureView`` (with ``view[["a", "b"]]``
projections) and ``FeatureService``. Every definition is validated when it is built and raises
:class:`~modelport.core.errors.ConfigError` naming the bad part. What a definition says about
its source (columns, types) is checked against the data when it is read
(:mod:`modelport.features.offline`).

Names (of entities, views, services, fields, join keys and timestamp columns) are identifiers:
a letter or ``_`` then letters, digits or ``_``; the prefix ``__mp_`` is reserved for the
offline store's own columns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from modelport.core.errors import ConfigError, NotFound
from modelport.features.types import DataType

__all__ = [
    "Entity",
    "FeatureService",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "FileSource",
    "check_name",
]

RESERVED_PREFIX = "__mp_"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMATS: dict[str, Literal["parquet", "csv"]] = {".parquet": "parquet", ".csv": "csv"}


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a valid definition name.

    Args:
        value: The name to check.
        what: What the name is for, used in the error (``"entity name"``).

    Returns:
        The name.

    Raises:
        ConfigError: The name is empty, not an identifier or starts with ``__mp_``.
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(
            f"{what} {value!r} is not valid: expected a letter or '_' then letters, digits or '_'"
        )
    if value.startswith(RESERVED_PREFIX):
        raise ConfigError(
            f"{what} {value!r} is reserved: names may not start with {RESERVED_PREFIX!r}"
        )
    return value


class Entity:
    """What features are about (a driver, a customer), and the columns that identify one.

    Args:
        name: The entity's name.
        join_keys: The columns that identify an instance in sources and entity frames;
            defaults to ``[name]``. Several keys make a composite key.
        description: Free text.
        tags: Free key/value labels.
    """

    def __init__(
        self,
        *,
        name: str,
        join_keys: Sequence[str] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.name = check_name(name, "entity name")
        keys = [name] if join_keys is None else list(join_keys)
        if not keys:
            raise ConfigError(f"entity {name!r} has no join_keys: expected at least one column")
        self._join_keys = tuple(check_name(k, f"join key of entity {name!r}") for k in keys)
        self.description = description
        self.tags = dict(tags or {})

    @property
    def join_keys(self) -> list[str]:
        """The join key columns."""
        return list(self._join_keys)

    @property
    def join_key(self) -> str:
        """The first join key (Feast's entities have exactly one)."""
        return self._join_keys[0]

    def __repr__(self) -> str:
        return f"Entity(name={self.name!r}, join_keys={self.join_keys!r})"


class Field:
    """A named, typed column of a feature view.

    Args:
        name: The column's name in the source, and the feature's name.
        dtype: Its type (:mod:`modelport.features.types`).
        description: Free text.
        tags: Free key/value labels.
    """

    def __init__(
        self,
        *,
        name: str,
        dtype: DataType,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.name = check_name(name, "field name")
        if not isinstance(dtype, DataType):
            raise ConfigError(
                f"field {name!r} has dtype {dtype!r}: expected one of modelport.features.types "
                "(Float64, Int64, String, Bool, ...)"
            )
        self.dtype = dtype
        self.description = description
        self.tags = dict(tags or {})

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, dtype={self.dtype})"


class FileSource:
    """Feature rows in Parquet or CSV files, read by DuckDB where they lie.

    Timestamps are instants in UTC: columns with a time zone are converted, naive ones are taken
    as UTC.

    Args:
        path: A file, or a glob (``data/*.parquet``); local or any URL DuckDB reads.
        timestamp_field: The column holding each row's event time.
        created_timestamp_column: Optional column of when a row was written; among rows with
            the same keys and event time, the latest created wins.
        file_format: ``"parquet"`` or ``"csv"``; by default taken from the path's extension.
        name: Optional name of the source.
        description: Free text.
    """

    def __init__(
        self,
        *,
        path: str,
        timestamp_field: str,
        created_timestamp_column: str = "",
        file_format: Literal["parquet", "csv"] | None = None,
        name: str = "",
        description: str = "",
    ) -> None:
        if not isinstance(path, str) or not path:
            raise ConfigError("FileSource needs a path: a file or glob of Parquet or CSV files")
        self.path = path
        self.timestamp_field = check_name(timestamp_field, "FileSource timestamp_field")
        self.created_timestamp_column = (
            check_name(created_timestamp_column, "FileSource created_timestamp_column")
            if created_timestamp_column
            else ""
        )
        if file_format is None:
            suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
            if suffix not in _FORMATS:
                raise ConfigError(
                    f"cannot tell the format of {path!r}: name it .parquet or .csv, or pass "
                    "file_format='parquet' or 'csv'"
                )
            file_format = _FORMATS[suffix]
        if file_format not in ("parquet", "csv"):
            raise ConfigError(f"file_format {file_format!r}: expected 'parquet' or 'csv'")
        self.file_format: Literal["parquet", "csv"] = file_format
        self.name = name
        self.description = description

    def __repr__(self) -> str:
        return f"FileSource(path={self.path!r}, timestamp_field={self.timestamp_field!r})"


class FeatureView:
    """A group of features from one source, keyed by entities, with a time to live.

    Fields of ``schema`` named like a join key describe that key's column; the others are the
    view's features.

    Args:
        name: The view's name (``"view:feature"`` references use it).
        entities: The entities whose join keys key the source's rows.
        schema: The typed columns.
        source: Where the feature rows are.
        ttl: How old a row may be and still be served; ``timedelta(0)`` means forever.
        online: Whether the view is materialised to the online store.
        description: Free text.
        tags: Free key/value labels.
    """

    def __init__(
        self,
        *,
        name: str,
        entities: Sequence[Entity],
        schema: Sequence[Field],
        source: FileSource,
        ttl: timedelta = timedelta(0),
        online: bool = True,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.name = check_name(name, "feature view name")
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise ConfigError(f"feature view {name!r} needs at least one entity (Entity objects)")
        if not isinstance(source, FileSource):
            raise ConfigError(f"feature view {name!r} has source {source!r}: expected a FileSource")
        if not isinstance(ttl, timedelta) or ttl < timedelta(0):
            raise ConfigError(f"feature view {name!r} has ttl {ttl!r}: expected a timedelta >= 0")
        self.entities = list(entities)
        self.join_keys = _unique([k for e in self.entities for k in e.join_keys], f"view {name!r}")
        fields = list(schema)
        _unique([f.name for f in fields], f"schema of view {name!r}")
        self.schema = fields
        self.entity_columns = [f for f in fields if f.name in self.join_keys]
        self.features = [f for f in fields if f.name not in self.join_keys]
        if not self.features:
            raise ConfigError(
                f"feature view {name!r} has no features: its schema only names join keys"
            )
        self.source = source
        self.ttl = ttl
        self.online = online
        self.description = description
        self.tags = dict(tags or {})

    def __getitem__(self, names: Sequence[str]) -> FeatureViewProjection:
        """A projection of some features, for a :class:`FeatureService` (``view[["a", "b"]]``).

        Raises:
            NotFound: A name is not a feature of the view.
        """
        return FeatureViewProjection(self, [self.feature(n) for n in names])

    def feature(self, name: str) -> Field:
        """The feature called ``name``.

        Raises:
            NotFound: The view has no such feature.
        """
        for f in self.features:
            if f.name == name:
                return f
        known = ", ".join(f.name for f in self.features)
        raise NotFound(
            f"feature {name!r} in view {self.name!r} does not exist; its features: {known}"
        )

    def __repr__(self) -> str:
        return f"FeatureView(name={self.name!r}, features={[f.name for f in self.features]!r})"


class FeatureViewProjection:
    """Some of a view's features, as a :class:`FeatureService` lists them.

    Args:
        view: The view.
        features: The chosen features, in order.
    """

    def __init__(self, view: FeatureView, features: Sequence[Field]) -> None:
        self.view = view
        self.features = list(features)

    @property
    def name(self) -> str:
        """The view's name."""
        return self.view.name


class FeatureService:
    """A named set of features a model uses: whole views or projections of them.

    Args:
        name: The service's name.
        features: Feature views (all their features) or projections (``view[["a"]]``).
        description: Free text.
        tags: Free key/value labels.
    """

    def __init__(
        self,
        *,
        name: str,
        features: Sequence[FeatureView | FeatureViewProjection],
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.name = check_name(name, "feature service name")
        if not features:
            raise ConfigError(f"feature service {name!r} lists no features")
        self.projections: list[FeatureViewProjection] = []
        for item in features:
            if isinstance(item, FeatureView):
                item = FeatureViewProjection(item, item.features)
            if not isinstance(item, FeatureViewProjection):
                raise ConfigError(
                    f"feature service {name!r} lists {item!r}: expected feature views or "
                    "projections (view[['a', 'b']])"
                )
            self.projections.append(item)
        self.description = description
        self.tags = dict(tags or {})

    def feature_refs(self) -> list[str]:
        """The ``"view:feature"`` references of every feature, in order."""
        return [f"{p.name}:{f.name}" for p in self.projections for f in p.features]

    def __repr__(self) -> str:
        return f"FeatureService(name={self.name!r}, features={self.feature_refs()!r})"


def _unique(names: list[str], where: str) -> list[str]:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ConfigError(f"{n!r} appears twice in {where}: names must be unique")
        seen.add(n)
    return names
