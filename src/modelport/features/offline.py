"""The offline store's retrieval job: one DuckDB query over the sources, run on demand.

:class:`RetrievalJob` holds the entity table (registered with DuckDB as an Arrow table, not
copied) and the views to join. Running it first checks each source against its definition
(the file exists, the columns exist, their types fit the declared ``dtype`` and the entity
frame's join keys) from the files' metadata or PostgreSQL's result description, then runs the
point-in-time query (:mod:`._pit`). DuckDB streams the sources; only the result is
materialised. A PostgreSQL source is read through an Arrow stream (:mod:`._postgres`) of the
columns the join needs, with event times between the earliest entity time less the ttl and
the latest entity time.

Errors::

    NotFound            a source file or table does not exist
    ConfigError         a definition does not match its source (missing column, wrong type)
    InvalidInput        the entity frame does not match a source (join key of another type)
    ServiceUnavailable  a PostgreSQL source's server cannot be reached
"""

from __future__ import annotations

import glob
import importlib.util
import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from modelport.core.errors import ConfigError, DependencyMissing, InvalidInput, NotFound
from modelport.core.errors import IntegrityError as CorruptData
from modelport.features import _pit, _postgres
from modelport.features.definitions import (
    RESERVED_PREFIX,
    FeatureView,
    Field,
    FileSource,
    source_label,
)

__all__ = [
    "CheckedSource",
    "RetrievalJob",
    "check_columns",
    "check_entity_frame",
    "check_source",
    "connect",
    "describe",
    "entity_table",
    "family",
    "inspect_source",
    "open_stream",
]

_FAMILIES = {
    "string": ("VARCHAR",),
    "integer": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
    + ("UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"),
    "float": ("FLOAT", "DOUBLE", "DECIMAL"),
}


class RetrievalJob:
    """A point-in-time join, ready to run; each ``to_*`` call runs it.

    Args:
        entity: The entity table with its row numbers in :data:`._pit.ROW_COLUMN`.
        entity_columns: The entity frame's own columns, returned first.
        timestamp_column: The entity frame's column of times.
        selections: The views and features to join.
        feature_columns: The result's feature columns in the order wanted; by default the
            order of ``selections``.
        duckdb_config: Settings for each DuckDB connection (``threads``, ``memory_limit``,
            ``temp_directory``).
    """

    def __init__(
        self,
        entity: pa.Table,
        entity_columns: Sequence[str],
        timestamp_column: str,
        selections: Sequence[_pit.ViewSelection],
        *,
        feature_columns: Sequence[str] | None = None,
        duckdb_config: dict[str, str | int] | None = None,
    ) -> None:
        self._entity = entity
        self._selections = list(selections)
        self._config = dict(duckdb_config or {})
        self._timestamp_column = timestamp_column
        self._sql = _pit.build_query(timestamp_column, self._selections)
        self._entity_columns = list(entity_columns)
        if feature_columns is None:
            feature_columns = [name for s in self._selections for _, name in s.features]
        self._columns = [*entity_columns, *feature_columns]

    def to_sql(self) -> str:
        """The DuckDB query the job runs (over the registered table ``__mp_entity``)."""
        return self._sql

    def to_arrow(self) -> pa.Table:
        """Run the join and return the result: one row per entity row, in the input order.

        Returns:
            The entity frame's columns, unchanged, then one column per feature, of the
            feature's declared type; nulls where no row qualified.

        Raises:
            NotFound: A source file does not exist.
            ConfigError: A definition does not match its source.
            InvalidInput: A join key's type in the entity frame does not match the source's.
        """
        with self._connect() as con, ExitStack() as stack:
            checked = self._check_sources(con)
            streams = self._open_streams(con, stack, checked)
            try:
                result: pa.Table = con.sql(self._sql).to_arrow_table()
            except duckdb.Error as exc:
                for stream in streams:
                    if stream.error is not None:
                        raise stream.error from None
                raise InvalidInput(f"the point-in-time query failed: {exc}") from exc
        return self._assemble(result)

    def _assemble(self, result: pa.Table) -> pa.Table:
        """The entity columns as given, then the features, each row back in the input order."""
        n = self._entity.num_rows
        rows = result.column(_pit.ROW_COLUMN).to_numpy()
        if len(rows) != n:  # one row per entity row is the query's contract
            raise CorruptData(f"the point-in-time query answered {len(rows)} rows for {n}")
        order = np.empty(n, dtype=np.int64)
        order[rows] = np.arange(n, dtype=np.int64)
        features = result.take(pa.array(order))
        names = self._columns[len(self._entity_columns) :]
        columns = [self._entity.column(c) for c in self._entity_columns]
        columns += [features.column(name) for name in names]
        return pa.Table.from_arrays(columns, names=self._columns)

    def to_df(self) -> Any:
        """Run the join and return the result as a ``pandas.DataFrame``.

        Raises:
            DependencyMissing: pandas is not installed (use :meth:`to_arrow`).
        """
        if importlib.util.find_spec("pandas") is None:
            raise DependencyMissing("to_df() needs pandas: pip install pandas, or use to_arrow()")
        return self.to_arrow().to_pandas()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = connect(self._config)
        con.register(_pit.ENTITY_TABLE, self._entity)
        return con

    def _check_sources(self, con: duckdb.DuckDBPyConnection) -> list[CheckedSource]:
        entity_types = _describe(con, _pit.ENTITY_TABLE)
        checked = []
        for sel in self._selections:
            view = sel.view
            found = inspect_source(con, view, [f for f, _ in sel.features])
            for key in view.join_keys:
                mine, theirs = entity_types[key], found.types[key]
                if _family(mine) != _family(theirs):
                    raise InvalidInput(
                        f"entity frame column {key!r} is {mine} but view {view.name!r} has "
                        f"{theirs} keys: expected the same kind of value"
                    )
            checked.append(found)
        return checked

    def _open_streams(
        self, con: duckdb.DuckDBPyConnection, stack: ExitStack, checked: list[CheckedSource]
    ) -> list[_postgres.Stream]:
        if all(not c.columns for c in checked):
            return []
        ts = _pit.quote(self._timestamp_column)
        [(first, last)] = con.execute(
            f"SELECT min(CAST({ts} AS TIMESTAMP)), max(CAST({ts} AS TIMESTAMP)) "
            f"FROM {_pit.ENTITY_TABLE}"
        ).fetchall()
        streams = []
        for n, (sel, found) in enumerate(zip(self._selections, checked, strict=True)):
            lower = _minus(first, sel.view.ttl)
            stream = open_stream(
                con,
                stack,
                sel.view,
                found,
                [f for f, _ in sel.features],
                _pit.stream_name(n),
                lower=lower,
                upper=last if last is not None else datetime.min,  # no entity rows: no rows
            )
            if stream is not None:
                streams.append(stream)
        return streams


