"""The offline store's retrieval job: one DuckDB query over the sources, run on demand.

:class:`RetrievalJob` holds the entity table (registered with DuckDB as an Arrow table, not
copied) and the views to join. Running it first checks each source against its definition
(the file exists, the columns exist, their types fit the declared ``dtype`` and the entity
frame's join keys) from the files' metadata, then runs the point-in-time query
(:mod:`._pit`). DuckDB streams the sources; only the result is materialised.

Errors::

    NotFound      a source file does not exist
    ConfigError   a definition does not match its source (missing column, wrong type)
    InvalidInput  the entity frame does not match a source (join key of another type)
"""

from __future__ import annotations

import glob
import importlib.util
import os
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from modelport.core.errors import ConfigError, DependencyMissing, InvalidInput, NotFound
from modelport.features import _pit
from modelport.features.definitions import RESERVED_PREFIX, FeatureView, Field

__all__ = ["RetrievalJob", "check_entity_frame", "check_source", "connect", "entity_table"]

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
        self._sql = _pit.build_query(entity_columns, timestamp_column, self._selections)
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
        with self._connect() as con:
            self._check_sources(con)
            try:
                result: pa.Table = con.sql(self._sql).to_arrow_table()
            except duckdb.Error as exc:
                raise InvalidInput(f"the point-in-time query failed: {exc}") from exc
        return _restore_types(result.select(self._columns), self._entity.schema)

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

    def _check_sources(self, con: duckdb.DuckDBPyConnection) -> None:
        entity_types = _describe(con, _pit.ENTITY_TABLE)
        for sel in self._selections:
            view = sel.view
            types = check_source(con, view, [f for f, _ in sel.features])
            for key in view.join_keys:
                mine, theirs = entity_types[key], types[key]
                if _family(mine) != _family(theirs):
                    raise InvalidInput(
                        f"entity frame column {key!r} is {mine} but view {view.name!r} has "
                        f"{theirs} keys: expected the same kind of value"
                    )


def connect(config: dict[str, str | int]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``config`` whose casts of zoned times to naive ones give UTC."""
    con = duckdb.connect(config=dict(config))
    try:
        # Without the ICU extension the casts are UTC already, and the setting does not exist.
        con.execute("SET TimeZone = 'UTC'")
    except duckdb.Error:
        pass
    return con


def check_source(
    con: duckdb.DuckDBPyConnection, view: FeatureView, features: Sequence[Field]
) -> dict[str, str]:
    """Check that ``view``'s source exists and holds its keys, times and ``features``.

    Returns:
        The source's column types, as DuckDB names them.

    Raises:
        NotFound: The source does not exist or cannot be read.
        ConfigError: A column is missing or of a type its definition does not admit.
    """
    _check_exists(view.source.path)
    try:
        types = _describe(con, _pit.relation(view.source))
    except duckdb.Error as exc:
        raise NotFound(f"cannot read the source of view {view.name!r}: {exc}") from exc
    _check_view(view, features, types)
    return types


def _restore_types(result: pa.Table, entity: pa.Schema) -> pa.Table:
    """Give the entity columns back their own types (DuckDB returns zoned times in UTC)."""
    fields = [entity.field(f.name) if f.name in entity.names else f for f in result.schema]
    target = pa.schema(fields)
    if target.equals(result.schema):
        return result
    try:
        return result.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return result  # the same values in DuckDB's type: better than failing the job


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


def _check_view(view: FeatureView, features: Sequence[Field], types: dict[str, str]) -> None:
    source = view.source
    needed = [*view.entity_columns, *features]
    for column in [*view.join_keys, source.timestamp_field, source.created_timestamp_column]:
        if column and column not in types:
            raise ConfigError(
                f"column {column!r} of view {view.name!r} is not in the source {source.path!r}; "
                f"its columns: {', '.join(types)}"
            )
    for field in needed:
        if field.name not in types:
            raise ConfigError(
                f"field {field.name!r} of view {view.name!r} is not in the source "
                f"{source.path!r}; its columns: {', '.join(types)}"
            )
        if not field.dtype.admits(types[field.name]):
            raise ConfigError(
                f"field {field.name!r} of view {view.name!r} is declared {field.dtype} but the "
                f"source {source.path!r} holds {types[field.name]}"
            )
    for column in [source.timestamp_field, source.created_timestamp_column]:
        if column and not _is_time(types[column]):
            raise ConfigError(
                f"column {column!r} of the source {source.path!r} is {types[column]}: expected "
                "a timestamp or date"
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
