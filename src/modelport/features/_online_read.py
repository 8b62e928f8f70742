"""Online retrieval for :meth:`FeatureStore.get_online_features`: entity rows in, columns out.

Per selected view, one :meth:`OnlineStore.read` of the rows' entity keys with the view's ttl
(none when the ttl is zero); values come back cast to each feature's declared type, so an
``Int64`` feature is an ``int`` whatever the backend returned.
"""

from __future__ import annotations

import base64
import numbers
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from modelport.core.errors import InvalidInput
from modelport.features import _pit
from modelport.features.materialize import EPOCH
from modelport.features.online import FeatureStatus, OnlineStore
from modelport.features.types import Bool, Bytes, DataType, Float32, Float64, String, UnixTimestamp

__all__ = ["OnlineResponse", "decode_value", "read_online"]


class OnlineResponse:
    """Online feature values, one per entity row, in Feast's column shape.

    Attributes:
        statuses: Feature column -> one :class:`FeatureStatus` per entity row.
        event_timestamps: Feature column -> the event time of the row each value came from
            (``None`` where the entity has none), per entity row.
    """

    def __init__(
        self,
        entity_columns: dict[str, list[Any]],
        values: dict[str, list[Any]],
        statuses: dict[str, list[FeatureStatus]],
        event_timestamps: dict[str, list[datetime | None]] | None = None,
    ) -> None:
        self._entity_columns = entity_columns
        self._values = values
        self.statuses = statuses
        self.event_timestamps = event_timestamps or {}

    def to_dict(self, include_statuses: bool = False) -> dict[str, list[Any]]:
        """The entity rows' columns, then one column per feature.

        Args:
            include_statuses: Also return, per feature, a ``"<feature>__status"`` column of
                status names (``"PRESENT"``, ``"NOT_FOUND"``, ``"NULL_VALUE"``,
                ``"OUTSIDE_MAX_AGE"``).

        Returns:
            Column name -> one value per entity row, in the rows' order.
        """
        out = {name: list(column) for name, column in self._entity_columns.items()}
        for name, column in self._values.items():
            out[name] = list(column)
            if include_statuses:
                out[f"{name}__status"] = [s.value for s in self.statuses[name]]
        return out

    def __repr__(self) -> str:
        return f"OnlineResponse({self.to_dict()!r})"


def decode_value(dtype: DataType, value: Any) -> Any:
    """Cast a stored JSON scalar back to ``dtype``'s Python type (the inverse of encoding)."""
    if value is None:
        return None
    if dtype is UnixTimestamp:
        return EPOCH + timedelta(microseconds=int(value))
    if dtype is Bytes:
        return base64.b64decode(value)
    if dtype in (Float64, Float32):
        return float(value)
    if dtype is String:
        return str(value)
    if dtype is Bool:
        return bool(value)
    return int(value)  # Int32, Int64


def _key_part(value: Any, key: str, row: int) -> str | int:
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise InvalidInput(
        f"entity_rows[{row}][{key!r}] is {value!r}: join-key values must be str or int"
    )


def _entity_columns(entity_rows: Any) -> tuple[dict[str, list[Any]], int]:
    if isinstance(entity_rows, Mapping):  # {"user_id": [1, 2]}, as Feast also accepts
        columns = {str(k): list(v) for k, v in entity_rows.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise InvalidInput("entity_rows: every column needs the same number of values")
        return columns, lengths.pop() if lengths else 0
    if isinstance(entity_rows, str | bytes) or not isinstance(entity_rows, Sequence):
        raise InvalidInput("entity_rows: expected a list of dicts such as [{'user_id': 1}]")
    columns = {}
    for i, row in enumerate(entity_rows):
        if not isinstance(row, Mapping):
            raise InvalidInput(f"entity_rows[{i}] is {row!r}: expected a dict of join keys")
        for name in row:
            columns.setdefault(str(name), [])
    for row in entity_rows:
        for name, column in columns.items():
            column.append(row.get(name))
    return columns, len(entity_rows)


def read_online(
    online: OnlineStore,
    selections: Sequence[_pit.ViewSelection],
    entity_rows: Any,
    now: datetime,
) -> OnlineResponse:
    """Read the selected features of each entity row from ``online`` at ``now``.

    Args:
        online: The online store.
        selections: The views, their features and output names, in output order.
        entity_rows: A list of dicts (or a dict of lists) holding each view's join keys.
        now: The instant the read is for (UTC); the views' ttls count back from it.

    Returns:
        The values and statuses, aligned with the entity rows.

    Raises:
        InvalidInput: A row lacks a join key, or a key value is not ``str`` or ``int``.
    """
    columns, n = _entity_columns(entity_rows)
    for sel in selections:
        for _, out in sel.features:
            if out in columns:
                raise InvalidInput(
                    f"the entity rows already have a column {out!r}, the name of a requested "
                    "feature: rename it, or pass full_feature_names=True"
                )
    values: dict[str, list[Any]] = {}
    statuses: dict[str, list[FeatureStatus]] = {}
    times: dict[str, list[datetime | None]] = {}
    for sel in selections:
        view = sel.view
        keys = []
        for i in range(n):
            parts = []
            for key in view.join_keys:
                value = columns[key][i] if key in columns else None
                if value is None:
                    raise InvalidInput(
                        f"entity_rows[{i}] has no join key {key!r}, needed by feature view "
                        f"{view.name!r}"
                    )
                parts.append(_key_part(value, key, i))
            keys.append(tuple(parts))
        ttl = view.ttl if view.ttl > timedelta(0) else None
        names = [f.name for f, _ in sel.features]
        read = online.read(view.name, keys, names, now, ttl)
        for field, out in sel.features:
            values[out] = [decode_value(field.dtype, v) for v in read.values[field.name]]
            statuses[out] = read.statuses[field.name]
            times[out] = read.event_ts
    return OnlineResponse(columns, values, statuses, times)
