"""A version's reference data profile: its inputs and predictions on reference data, profiled.

Features are named by :func:`modelport.drift.feature_columns` (``input[0]``,
``output:predict``), as the windows counted from the prediction log are.
:func:`reference_profile` runs a loaded runtime over reference rows (in chunks, so a large
``--reference`` file does not hold every output at once) and profiles inputs and outputs
together with :func:`modelport.drift.profile`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

import numpy as np

from modelport.core.errors import InvalidInput

__all__ = ["reference_profile"]

_CHUNK_ROWS: Final = 10_000


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
    from modelport.drift import feature_columns, profile

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
