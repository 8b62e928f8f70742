"""The point-in-time join, written as one DuckDB query.

For an entity row at time ``T`` a feature row qualifies when it has the same join keys and
``T - ttl <= event_ts <= T`` (both bounds inclusive; no lower bound when ``ttl`` is zero); the
latest ``event_ts`` wins, ties broken by the latest created timestamp. The query does it in three
steps, per feature view:

1. reduce the source to one row per (keys, ``event_ts``), keeping the latest created timestamp
   (``QUALIFY row_number()``; skipped when the source has no created column, where exact ties
   are broken arbitrarily, as in Feast), and drop rows that no entity row can use (after the
   latest entity time, or older than the earliest entity time minus ``ttl``);
2. ``ASOF LEFT JOIN`` the entity rows to it on the keys and ``T >= event_ts``, which picks the
   latest qualifying row or none;
3. null the features of a match older than ``T - ttl``: the latest row before ``T`` is expired,
   so every older one is too.

The views' ASOF joins are chained on the entity rows, which keep their order through the
``__mp_row`` column the caller adds. File sources are read where they lie; a PostgreSQL source
is scanned from the Arrow stream the caller registers under :func:`stream_name` of its view.
Every timestamp is compared as a naive UTC ``TIMESTAMP``; the connection's time zone must be
UTC so that ``CAST`` converts zoned values to UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from modelport.features.definitions import BatchSource, FeatureView, Field, FileSource

__all__ = [
    "ENTITY_TABLE",
    "ROW_COLUMN",
    "ViewSelection",
    "build_query",
    "lit",
    "quote",
    "relation",
    "stream_name",
]

ENTITY_TABLE = "__mp_entity"
ROW_COLUMN = "__mp_row"
_TS = "__mp_ts"
_EVENT_TS = "__mp_event_ts"


@dataclass(frozen=True)
class ViewSelection:
    """The features wanted from one view, with the names they get in the result.

    Attributes:
        view: The feature view.
        features: ``(field, output column name)`` pairs, in the order wanted.
    """

    view: FeatureView
    features: tuple[tuple[Field, str], ...]


def quote(name: str) -> str:
    """A SQL identifier for ``name``, quoted."""
    return '"' + name.replace('"', '""') + '"'


def lit(text: str) -> str:
    """A SQL string literal for ``text``."""
    return "'" + text.replace("'", "''") + "'"


def stream_name(index: int) -> str:
    """The name the caller registers the Arrow stream of the ``index``-th view's source under."""
    return f"__mp_src{index}"


def relation(source: BatchSource, stream: str) -> str:
    """What DuckDB reads ``source`` from.

    Args:
        source: The source.
        stream: The name a stream of a source that is not a file (PostgreSQL) is registered
            under.

    Returns:
        A table function reading the files where they lie, or the stream's quoted name.
    """
    if not isinstance(source, FileSource):
        return quote(stream)
    if source.file_format == "csv":
        return f"read_csv({lit(source.path)}, header = true, auto_detect = true)"
    return f"read_parquet({lit(source.path)})"


def _ts(expr: str) -> str:
    return f"CAST({expr} AS TIMESTAMP)"


def _interval(ttl: timedelta) -> str:
    return f"to_microseconds(CAST({ttl // timedelta(microseconds=1)} AS BIGINT))"


def _view_cte(alias: str, sel: ViewSelection, stream: str) -> str:
    view, source = sel.view, sel.view.batch_source
    keys = [quote(k) for k in view.join_keys]
    event_ts = _ts(quote(source.timestamp_field))
    cols = [*keys, f"{event_ts} AS {_EVENT_TS}"]
    cols += [
        f"CAST({quote(field.name)} AS {field.dtype.sql_type}) AS {quote(f'__mp_f{i}')}"
        for i, (field, _) in enumerate(sel.features)
    ]
    bounds = [f"{event_ts} <= (SELECT max({_TS}) FROM __mp_e)"]
    if view.ttl > timedelta(0):
        bounds.append(f"{event_ts} >= (SELECT min({_TS}) FROM __mp_e) - {_interval(view.ttl)}")
    sql = f"{alias} AS (\n  SELECT {', '.join(cols)}\n  FROM {relation(source, stream)}\n"
    sql += f"  WHERE {' AND '.join(bounds)}\n"
    if source.created_timestamp_column:
        created = _ts(quote(source.created_timestamp_column))
        sql += (
            f"  QUALIFY row_number() OVER (PARTITION BY {', '.join([*keys, event_ts])} "
            f"ORDER BY {created} DESC NULLS LAST) = 1\n"
        )
    return sql + ")"


def _feature_columns(alias: str, sel: ViewSelection) -> list[str]:
    out = []
    for i, (_, name) in enumerate(sel.features):
        value = f"{alias}.{quote(f'__mp_f{i}')}"
        if sel.view.ttl > timedelta(0):
            fresh = f"{alias}.{_EVENT_TS} >= e.{_TS} - {_interval(sel.view.ttl)}"
            value = f"CASE WHEN {fresh} THEN {value} END"
        out.append(f"{value} AS {quote(name)}")
    return out


def build_query(
    entity_columns: Sequence[str], timestamp_column: str, selections: Sequence[ViewSelection]
) -> str:
    """The point-in-time join of the entity table with each selected view.

    Args:
        entity_columns: The entity table's columns, returned first and unchanged (the table
            also has :data:`ROW_COLUMN`, its row numbers, which orders the result).
        timestamp_column: The entity table's column of times ``T``.
        selections: The views and their features, in output order.

    Returns:
        One SQL query over :data:`ENTITY_TABLE` and the views' sources.
    """
    ctes = [
        f"__mp_e AS (\n  SELECT *, {_ts(quote(timestamp_column))} AS {_TS} FROM {ENTITY_TABLE}\n)"
    ]
    select = [f"e.{quote(c)}" for c in entity_columns]
    joins = []
    for n, sel in enumerate(selections):
        alias = f"__mp_v{n}"
        ctes.append(_view_cte(alias, sel, stream_name(n)))
        select += _feature_columns(alias, sel)
        on = [f"e.{quote(k)} = {alias}.{quote(k)}" for k in sel.view.join_keys]
        on.append(f"e.{_TS} >= {alias}.{_EVENT_TS}")
        joins.append(f"ASOF LEFT JOIN {alias} ON {' AND '.join(on)}")
    return (
        "WITH " + ",\n".join(ctes) + "\n"
        f"SELECT {', '.join(select)}\nFROM __mp_e AS e\n"
        + "\n".join(joins)
        + f"\nORDER BY e.{ROW_COLUMN}"
    )
