"""A version's reference data profile: its inputs and predictions on reference data, profiled.

Drift is judged per *feature*, a column of the data a model sees or says. Tensors become
features by :func:`feature_columns`, the one naming every drift computation shares (the profile
made here, and the windows counted from the prediction log):

- an input or output of one value per row (shape ``[n]`` or ``[n, 1]``) is one feature, named
  after the tensor: ``input``, ``predict``;
- a tensor of ``k`` values per row (``[n, k]``) is ``k`` features: ``input[0]`` ... ``input[k-1]``;
- outputs are prefixed ``output:`` (``output:predict``, ``output:probabilities[1]``), so the
  prediction's distribution is profiled beside the inputs;
- text, booleans and integer outputs (class labels) are categorical; other numbers numeric.

:func:`reference_profile` runs a loaded runtime over reference rows (in chunks, so a large
``--reference`` file does not hold every output at once) and profiles inputs and outputs
together with :func:`modelport.drift.profile`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

import numpy as np

from modelport.core.errors import InvalidInput

__all__ = ["OUTPUT_PREFIX", "feature_columns", "reference_profile"]

OUTPUT_PREFIX: Final = "output:"
"""What an output's features are prefixed with."""

_CHUNK_ROWS: Final = 10_000
_MAX_COLUMNS: Final = 256
"""Values per row beyond which a tensor is not profiled (an image, an embedding)."""


def feature_columns(
    inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray] | None = None
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The features of a batch of rows: columns by name, and which of them are categorical.

    Args:
        inputs: Input tensors by name, the rows first.
        outputs: Output tensors by name, the rows first (``None``: inputs only).

    Raises:
        InvalidInput: The tensors do not all have the same number of rows.
    """
    columns: dict[str, np.ndarray] = {}
    categorical: list[str] = []
    rows: int | None = None
    for prefix, tensors in (("", inputs), (OUTPUT_PREFIX, outputs or {})):
        for name, tensor in tensors.items():
            array = np.asarray(tensor)
            if array.ndim == 0:
                array = array.reshape(1)
            if rows is None:
                rows = array.shape[0]
            elif array.shape[0] != rows:
                raise InvalidInput(
                    f"{prefix}{name} has {array.shape[0]} rows where the others have {rows}"
                )
            flat = array.reshape(array.shape[0], -1)
            if flat.shape[1] > _MAX_COLUMNS:
                continue  # not tabular: drift of raw pixels or embeddings needs other tools
            kind = _categorical(flat, output=bool(prefix))
            for index in range(flat.shape[1]):
                feature = prefix + name + ("" if flat.shape[1] == 1 else f"[{index}]")
                columns[feature] = flat[:, index]
                if kind:
                    categorical.append(feature)
    return columns, categorical


def reference_profile(
    runtime: Any, data: Mapping[str, np.ndarray], outputs: Collection[str]
) -> tuple[Any, int]:
    """Profile a loaded runtime's inputs and predictions over reference rows.

    Args:
        runtime: A loaded :class:`~modelport.runtimes.base.ModelRuntime`.
        data: Reference inputs by name (a sample or ``--reference`` file).
        outputs: The outputs to predict and profile.

    Returns:
        The :class:`modelport.drift.Profile` and the number of rows it was made from.

    Raises:
        InvalidInput: The reference has no rows, or its inputs disagree on the number of rows.
    """
    from modelport.drift import profile

    rows = {len(np.asarray(array)) for array in data.values()}
    if len(rows) != 1:
        raise InvalidInput("the reference's inputs must all have the same number of rows")
    (total,) = rows
    if total == 0:
        raise InvalidInput("the reference has no rows; give at least one")
    predicted: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    for start in range(0, total, _CHUNK_ROWS):
        chunk = {
            name: np.asarray(array)[start : start + _CHUNK_ROWS] for name, array in data.items()
        }
        answer = runtime.predict(chunk, list(outputs))
        for name in outputs:
            predicted[name].append(np.asarray(answer[name]))
    joined = {name: np.concatenate(parts) for name, parts in predicted.items()}
    columns, categorical = feature_columns(data, joined)
    return profile(columns, categorical=categorical), total


def _categorical(values: np.ndarray, *, output: bool) -> bool:
    kind = values.dtype.kind
    if kind in "OUSb":
        return True
    return output and kind in "iu"  # an integer output is a class label
