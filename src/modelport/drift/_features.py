"""Tensors to features: how drift names and types the columns of what a model sees and says.

Drift is judged per *feature*, a column of a model's inputs or outputs. :func:`feature_columns`
is the one naming every drift computation shares (the reference profile made at registration,
the windows counted from the prediction log):

- an input or output of one value per row (shape ``[n]`` or ``[n, 1]``) is one feature, named
  after the tensor: ``input``, ``predict``;
- a tensor of ``k`` values per row (``[n, k]``) is ``k`` features: ``input[0]`` ... ``input[k-1]``;
- outputs are prefixed ``output:`` (``output:predict``, ``output:probabilities[1]``), so the
  prediction's distribution is watched beside the inputs;
- text, booleans and integer outputs (class labels) are categorical; other numbers numeric;
- a tensor of more than 256 values per row (an image, an embedding) is not tabular and is left
  out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

__all__ = ["OUTPUT_PREFIX", "feature_columns"]

OUTPUT_PREFIX: Final = "output:"
"""What an output's features are prefixed with."""

_MAX_COLUMNS: Final = 256


def feature_columns(
    inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray] | None = None
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The features of a batch of rows: columns by name, and which of them are categorical.

    Args:
        inputs: Input tensors by name, the rows first.
        outputs: Output tensors by name, the rows first (``None``: inputs only).

    Raises:
        ValueError: The tensors do not all have the same number of rows.
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
                raise ValueError(
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


def _categorical(values: np.ndarray, *, output: bool) -> bool:
    kind = values.dtype.kind
    if kind in "OUSb":
        return True
    return output and kind in "iu"  # an integer output is a class label
