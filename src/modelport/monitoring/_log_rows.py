"""From the log's JSON text to rows: predictions, truths, labels and scores as numpy arrays.

An output's value is a list with the request's rows as its first dimension; a value that is
not a list is one row. A label is a row's value with one-element lists unwrapped, as canonical
text (:func:`_canonical`); a number is float64 (NaN where a value is no number); a score is a
row's last element, however nested. The rules, and what a value that gives no row means, are
:mod:`.log_query`'s.

Numbers are cast from JSON by DuckDB's ``json_transform_strict`` where every value has the
shape of the first (else, and without DuckDB, by orjson); labels are parsed once per distinct
text, in one orjson call.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import numpy as np
import orjson

from modelport.core.errors import DependencyMissing, InvalidInput
from modelport.monitoring._log_duckdb import load_duckdb

__all__ = ["Kind", "floats", "ints", "json_rows"]

Kind = Literal["label", "number", "score"]
"""What a value's rows are read as: canonical label text, a number, or a score (a row's last
element)."""


def ints(column: Any) -> np.ndarray:
    """An integer column (``pyarrow``) as int64."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def floats(column: Any) -> np.ndarray:
    """A numeric column (``pyarrow``) as float64, nulls as NaN (pyarrow makes them NaN)."""
    return np.asarray(column.cast("float64").to_numpy(zero_copy_only=False), dtype=np.float64)


def json_rows(texts: Any, kind: Kind, *, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """The rows of each JSON value: all rows' values, flat, and each value's row count.

    A value that gives no usable row (null, invalid JSON, a row of several values where one is
    needed) counts ``-1``.

    Raises:
        InvalidInput: ``strict``, and a row holds several values where one is needed.
    """
    import pyarrow as pa

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    if kind != "label":
        typed = _typed_numbers(texts, kind, strict)
        if typed is not None:
            return typed
    return _parsed_rows(texts, kind, strict)


def _parsed_rows(texts: Any, kind: Kind, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`json_rows` in Python: each distinct text parsed once, in one orjson call."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(texts)
    indices = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    indices = np.asarray(indices, dtype=np.int64)
    convert = _canonical if kind == "label" else _number
    one = _last if kind == "score" else (lambda row: _scalar(row, strict))
    flat: list[Any] = []
    counts = np.empty(len(encoded.dictionary), dtype=np.int64)
    for i, value in enumerate(_parse_all(encoded.dictionary)):
        rows = [one(row) for row in _split(value)]
        if any(row is _BAD for row in rows):
            counts[i] = -1
        else:
            flat += map(convert, rows)
            counts[i] = len(rows)
    pool = np.array(flat, dtype=object if kind == "label" else np.float64)
    # Each value's rows are those of its distinct text; a null (index -1) has none.
    counts = np.append(counts, -1)
    offsets = np.concatenate(([0], np.cumsum(np.maximum(counts[:-1], 0))))
    n = counts[indices]
    return pool[_spans(offsets[np.maximum(indices, 0)], np.maximum(n, 0))], n


def _spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices ``start, start + 1, ... start + length - 1`` of every span, in order."""
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    return np.repeat(starts - ends + lengths, lengths) + np.arange(total)


def _parse_all(texts: Any) -> list[Any]:
    """Every JSON text of a string array, by one orjson call; one by one if some are bad."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(texts) == 0:
        return []
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(texts)]), texts), ",")
    try:
        document: list[Any] = orjson.loads(b"[" + joined[0].as_buffer().to_pybytes() + b"]")
    except orjson.JSONDecodeError:
        document = []
    if len(document) != len(texts):  # invalid JSON, or a text that is several values ("1,2")
        return [_parsed(text) for text in texts.to_pylist()]
    return document