def connect(config: dict[str, str | int]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``config`` whose casts of zoned times to naive ones give UTC."""
    con = duckdb.connect(config=dict(config))
    try:
        # Without the ICU extension the casts are UTC already, and the setting does not exist.
        con.execute("SET TimeZone = 'UTC'")
    except duckdb.Error:
        pass
    return con


@dataclass
class CheckedSource:
    """A view's source, checked against its definition.

    Attributes:
        types: The source's column types, as DuckDB names them.
        columns: A PostgreSQL source's columns, by name, for :func:`open_stream`; empty for
            files.
    """

    types: dict[str, str]
    columns: dict[str, _postgres.Column] = dataclass_field(default_factory=dict)


def inspect_source(
    con: duckdb.DuckDBPyConnection, view: FeatureView, features: Sequence[Field]
) -> CheckedSource:
    """Check that ``view``'s source exists and holds its keys, times and ``features``.

    Returns:
        The source's column types (and a PostgreSQL source's columns).

    Raises:
        NotFound: The source does not exist or cannot be read.
        ConfigError: A column is missing or of a type its definition does not admit.
        ServiceUnavailable: A PostgreSQL source's server cannot be reached.
    """
    source = view.batch_source
    if isinstance(source, FileSource):
        _check_exists(source.path)
        try:
            types = _describe(con, _pit.relation(source, ""))
        except duckdb.Error as exc:
            raise NotFound(f"cannot read the source of view {view.name!r}: {exc}") from exc
        found = CheckedSource(types)
    else:
        columns = _postgres.describe(source)
        found = CheckedSource({c.name: c.duckdb_type for c in columns.values()}, columns)
    _check_view(view, features, found.types)
    return found


def check_source(
    con: duckdb.DuckDBPyConnection, view: FeatureView, features: Sequence[Field]
) -> dict[str, str]:
    """Check that ``view``'s source exists and holds its keys, times and ``features``.

    Returns:
        The source's column types, as DuckDB names them.

    Raises:
        NotFound: The source does not exist or cannot be read.
        ConfigError: A column is missing or of a type its definition does not admit.
        ServiceUnavailable: A PostgreSQL source's server cannot be reached.
    """
    return inspect_source(con, view, features).types


def open_stream(
    con: duckdb.DuckDBPyConnection,
    stack: ExitStack,
    view: FeatureView,
    checked: CheckedSource,
    features: Sequence[Field],
    name: str,
    *,
    lower: datetime | None,
    upper: datetime | None,
    not_null: bool = False,
) -> _postgres.Stream | None:
    """Register a PostgreSQL source's rows with DuckDB as the Arrow stream ``name``.

    Only the view's keys, time columns and ``features`` are selected, and only rows with an
    event time in ``[lower, upper]``; the stream closes when ``stack`` does. A file source
    needs no stream: DuckDB reads it where it lies.

    Args:
        con: The DuckDB connection.
        stack: Closes the stream's connection.
        view: The view.
        checked: What :func:`inspect_source` found.
        features: The features read.
        name: The name the query reads the stream by (:func:`._pit.stream_name`).
        lower: The earliest event time wanted (naive UTC), or ``None``.
        upper: The latest event time wanted (naive UTC), or ``None``.
        not_null: Leave out rows with a null join key.

    Returns:
        The stream, or ``None`` for a file source.
    """
    source = view.batch_source
    if isinstance(source, FileSource):
        return None
    wanted = [
        *view.join_keys,
        source.timestamp_field,
        source.created_timestamp_column,
        *(f.name for f in features),
    ]
    stream = stack.enter_context(
        _postgres.stream(
            source,
            _postgres.columns_of(checked.columns, wanted),
            lower=lower,
            upper=upper,
            not_null=view.join_keys if not_null else (),
        )
    )
    con.register(name, stream.reader)
    return stream


def _minus(first: datetime | None, ttl: timedelta) -> datetime | None:
    if first is None or ttl <= timedelta(0):
        return None
    try:
        return first - ttl
    except OverflowError:
        return None


def describe(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """The column types of ``relation`` (a table name or table function), as DuckDB names them."""
    return _describe(con, relation)


def family(duckdb_type: str) -> str:
    """The kind of value a DuckDB type holds: ``integer``, ``string``, ``float`` or its name."""
    return _family(duckdb_type)


def _describe(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _check_exists(path: str) -> None:
    if "://" in path:
        return  # a URL: DuckDB says whether it exists
    if glob.has_magic(path):
        if not glob.glob(path, recursive=True):
            raise NotFound(f"no source file matches {path!r}")
    elif not os.path.exists(path):
        raise NotFound(f"source file {path!r} does not exist")


def check_columns(
    view: FeatureView, features: Sequence[Field], types: dict[str, str], label: str = ""
) -> None:
    """Check that columns of ``types`` hold ``view``'s keys, times and ``features``.

    Args:
        view: The view.
        features: The features needed.
        types: Column name -> DuckDB type name.
        label: How messages name the columns' owner; by default "the source" and the view's
            batch source.

    Raises:
        ConfigError: A column is missing or of a type its definition does not admit.
    """
    _check_view(view, features, types, label)


def _check_view(
    view: FeatureView, features: Sequence[Field], types: dict[str, str], label: str = ""
) -> None:
    source = view.batch_source
    label = label or f"the source {source_label(source)}"
    needed = [*view.entity_columns, *features]
    for column in [*view.join_keys, source.timestamp_field, source.created_timestamp_column]:
        if column and column not in types:
            raise ConfigError(
                f"column {column!r} of view {view.name!r} is not in {label}; "
                f"its columns: {', '.join(types)}"
            )
    for field in needed:
        if field.name not in types:
            raise ConfigError(
                f"field {field.name!r} of view {view.name!r} is not in {label}; its columns: "
                f"{', '.join(types)}"
            )
        if not field.dtype.admits(types[field.name]):
            raise ConfigError(
                f"field {field.name!r} of view {view.name!r} is declared {field.dtype} but "
                f"{label} holds {types[field.name]}"
            )
    for column in [source.timestamp_field, source.created_timestamp_column]:
        if column and not _is_time(types[column]):
            raise ConfigError(
                f"column {column!r} of {label} is {types[column]}: expected a timestamp or date"
            )


def _is_time(duckdb_type: str) -> bool:
    return duckdb_type.startswith("TIMESTAMP") or duckdb_type == "DATE"


def _family(duckdb_type: str) -> str:
    base = duckdb_type.split("(", 1)[0]
    for family, members in _FAMILIES.items():
        if base in members:
            return family
    return base


def entity_table(entity_df: Any) -> pa.Table:
    """``entity_df`` as a pyarrow Table (it may be a pandas DataFrame).

    Raises:
        InvalidInput: It is neither.
    """
    if isinstance(entity_df, pa.Table):
        return entity_df
    if type(entity_df).__module__.split(".")[0] == "pandas":
        return pa.Table.from_pandas(entity_df, preserve_index=False)
    raise InvalidInput(
        f"entity_df is a {type(entity_df).__name__}: expected a pyarrow.Table or a pandas DataFrame"
    )


def check_entity_frame(
    table: pa.Table, timestamp_column: str, selections: list[_pit.ViewSelection]
) -> None:
    """Check an entity frame has the time column and join keys, and no clashing names.

    Raises:
        InvalidInput: It does not.
    """
    names = table.column_names
    for name in names:
        if name.startswith(RESERVED_PREFIX):
            raise InvalidInput(
                f"entity frame column {name!r}: names starting {RESERVED_PREFIX!r} are reserved"
            )
    if timestamp_column not in names:
        raise InvalidInput(
            f"the entity frame has no {timestamp_column!r} column: expected the rows' times there"
        )
    ts_type = table.schema.field(timestamp_column).type
    if not (pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type)):
        raise InvalidInput(
            f"entity frame column {timestamp_column!r} is {ts_type}: expected a timestamp or date"
        )
    for sel in selections:
        for key in sel.view.join_keys:
            if key not in names:
                raise InvalidInput(
                    f"the entity frame has no join key {key!r}, needed by feature view "
                    f"{sel.view.name!r}"
                )
        for _, out in sel.features:
            if out in names:
                raise InvalidInput(
                    f"the entity frame already has a column {out!r}, the name of a requested "
                    "feature: rename it, or pass full_feature_names=True"
                )
