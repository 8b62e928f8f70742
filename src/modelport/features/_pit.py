"""The point-in-time join, written as one DuckDB query.

For an entity row at time ``T`` a feature row qualifies when it has the same join keys and
``T - ttl <= event_ts <= T`` (both bounds inclusive; no lower bound when ``ttl`` is zero); the
latest ``event_ts`` wins, ties broken by the latest created timestamp (a missing created time
loses; exact ties are broken arbitrarily, as in Feast). Rows that no entity row can use (after
the latest entity time, or older than the earliest entity time minus ``ttl``) are dropped as
the source is read. Then, per feature view, one of two forms:

- with a ttl, a range join: the source rows are hash-joined to the entity rows on the keys, a
  ttl-wide time bucket (the entity row's or the one before) and ``T - ttl <= event_ts <= T``,
  and per entity row ``arg_max`` keeps the row with the greatest ``(event_ts, created)``. Only
  pairs near the ttl are ever formed, so neither side is sorted or reduced whole (on
  bench/features_offline.py's 1M x 10M, a third of the time and a quarter of the memory of
  the ASOF form);
- without one (every older row qualifies, so a range join would pair each entity row with its
  key's whole history), an ``ASOF LEFT JOIN`` on the keys and ``T >= event_ts`` against the
  source reduced to one row per (keys, ``event_ts``) with the latest created time
  (``QUALIFY row_number()``, skipped when there is no created column).

The per-view results are joined back to the entity rows, which keep their order through the
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


def _bounds(event_ts: str, view: FeatureView) -> list[str]:
    """Conditions keeping only the source rows some entity row can use."""
    bounds = [f"{event_ts} <= (SELECT max({_TS}) FROM __mp_e)"]
    if view.ttl > timedelta(0):
        bounds.append(f"{event_ts} >= (SELECT min({_TS}) FROM __mp_e) - {_interval(view.ttl)}")
    return bounds


def _range_cte(alias: str, sel: ViewSelection, stream: str) -> str:
    """Per entity row, the features of its latest qualifying row (views with a ttl).

    One Parquet file is read twice: the join keeps only the winning row's number
    (``file_row_number``), and the features of those rows are fetched by number (20% faster
    than carrying them through the join and ``arg_max``). Any other source carries them.
    """
    view, source = sel.view, sel.view.batch_source
    event_ts = _ts(f"v.{quote(source.timestamp_field)}")
    casts = [
        (quote(f"__mp_f{i}"), f"CAST({{t}}.{quote(field.name)} AS {field.dtype.sql_type})")
        for i, (field, _) in enumerate(sel.features)
    ]
    order = event_ts
    if source.created_timestamp_column:
        # (event, created) as one HUGEINT, ordered as the pair (10% faster than a struct):
        # the created microseconds shifted into [1, 2**64); a missing created time is 0, last.
        created = _ts(f"v.{quote(source.created_timestamp_column)}")
        order = (
            f"(CAST(epoch_us({event_ts}) AS HUGEINT) * {2**64} + "
            f"coalesce(CAST(epoch_us({created}) AS HUGEINT) + {2**63}, 0))"
        )
    # Every qualifying row's ttl-wide time bucket is the entity row's or the one before, so each
    # entity row joins on both and a feature row meets only the entity rows near its own time,
    # not every entity row of its key (a tenth of the candidate pairs on the 1M x 10M bench).
    width = view.ttl // timedelta(microseconds=1)
    bucket = f"CAST(floor(epoch_us({event_ts}) / {width}) AS BIGINT)"
    on = [f"e.{quote(k)} = v.{quote(k)}" for k in view.join_keys]
    on += [f"e.__mp_b = {bucket}"]
    on += [f"{event_ts} <= e.{_TS}", f"{event_ts} >= e.{_TS} - {_interval(view.ttl)}"]
    own = f"CAST(floor(epoch_us({_TS}) / {width}) AS BIGINT)"
    buckets = f"(SELECT *, unnest([{own}, {own} - 1]) AS __mp_b FROM __mp_e)"
    parquet = _parquet_file(source)
    if parquet is not None:
        read = f"read_parquet({lit(parquet)}, file_row_number = true)"
        picked = "v.file_row_number"
    else:
        read = relation(source, stream)
        picked = "struct_pack(" + ", ".join(f"{n} := {c.format(t='v')}" for n, c in casts) + ")"
    pick = (
        f"  SELECT e.{ROW_COLUMN}, arg_max({picked}, {order}) AS __mp_pick\n"
        f"  FROM {buckets} AS e JOIN {read} AS v ON {' AND '.join(on)}\n"
        f"  WHERE {' AND '.join(_bounds(event_ts, view))}\n"
        f"  GROUP BY e.{ROW_COLUMN}\n"
    )
    if parquet is None:
        return f"{alias} AS (\n  SELECT {ROW_COLUMN}, unnest(__mp_pick) FROM (\n{pick}  )\n)"
    columns = ", ".join(f"{c.format(t='f')} AS {n}" for n, c in casts)
    return (
        f"{alias}_pick AS (\n{pick}),\n"
        f"{alias} AS (\n  SELECT p.{ROW_COLUMN}, {columns}\n"
        f"  FROM {alias}_pick AS p JOIN {read} AS f ON f.file_row_number = p.__mp_pick\n)"
    )


def _parquet_file(source: BatchSource) -> str | None:
    """The path of ``source`` if it is one local Parquet file (its row numbers name its rows)."""
    if not isinstance(source, FileSource) or source.file_format != "parquet":
        return None
    path = source.path
    return None if any(c in path for c in "*?[") or "://" in path else path


def _view_cte(alias: str, sel: ViewSelection, stream: str) -> str:
    view, source = sel.view, sel.view.batch_source
    keys = [quote(k) for k in view.join_keys]
    event_ts = _ts(quote(source.timestamp_field))
    cols = [*keys, f"{event_ts} AS {_EVENT_TS}"]
    cols += [
        f"CAST({quote(field.name)} AS {field.dtype.sql_type}) AS {quote(f'__mp_f{i}')}"
        for i, (field, _) in enumerate(sel.features)
    ]
    sql = f"{alias} AS (\n  SELECT {', '.join(cols)}\n  FROM {relation(source, stream)}\n"
    sql += f"  WHERE {' AND '.join(_bounds(event_ts, view))}\n"
    if source.created_timestamp_column:
        created = _ts(quote(source.created_timestamp_column))
        sql += (
            f"  QUALIFY row_number() OVER (PARTITION BY {', '.join([*keys, event_ts])} "
            f"ORDER BY {created} DESC NULLS LAST) = 1\n"
        )
    return sql + ")"


def _feature_columns(alias: str, sel: ViewSelection) -> list[str]:
    return [
        f"{alias}.{quote(f'__mp_f{i}')} AS {quote(name)}"
        for i, (_, name) in enumerate(sel.features)
    ]


def build_query(timestamp_column: str, selections: Sequence[ViewSelection]) -> str:
    """The point-in-time join of the entity table with each selected view.

    Args:
        timestamp_column: The entity table's column of times ``T``.
        selections: The views and their features, in output order.

    Returns:
        One SQL query over :data:`ENTITY_TABLE` (which has :data:`ROW_COLUMN`, its row
        numbers) and the views' sources, answering each entity row's number and features,
        one row per entity row in no particular order: the caller puts them back in the
        entity rows' order beside the entity columns, which never go through DuckDB.
    """
    ctes = [
        f"__mp_e AS (\n  SELECT *, {_ts(quote(timestamp_column))} AS {_TS} FROM {ENTITY_TABLE}\n)"
    ]
    select = [f"e.{ROW_COLUMN}"]
    joins = []
    for n, sel in enumerate(selections):
        alias = f"__mp_v{n}"
        select += _feature_columns(alias, sel)
        if sel.view.ttl > timedelta(0):
            ctes.append(_range_cte(alias, sel, stream_name(n)))
            joins.append(f"LEFT JOIN {alias} ON e.{ROW_COLUMN} = {alias}.{ROW_COLUMN}")
            continue
        ctes.append(_view_cte(alias, sel, stream_name(n)))
        on = [f"e.{quote(k)} = {alias}.{quote(k)}" for k in sel.view.join_keys]
        on.append(f"e.{_TS} >= {alias}.{_EVENT_TS}")
        joins.append(f"ASOF LEFT JOIN {alias} ON {' AND '.join(on)}")
    return (
        "WITH " + ",\n".join(ctes) + "\n"
        f"SELECT {', '.join(select)}\nFROM __mp_e AS e\n" + "\n".join(joins)
    )