def _parsed(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _BAD


_BAD: Final = object()
"""A value or row that gives no usable row."""


def _split(value: Any) -> list[Any]:
    """A value's rows: a list's elements; anything else is one row."""
    if value is _BAD:
        return [_BAD]
    return value if isinstance(value, list) else [value]


def _scalar(row: Any, strict: bool) -> Any:
    """A row's one value, one-element lists unwrapped; :data:`_BAD` where it has several."""
    while isinstance(row, list) and len(row) == 1:
        row = row[0]
    if isinstance(row, list | dict):
        if strict:
            raise _not_scalar(row)
        return _BAD
    return row


def _not_scalar(row: Any) -> InvalidInput:
    shown = orjson.dumps(row).decode()
    return InvalidInput(
        f"the output holds several values per row ({shown[:80]}), not one prediction: name "
        "the output that holds the label or value"
    )


def _last(row: Any) -> Any:
    """A row's last element, however nested (a probability vector's positive class)."""
    while isinstance(row, list):
        if not row:
            return None
        row = row[-1]
    return _BAD if isinstance(row, dict) or row is _BAD else row


def _number(value: Any) -> float:
    """A float, as DuckDB casts JSON (a number's text, a boolean); NaN for anything else."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _canonical(value: Any) -> str:
    """A label's text: ``1`` and ``1.0`` alike, ``true``/``false``, strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return "null"


# The shapes DuckDB casts to, by nesting depth: a scalar, rows of scalars, rows of vectors.
_STRUCTURES: Final = ('"DOUBLE"', '["DOUBLE"]', '[["DOUBLE"]]')


def _typed_numbers(texts: Any, kind: Kind, strict: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`json_rows` of numbers by DuckDB's JSON cast; ``None`` where it cannot say.

    The shape is the first value's; where any value has another shape, or a null list, or
    DuckDB is not installed, the caller parses in Python instead (the same result, slower).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    valid = np.asarray(pc.is_valid(texts).to_numpy(zero_copy_only=False), dtype=bool)
    if not valid.any():
        return None
    depth = _depth(_parsed(texts[int(np.argmax(valid))].as_py()))
    if depth >= len(_STRUCTURES):
        return None
    try:
        duckdb = load_duckdb()
    except DependencyMissing:
        return None
    with duckdb.connect() as con:  # insertion order kept: one result per text, in order
        con.register("texts", pa.table({"v": texts}))
        try:
            cast = con.sql(
                "SELECT json_transform_strict(v, $shape) AS x FROM texts",
                params={"shape": _STRUCTURES[depth]},
            ).to_arrow_table()
        except duckdb.Error:
            return None  # a value of another shape, or not JSON
    values = cast.column("x").combine_chunks()
    counts = np.where(valid, 1, -1).astype(np.int64)
    if depth == 0:
        return floats(values.filter(pa.array(valid))), counts
    if values.filter(pa.array(valid)).null_count:
        return None  # a null in place of a list
    counts[valid] = _lengths(values)[valid]
    rows = values.flatten()  # nulls (never valid) have no elements
    if depth == 1:
        return floats(rows), counts
    if rows.null_count:
        return None
    widths = _lengths(rows)
    cells = floats(rows.flatten())
    ends = np.cumsum(widths)
    if kind == "score":
        last = np.full(len(widths), np.nan)
        last[widths > 0] = cells[ends[widths > 0] - 1]
        return last, counts
    single = widths == 1
    if single.all():
        return cells, counts
    if strict:
        first = int(np.argmin(single))
        raise _not_scalar(rows[first].as_py())
    # A value with a row of several numbers gives no row at all.
    owner = np.repeat(np.arange(len(counts)), np.maximum(counts, 0))
    bad = np.zeros(len(counts), dtype=bool)
    bad[owner[~single]] = True
    keep = ~bad[owner]
    counts[bad] = -1
    return cells[np.maximum(ends - 1, 0)][keep], counts


def _depth(value: Any) -> int:
    """How deep lists nest along the first elements (``[[1, 2]]`` is 2, ``1`` is 0)."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def _lengths(lists: Any) -> np.ndarray:
    """Each list's length (0 for a null)."""
    import pyarrow.compute as pc

    return np.asarray(
        pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
