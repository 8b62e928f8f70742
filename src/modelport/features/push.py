"""Push: rows sent by a client, written online, appended to the batch source, or both.

Feast's ``store.push(push_source_name, df, to=PushMode.ONLINE)``. The views whose ``source`` is
the :class:`~.definitions.PushSource` (:func:`push_views`) take the rows; :func:`push_rows` is
the whole operation, for :meth:`FeatureStore.push` and the control plane alike:

1. check the rows: every view's join keys (str or int values, no nulls), the batch source's
   event time (no nulls) and created time, and every feature, of a type its ``Field`` admits;
   for an offline push, that the rows have exactly the columns of the data already there;
2. offline: append the rows to the batch source. A :class:`FileSource` must be a glob of one
   folder's Parquet files (``data/stats/*.parquet``): the rows become a new part file, written
   under a temporary name that the glob does not match, then renamed, so readers see all of it
   or none. A single-file path is refused rather than rewritten under readers' feet. A
   :class:`PostgreSQLSource` table gets the rows with ``COPY``, in one transaction;
3. online: per view with ``online=True``, the newest pushed row per entity through
   :meth:`OnlineStore.write`, which keeps the newest row, so an old push never overwrites
   newer data.

Nothing is written until every check passed. Offline goes first: if the online write then
fails, pushing again is safe (the online store keeps the newest row, and the offline join picks
one of identical rows). Timestamps are UTC, naive ones taken as UTC.

Errors::

    InvalidInput        the rows do not fit (missing column, wrong type, null key or time)
    ConfigError         no online store for an online push, or a batch source push cannot
                        append to (a single file, CSV, a URL, a query)
    NotFound            no view is fed by the push source
    ServiceUnavailable  a PostgreSQL batch source's server cannot be reached
"""

from __future__ import annotations

import enum
import fnmatch
import glob
import os
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from modelport.core.errors import ConfigError, InvalidInput, NotFound
from modelport.features import _pit, _postgres
from modelport.features.definitions import (
    RESERVED_PREFIX,
    BatchSource,
    FeatureView,
    FileSource,
    PostgreSQLSource,
    PushSource,
    source_label,
)
from modelport.features.materialize import latest_rows_query, write_online
from modelport.features.offline import check_columns, connect, describe, family
from modelport.features.online import OnlineStore

__all__ = ["PushMode", "PushSummary", "as_table", "check_mode", "push_rows", "push_views"]

_PUSHED = "__mp_pushed"
_ONLINE_BATCH_ROWS = 10_000


class PushMode(enum.Enum):
    """Where pushed rows go (Feast's values)."""

    ONLINE = 0
    """The online store only."""
    OFFLINE = 1
    """The batch source only, for training and later materialisation."""
    ONLINE_AND_OFFLINE = 2
    """Both."""


@dataclass
class PushSummary:
    """What one push wrote.

    Attributes:
        rows: The rows pushed.
        applied: Per online view, the rows the online store applied (the others were not
            newer than what it held, or not the newest pushed row of their entity).
        offline: Where the rows were appended: the new Parquet file, or the table; ``None``
            for an online push.
    """

    rows: int
    applied: dict[str, int] = field(default_factory=dict)
    offline: str | None = None


def check_mode(mode: object) -> PushMode:
    """Return ``mode`` if it is a :class:`PushMode`.

    Raises:
        InvalidInput: It is not.
    """
    if not isinstance(mode, PushMode):
        raise InvalidInput(
            f"push mode {mode!r}: expected PushMode.ONLINE, PushMode.OFFLINE or "
            "PushMode.ONLINE_AND_OFFLINE"
        )
    return mode


def push_views(views: Mapping[str, FeatureView], push_source_name: str) -> list[FeatureView]:
    """The views fed by the push source called ``push_source_name``, by name.

    Raises:
        NotFound: No view is.
    """
    found = [
        views[n]
        for n in sorted(views)
        if isinstance(views[n].source, PushSource) and views[n].source.name == push_source_name
    ]
    if not found:
        known = sorted({v.source.name for v in views.values() if isinstance(v.source, PushSource)})
        raise NotFound(
            f"no feature view is fed by push source {push_source_name!r}; push sources: "
            + (", ".join(known) or "none")
        )
    return found


