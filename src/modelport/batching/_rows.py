"""Rows of requests and batches: row counts and batch keys, concatenation, checks and splitting.

Every function here works on plain arrays; the batcher composes them. Inputs of one batch share a
key (names, dtypes, non-batch dimensions), so concatenating them along axis 0 cannot fail on
shapes, and slicing outputs by row offsets gives each caller views, not copies.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence

import numpy as np

from modelport.core.errors import InferenceFailed, InvalidInput

__all__ = ["concatenate", "rows_and_key", "rows_checked", "split"]


def rows_and_key(inputs: Mapping[str, np.ndarray]) -> tuple[int, Hashable]:
    """Return the request's rows and batch key (input names, dtypes, non-batch dimensions).

    Raises:
        InvalidInput: No inputs, a scalar input, or inputs that disagree on the row count.
    """
    rows = -1
    first = ""
    key: list[tuple[str, np.dtype, tuple[int, ...]]] = []
    for name in sorted(inputs):
        array = inputs[name]
        shape = array.shape
        if not shape:
            raise InvalidInput(
                f"input {name!r} is a scalar; batching needs a first (row) dimension"
            )
        if rows < 0:
            rows, first = shape[0], name
        elif shape[0] != rows:
            raise InvalidInput(
                f"inputs disagree on the number of rows: {first!r} has {rows}, "
                f"{name!r} has {shape[0]}"
            )
        key.append((name, array.dtype, shape[1:]))
    if rows < 0:
        raise InvalidInput("the request has no inputs; batching needs at least one")
    return rows, tuple(key)


def rows_checked(
    result: Mapping[str, object], wanted: Collection[str], rows: int
) -> dict[str, np.ndarray]:
    """Return the wanted outputs as arrays, checking each has ``rows`` rows.

    Raises:
        InferenceFailed: An output is missing or its first dimension is not ``rows``.
    """
    arrays: dict[str, np.ndarray] = {}
    for name in wanted:
        try:
            array = np.asarray(result[name])  # no copy for an ndarray
        except KeyError:
            raise InferenceFailed(f"the model returned no output {name!r}") from None
        got = array.shape[0] if array.ndim else "no"
        if got != rows:
            raise InferenceFailed(
                f"output {name!r} has {got} rows for a batch of {rows} rows; this model cannot "
                "be batched, turn batching off"
            )
        arrays[name] = array
    return arrays


def concatenate(inputs: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate same-key requests' inputs along the row axis, in order.

    Args:
        inputs: Each request's inputs by name; all have the same names, dtypes and non-batch
            dimensions.

    Returns:
        One array per input name holding every request's rows, in request order.
    """
    return {name: np.concatenate([one[name] for one in inputs], axis=0) for name in inputs[0]}


def split(
    arrays: Mapping[str, np.ndarray], requests: Sequence[tuple[int, Collection[str]]]
) -> list[dict[str, np.ndarray]]:
    """Cut batch outputs back into each request's rows of each request's outputs.

    Args:
        arrays: Batch outputs by name, already checked to have the batch's rows.
        requests: ``(rows, wanted output names)`` of each request, in batch order.

    Returns:
        One dict per request with exactly its wanted names, each a view of its rows.
    """
    parts: list[dict[str, np.ndarray]] = []
    start = 0
    for rows, wanted in requests:
        stop = start + rows
        parts.append({name: arrays[name][start:stop] for name in wanted})
        start = stop
    return parts
