"""Materialisation: the newest offline row per entity, copied to the online store in chunks.

For one feature view and a window ``[start, end]`` (both inclusive; no lower bound when
``start`` is ``None``) one DuckDB query reads the view's source where it lies (a PostgreSQL
source: an Arrow stream of the view's columns and the window's rows) and keeps, per
entity, the row with the latest event time, ties broken by the latest created time (the
offline store's rule, :mod:`._pit`). Its result is fetched ``chunk_rows`` rows at a time and
each chunk written to the online store, so memory stays bounded however big the source is.
The online store keeps the newest row per entity, so re-running a window, or materialising an
older window after a newer one, never replaces a newer value.

Values the online store cannot hold as JSON scalars are encoded: ``UnixTimestamp`` as
microseconds since the epoch, ``Bytes`` as base64 text (:func:`encode_value`);
:mod:`._online_read` decodes them.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from modelport.core.errors import InvalidInput, NotFound
from modelport.features import _pit
from modelport.features.definitions import FeatureView
from modelport.features.offline import connect, inspect_source, open_stream
from modelport.features.online import OnlineStore
from modelport.features.types import Bytes, DataType, UnixTimestamp

__all__ = [
    "EPOCH",
    "MaterializeSummary",
    "as_utc",
    "encode_value",
    "latest_rows_query",
    "materialize_view",
    "materialize_views",
    "online_views",
    "write_online",
]

# The online codec's epoch and unit, repeated so importing this does not import the codec.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EVENT = "__mp_event_ts"
_CREATED = "__mp_created_ts"
_STREAM = "__mp_src"

#: Called with the rows written so far after each chunk.
ProgressCallback = Callable[[int], None]


@dataclass
class MaterializeSummary:
    """What one materialisation wrote.

    Attributes:
        start: The window's start per view (``None``: from the beginning of the data).
        end: The window's end.
        rows: Per view, the entities read from the offline store (one newest row each).
        applied: Per view, the rows the online store applied (the others were not newer than
            what it held).
    """

    end: datetime
    start: dict[str, datetime | None] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)


def as_utc(ts: datetime, what: str) -> datetime:
    """Return ``ts`` as an aware UTC datetime (naive is UTC).

    Raises:
        InvalidInput: ``ts`` is not a datetime.
    """
    if not isinstance(ts, datetime):
        raise InvalidInput(f"{what} must be a datetime, got {type(ts).__name__}")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _ts_literal(ts: datetime) -> str:
    return f"TIMESTAMP '{ts.astimezone(UTC).replace(tzinfo=None).isoformat(' ')}'"


def latest_rows_query(
    view: FeatureView, start: datetime | None, end: datetime | None, relation: str = ""
) -> str:
    """The query for the newest row per entity of ``view`` with an event time in the window.

    Args:
        view: The feature view.
        start: The window's first instant (UTC), or ``None`` for no lower bound.
        end: The window's last instant (UTC), or ``None`` for no upper bound.
        relation: What to read the rows from; by default the view's batch source (a
            PostgreSQL source as the stream ``__mp_src``).

    Returns:
        SQL returning the join keys, ``__mp_event_ts``, ``__mp_created_ts`` (null without a
        created column) and each feature cast to its declared type.
    """
    source = view.batch_source
    keys = [_pit.quote(k) for k in view.join_keys]
    event = f"CAST({_pit.quote(source.timestamp_field)} AS TIMESTAMP)"
    created = (
        f"CAST({_pit.quote(source.created_timestamp_column)} AS TIMESTAMP)"
        if source.created_timestamp_column
        else "CAST(NULL AS TIMESTAMP)"
    )
    cols = [*keys, f"{event} AS {_EVENT}", f"{created} AS {_CREATED}"]
    cols += [
        f"CAST({_pit.quote(f.name)} AS {f.dtype.sql_type}) AS {_pit.quote(f.name)}"
        for f in view.features
    ]
    # A row without a key matches no entity row offline; online it would be refused.
    bounds = [f"{k} IS NOT NULL" for k in keys]
    if end is not None:
        bounds.append(f"{event} <= {_ts_literal(end)}")
    if start is not None:
        bounds.append(f"{event} >= {_ts_literal(start)}")
    order = f"{event} DESC" + (
        f", {created} DESC NULLS LAST" if source.created_timestamp_column else ""
    )
    return (
        f"SELECT {', '.join(cols)}\nFROM {relation or _pit.relation(source, _STREAM)}\n"
        f"WHERE {' AND '.join(bounds)}\n"
        f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} ORDER BY {order}) = 1"
    )


def encode_value(dtype: DataType, value: Any) -> Any:
    """A feature value as the JSON scalar the online store holds.

    Args:
        dtype: The feature's declared type.
        value: The value DuckDB returned for it.

    Returns:
        ``value``, or microseconds since the epoch for a ``UnixTimestamp``, or base64 text for
        ``Bytes``.
    """
    if value is None:
        return None
    if dtype is UnixTimestamp:
        return (as_utc(value, "a UnixTimestamp value") - EPOCH) // timedelta(microseconds=1)
    if dtype is Bytes:
        return base64.b64encode(value).decode("ascii")
    return value


def _encoder(dtype: DataType) -> Callable[[list[Any]], list[Any]] | None:
    if dtype is UnixTimestamp or dtype is Bytes:
        return lambda column: [encode_value(dtype, v) for v in column]
    return None


def materialize_view(
    online: OnlineStore,
    view: FeatureView,
    start: datetime | None,
    end: datetime,
    *,
    duckdb_config: dict[str, str | int],
    chunk_rows: int,
    on_progress: ProgressCallback | None = None,
) -> tuple[int, int]:
    """Write the newest row per entity of ``view`` in ``[start, end]`` to ``online``.

    Args:
        online: The online store.
        view: The feature view.
        start: The window's first instant (UTC), or ``None`` for no lower bound.
        end: The window's last instant (UTC).
        duckdb_config: Settings for the DuckDB connection.
        chunk_rows: Rows fetched from DuckDB and written to the online store at a time.
        on_progress: Called with the rows written so far after each chunk.

    Returns:
        The rows read and the rows the online store applied.

    Raises:
        NotFound: The source does not exist.
        ConfigError: The view's definition does not match its source.
        ServiceUnavailable: A PostgreSQL source's server cannot be reached.
        InvalidInput: Reading the rows failed.
    """
    with connect(duckdb_config) as con, ExitStack() as stack:
        checked = inspect_source(con, view, view.features)
        stream = open_stream(
            con,
            stack,
            view,
            checked,
            view.features,
            _STREAM,
            lower=None if start is None else _naive_utc(start),
            upper=_naive_utc(end),
            not_null=True,
        )
        try:
            reader = con.sql(latest_rows_query(view, start, end)).to_arrow_reader(chunk_rows)
            return write_online(online, view, reader, on_progress)
        except (duckdb.Error, pa.ArrowException, InvalidInput) as exc:
            if stream is not None and stream.error is not None:
                raise stream.error from None
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(f"reading the rows of view {view.name!r} failed: {exc}") from exc


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None)


def write_online(
    online: OnlineStore,
    view: FeatureView,
    reader: pa.RecordBatchReader,
    on_progress: ProgressCallback | None = None,
) -> tuple[int, int]:
    """Write the rows of a :func:`latest_rows_query` result to ``online``, a batch at a time.

    Args:
        online: The online store.
        view: The feature view the rows are of.
        reader: The query's result: join keys, ``__mp_event_ts``, ``__mp_created_ts``, then
            the view's features.
        on_progress: Called with the rows written so far after each batch.

    Returns:
        The rows read and the rows the online store applied.

    Raises:
        InvalidInput: Reading the rows failed.
    """
    encoders = {f.name: _encoder(f.dtype) for f in view.features}
    nkeys = len(view.join_keys)
    rows = applied = 0
    try:
        for batch in reader:
            if batch.num_rows == 0:
                continue
            columns = pa.Table.from_batches([batch]).to_pydict()
            names = list(columns)
            key_columns = [columns[k] for k in names[:nkeys]]
            keys = list(zip(*key_columns, strict=True))
            values = {}
            for name in names[nkeys + 2 :]:
                encode = encoders[name]
                values[name] = encode(columns[name]) if encode else columns[name]
            applied += online.write(view.name, keys, columns[_EVENT], columns[_CREATED], values)
            rows += batch.num_rows
            if on_progress is not None:
                on_progress(rows)
    except (duckdb.Error, pa.ArrowException) as exc:
        raise InvalidInput(f"reading the rows of view {view.name!r} failed: {exc}") from exc
    return rows, applied


@contextmanager
def progress_bar(enabled: bool | None) -> Iterator[Callable[[str], ProgressCallback] | None]:
    """A rich progress display on stderr, or ``None`` when off.

    Args:
        enabled: ``True`` or ``False``; ``None`` shows it only when stderr is a terminal.

    Yields:
        A function that adds a line for a view and returns its progress callback, or ``None``.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from rich.console import Console  # rich only when a bar is shown
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:

        def add(view: str) -> ProgressCallback:
            task = bar.add_task(f"materialising {view}", total=None)
            return lambda rows: bar.update(task, completed=rows)

        yield add