def as_table(data: Any) -> pa.Table:
    """Pushed rows as a pyarrow Table.

    Args:
        data: A pyarrow Table, a pandas DataFrame or a dict of equally long lists.

    Raises:
        InvalidInput: It is none of those.
    """
    if isinstance(data, pa.Table):
        return data
    if type(data).__module__.split(".")[0] == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, dict) and all(isinstance(k, str) for k in data):
        try:
            return pa.table(data)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"the pushed columns cannot form a table: {exc}; expected equally long lists "
                "of values of one type each"
            ) from None
    raise InvalidInput(
        f"pushed rows are a {type(data).__name__}: expected a pyarrow.Table, a pandas "
        "DataFrame or a dict of column name -> list of values"
    )


def push_rows(
    online: OnlineStore | None,
    views: Sequence[FeatureView],
    table: pa.Table,
    mode: PushMode,
    *,
    duckdb_config: dict[str, str | int] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> PushSummary:
    """Push ``table``'s rows to the views fed by one push source.

    Args:
        online: The online store; needed for an online push.
        views: The views fed by the push source (:func:`push_views`).
        table: The rows: the views' join keys, the batch source's time columns and features.
        mode: Where the rows go.
        duckdb_config: Settings for the DuckDB connection that checks and converts the rows.
        clock: The current time (UTC), used in new part files' names.

    Returns:
        What was written.

    Raises:
        InvalidInput: The rows do not fit the views or the batch source.
        ConfigError: An online push without an online store, views of different push sources,
            or a batch source that cannot be appended to.
        ServiceUnavailable: A PostgreSQL batch source's server cannot be reached.
    """
    mode = check_mode(mode)
    source = _push_source(views)
    if not isinstance(table, pa.Table):
        raise InvalidInput(f"pushed rows are a {type(table).__name__}: expected a pyarrow.Table")
    to_online = mode is not PushMode.OFFLINE
    if to_online and online is None:
        raise ConfigError(
            f"cannot push to push source {source.name!r} online: there is no online store; "
            "configure one, or push with to=PushMode.OFFLINE"
        )
    summary = PushSummary(rows=table.num_rows)
    with connect(dict(duckdb_config or {})) as con:
        con.register(_PUSHED, table)
        types = _check_rows(con, views, table, source)
        if table.num_rows == 0:
            return summary
        if mode is not PushMode.ONLINE:
            summary.offline = _append(con, source.batch_source, types, clock)
        if to_online and online is not None:
            for view in views:
                if view.online:
                    relation = _pit.quote(_PUSHED)
                    reader = con.sql(latest_rows_query(view, None, None, relation)).to_arrow_reader(
                        _ONLINE_BATCH_ROWS
                    )
                    summary.applied[view.name] = write_online(online, view, reader)[1]
    return summary


def _push_source(views: Sequence[FeatureView]) -> PushSource:
    if not views or not all(isinstance(v, FeatureView) for v in views):
        raise ConfigError("push needs the feature views fed by the push source; none given")
    sources = [v.source for v in views]
    first = sources[0]
    if not isinstance(first, PushSource):
        raise ConfigError(f"feature view {views[0].name!r} is not fed by a push source")
    for view, source in zip(views, sources, strict=True):
        if not isinstance(source, PushSource) or _identity(source) != _identity(first):
            raise ConfigError(
                f"feature view {view.name!r} is not fed by push source {first.name!r} with "
                f"batch source {source_label(first.batch_source)}: push one source's views"
            )
    return first


def _identity(source: PushSource) -> tuple[str, ...]:
    batch = source.batch_source
    where = (
        (batch.path, batch.file_format)
        if isinstance(batch, FileSource)
        else (batch.url, batch.table, batch.query)
    )
    return (source.name, *where, batch.timestamp_field, batch.created_timestamp_column)


def _check_rows(
    con: duckdb.DuckDBPyConnection,
    views: Sequence[FeatureView],
    table: pa.Table,
    source: PushSource,
) -> dict[str, str]:
    label = f"the rows pushed to {source.name!r}"
    for name in table.column_names:
        if name.startswith(RESERVED_PREFIX):
            raise InvalidInput(
                f"pushed column {name!r}: names starting {RESERVED_PREFIX!r} are reserved"
            )
    types = describe(con, _pit.quote(_PUSHED))
    try:
        for view in views:
            check_columns(view, view.features, types, label)
    except ConfigError as exc:  # the definitions are fine; the rows are not
        raise InvalidInput(exc.message) from None
    for view in views:
        for key in view.join_keys:
            if family(types[key]) not in ("integer", "string"):
                raise InvalidInput(
                    f"join key {key!r} of {label} is {types[key]}: expected integers or strings"
                )
    batch = source.batch_source
    for column in {k for v in views for k in v.join_keys} | {batch.timestamp_field}:
        nulls = table.column(column).null_count
        if nulls:
            raise InvalidInput(f"column {column!r} of {label} has {nulls} null(s): expected values")
    return types


def _append(
    con: duckdb.DuckDBPyConnection,
    batch: BatchSource,
    pushed: dict[str, str],
    clock: Callable[[], datetime] | None,
) -> str:
    if isinstance(batch, FileSource):
        return _append_file(con, batch, pushed, clock)
    return _append_table(con, batch, pushed)


def _part_paths(source: FileSource, now: datetime) -> tuple[Path, Path]:
    path = source.path
    refuse = f"cannot append pushed rows to the FileSource {path!r}"
    if source.file_format != "parquet":
        raise ConfigError(f"{refuse}: pushes write Parquet files; expected a Parquet source")
    if "://" in path:
        raise ConfigError(f"{refuse}: pushes write local files; expected a local path")
    folder, pattern = os.path.split(path)
    if not glob.has_magic(path):
        raise ConfigError(
            f"{refuse}: it is one file, which readers may be reading; put it in a folder and "
            f"make the path a glob of that folder's files, like "
            f"{os.path.join(folder or '.', 'parts', '*.parquet')!r}"
        )
    if (
        glob.has_magic(folder)
        or pattern.count("*") != 1
        or glob.has_magic(pattern.replace("*", ""))
    ):
        raise ConfigError(
            f"{refuse}: expected a glob of one folder's files with a single '*', like "
            "'data/stats/*.parquet'"
        )
    token = f"push-{now.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(6)}"
    name = pattern.replace("*", token)
    temporary = f".{name}.{secrets.token_hex(4)}.tmp"
    if fnmatch.fnmatch(temporary, pattern):
        raise ConfigError(
            f"{refuse}: its glob would match the temporary files a push writes; end it with "
            "the file extension, like '*.parquet'"
        )
    base = Path(folder or ".")
    return base / name, base / temporary


def _append_file(
    con: duckdb.DuckDBPyConnection,
    source: FileSource,
    pushed: dict[str, str],
    clock: Callable[[], datetime] | None,
) -> str:
    final, temporary = _part_paths(source, (clock or (lambda: datetime.now(UTC)))())
    existing = describe(con, _pit.relation(source, "")) if glob.glob(source.path) else {}
    select = _conform(pushed, existing, source_label(source))
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        con.execute(
            f"COPY (SELECT {select} FROM {_pit.quote(_PUSHED)}) TO {_pit.lit(str(temporary))} "
            "(FORMAT parquet)"
        )
        _fsync(temporary)
        os.replace(temporary, final)
        _fsync(final.parent)  # the rename itself survives a crash
    except duckdb.Error as exc:
        raise InvalidInput(
            f"the pushed rows do not convert to the types of {source_label(source)}: {exc}"
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
    return str(final)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _conform(pushed: dict[str, str], existing: dict[str, str], label: str) -> str:
    """The pushed columns as a ``SELECT`` list of ``existing``'s columns and types."""
    if not existing:
        return ", ".join(_pit.quote(c) for c in pushed)
    missing = [c for c in existing if c not in pushed]
    extra = [c for c in pushed if c not in existing]
    if missing or extra:
        raise InvalidInput(
            f"the pushed columns do not match {label}: missing {missing or 'none'}, not in the "
            f"source {extra or 'none'}; expected its columns: {', '.join(existing)}"
        )
    return ", ".join(
        f"CAST({_pit.quote(c)} AS {t}) AS {_pit.quote(c)}" for c, t in existing.items()
    )


def _append_table(
    con: duckdb.DuckDBPyConnection, source: PostgreSQLSource, pushed: dict[str, str]
) -> str:
    columns = _postgres.describe(source)
    extra = [c for c in pushed if c not in columns]
    if extra:
        raise InvalidInput(
            f"pushed columns {extra} are not in {source_label(source)}; its columns: "
            + ", ".join(columns)
        )
    # Times become naive UTC, which the session (TimeZone=UTC) stores as the same instants.
    select = ", ".join(
        f"CAST({_pit.quote(c)} AS TIMESTAMP) AS {_pit.quote(c)}"
        if t.startswith("TIMESTAMP")
        else _pit.quote(c)
        for c, t in pushed.items()
    )
    reader = con.sql(f"SELECT {select} FROM {_pit.quote(_PUSHED)}").to_arrow_reader()
    batches: Iterator[pa.RecordBatch] = iter(reader)
    _postgres.append_rows(source, list(pushed), batches)
    return source_label(source)
