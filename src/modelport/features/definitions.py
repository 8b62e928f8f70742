"""Feature definitions with Feast's signatures: a Feast repository ports by changing its imports.

``Entity``, ``Field``, the batch sources ``FileSource`` (Parquet and CSV) and
``PostgreSQLSource`` (a table or query), ``PushSource`` (rows pushed by clients, kept in a batch
source), ``FeatureView`` (with ``view[["a", "b"]]`` projections) and ``FeatureService``.
Every definition is validated when it is built and raises
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
from typing import Literal, TypeAlias

from modelport.core.errors import ConfigError, NotFound
from modelport.features.types import DataType

__all__ = [
    "BatchSource",
    "Entity",
    "FeatureService",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "FileSource",
    "PostgreSQLSource",
    "PushSource",
    "check_name",
    "source_label",
]

RESERVED_PREFIX = "__mp_"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMATS: dict[str, Literal["parquet", "csv"]] = {".parquet": "parquet", ".csv": "csv"}
_PG_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://", "postgresql+psycopg2://")


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


class PostgreSQLSource:
    """Feature rows in a PostgreSQL table, or the rows of a query, streamed to DuckDB.

    Feast's signature (``feast.infra.offline_stores.contrib.postgres_offline_store``), plus
    ``url``: the connection belongs to the source, so every store reading the definition reads
    the same database. Put no password in the URL (it is kept with the definition); libpq
    finds one in ``~/.pgpass`` or ``PGPASSFILE``. Only the columns a read needs are selected,
    and its time bounds are applied in PostgreSQL. A ``timestamp`` column (without time zone)
    is taken as UTC, a ``timestamptz`` one is converted.

    Args:
        name: The source's name.
        query: A ``SELECT`` whose rows are the source (give this or ``table``).
        table: A table, ``name`` or ``schema.name``, quoted as given (case matters).
        timestamp_field: The column holding each row's event time.
        created_timestamp_column: Optional column of when a row was written; among rows with
            the same keys and event time, the latest created wins.
        url: The database: ``postgresql://user@host:5432/dbname`` (libpq URL; a SQLAlchemy
            ``postgresql+psycopg://`` URL is accepted too). ``connect_timeout`` defaults to
            10 seconds.
        description: Free text.
        tags: Free key/value labels.
        owner: Who owns the source.
    """

    def __init__(
        self,
        *,
        name: str = "",
        query: str = "",
        table: str = "",
        timestamp_field: str,
        created_timestamp_column: str = "",
        url: str,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        if bool(query) == bool(table):
            raise ConfigError(
                f"PostgreSQLSource {name!r} needs exactly one of query= (a SELECT) or table= "
                "(a table name)"
            )
        if not isinstance(url, str) or not url.startswith(_PG_SCHEMES):
            raise ConfigError(
                f"PostgreSQLSource {name!r} has url {url!r}: expected a PostgreSQL URL such as "
                "'postgresql://postgres@127.0.0.1:5432/features'"
            )
        self.table_parts: tuple[str, ...] = ()
        if table:
            parts = tuple(table.split("."))
            if len(parts) > 2 or not all(parts):
                raise ConfigError(
                    f"PostgreSQLSource {name!r} has table {table!r}: expected 'name' or "
                    "'schema.name'"
                )
            self.table_parts = parts
        self.name = name
        self.query = query
        self.table = table
        self.url = url
        self.timestamp_field = check_name(timestamp_field, "PostgreSQLSource timestamp_field")
        self.created_timestamp_column = (
            check_name(created_timestamp_column, "PostgreSQLSource created_timestamp_column")
            if created_timestamp_column
            else ""
        )
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    def __repr__(self) -> str:
        what = f"table={self.table!r}" if self.table else "query=..."
        return f"PostgreSQLSource(name={self.name!r}, {what})"


BatchSource: TypeAlias = FileSource | PostgreSQLSource
"""A source the offline store reads: files or a PostgreSQL table or query."""


class PushSource:
    """Rows that clients push (:meth:`FeatureStore.push`), kept in a batch source.

    A feature view whose ``source`` is a push source reads its ``batch_source`` offline; pushes
    write online, or append to the batch source, or both (:class:`~.push.PushMode`).

    Args:
        name: The name pushes use.
        batch_source: Where pushed rows are kept and read back: a :class:`FileSource` whose
            path is a glob (``data/stats/*.parquet``) or a :class:`PostgreSQLSource` table.
        description: Free text.
        tags: Free key/value labels.
        owner: Who owns the source.
    """

    def __init__(
        self,
        *,
        name: str,
        batch_source: BatchSource,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = check_name(name, "push source name")
        if not isinstance(batch_source, FileSource | PostgreSQLSource):
            raise ConfigError(
                f"push source {name!r} has batch_source {batch_source!r}: expected a FileSource "
                "or PostgreSQLSource"
            )
        self.batch_source = batch_source
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    @property
    def timestamp_field(self) -> str:
        """The batch source's event time column."""
        return self.batch_source.timestamp_field

    @property
    def created_timestamp_column(self) -> str:
        """The batch source's created time column, or ``""``."""
        return self.batch_source.created_timestamp_column

    def __repr__(self) -> str:
        return f"PushSource(name={self.name!r}, batch_source={self.batch_source!r})"


def source_label(source: BatchSource | PushSource) -> str:
    """How messages name a source: its path, table or ``"query <name>"``."""
    if isinstance(source, PushSource):
        return f"push source {source.name!r} ({source_label(source.batch_source)})"
    if isinstance(source, FileSource):
        return repr(source.path)
    if source.table:
        return f"PostgreSQL table {source.table!r}"
    return f"PostgreSQL query {source.name!r}" if source.name else "PostgreSQL query"


class FeatureView:
    """A group of features from one source, keyed by entities, with a time to live.

    Fields of ``schema`` named like a join key describe that key's column; the others are the
    view's features.

    Args:
        name: The view's name (``"view:feature"`` references use it).
        entities: The entities whose join keys key the source's rows.
        schema: The typed columns.
        source: Where the feature rows are: a batch source, or a :class:`PushSource`
            (read offline from its ``batch_source``).
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
        source: FileSource | PostgreSQLSource | PushSource,
        ttl: timedelta = timedelta(0),
        online: bool = True,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.name = check_name(name, "feature view name")
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise ConfigError(f"feature view {name!r} needs at least one entity (Entity objects)")
        if not isinstance(source, FileSource | PostgreSQLSource | PushSource):
            raise ConfigError(
                f"feature view {name!r} has source {source!r}: expected a FileSource, "
                "PostgreSQLSource or PushSource"
            )
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

    @property
    def batch_source(self) -> BatchSource:
        """Where the offline store reads the view: its source, or its push source's batch source."""
        source = self.source
        return source.batch_source if isinstance(source, PushSource) else source

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