def materialize_views(
    online: OnlineStore,
    windows: Sequence[tuple[FeatureView, datetime | None]],
    end: datetime,
    *,
    duckdb_config: dict[str, str | int],
    progress: bool | None,
    chunk_rows: int,
    ends: dict[str, datetime] | None = None,
) -> MaterializeSummary:
    """Materialise each view from its start to ``end``, one after another.

    Args:
        online: The online store.
        windows: Per view, its window's start (``None``: from the beginning of the data).
        end: The windows' last instant (UTC).
        duckdb_config: Settings for the DuckDB connections.
        progress: Show a progress display (``None``: only on a terminal).
        chunk_rows: Rows read and written at a time.
        ends: Per view, the latest end materialised; updated as each view completes.

    Returns:
        What was read and applied per view.

    Raises:
        InvalidInput: ``chunk_rows`` is not an int of at least 1.
    """
    if type(chunk_rows) is not int or chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be an int >= 1, got {chunk_rows!r}")
    summary = MaterializeSummary(end=end)
    with progress_bar(progress) as add:
        for view, start in windows:
            summary.start[view.name] = start
            summary.rows[view.name], summary.applied[view.name] = materialize_view(
                online,
                view,
                start,
                end,
                duckdb_config=duckdb_config,
                chunk_rows=chunk_rows,
                on_progress=add(view.name) if add else None,
            )
            if ends is not None:
                last = ends.get(view.name)
                ends[view.name] = end if last is None else max(last, end)
    return summary


def online_views(
    views: Mapping[str, FeatureView], names: Sequence[str] | None
) -> list[FeatureView]:
    """The views to materialise: those named, or every view with ``online=True`` (by name).

    Raises:
        InvalidInput: ``names`` is a string, or a named view has ``online=False``.
        NotFound: A named view does not exist.
    """
    if names is None:
        return [views[n] for n in sorted(views) if views[n].online]
    if isinstance(names, str):
        raise InvalidInput(f"views must be a list of view names, not the string {names!r}")
    chosen = []
    for name in names:
        if name not in views:
            known = ", ".join(sorted(views)) or "none"
            raise NotFound(f"feature view {name!r} does not exist; known: {known}")
        if not views[name].online:
            raise InvalidInput(f"feature view {name!r} has online=False: not materialised")
        chosen.append(views[name])
    return chosen
