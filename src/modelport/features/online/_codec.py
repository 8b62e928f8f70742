"""What every online store shares: input checks, key and row encoding, building a read.

Entity keys are encoded canonically as the orjson bytes of their list of values, so ``("a", 1)``
is always ``b'["a",1]'``. Timestamps are whole microseconds since the Unix epoch (UTC; naive
datetimes are taken as UTC). Feature rows are the orjson bytes of ``{feature: value}``; NaN and
infinities are stored as null, as JSON has no other spelling for them.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from modelport.core.errors import InvalidInput
from modelport.features.online.base import EntityKey, FeatureStatus, OnlineRead

__all__ = [
    "CREATED_NONE",
    "Row",
    "build_read",
    "check_read",
    "check_view",
    "encode_key",
    "from_micros",
    "rows_to_write",
    "to_micros",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)
_SCALARS: Final = frozenset({float, int, str, bool, type(None)})
_MISSING: Final = object()

CREATED_NONE: Final = -(10**17)
"""The created timestamp stored for ``None``: earlier than any datetime (about -6.2e16 us)."""

_PRESENT: Final = FeatureStatus.PRESENT
_NOT_FOUND: Final = FeatureStatus.NOT_FOUND
_NULL: Final = FeatureStatus.NULL_VALUE
_OLD: Final = FeatureStatus.OUTSIDE_MAX_AGE


@dataclass(frozen=True, slots=True)
class Row:
    """One row to write, encoded.

    Attributes:
        key: The entity key's canonical bytes.
        event_us: Event timestamp, microseconds since the epoch.
        created_us: Created timestamp, microseconds since the epoch, or :data:`CREATED_NONE`.
        data: The orjson bytes of ``{feature: value}``.
    """

    key: bytes
    event_us: int
    created_us: int
    data: bytes


def to_micros(ts: datetime) -> int:
    """Return ``ts`` as whole microseconds since the Unix epoch (naive is UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _MICRO


def from_micros(us: int) -> datetime:
    """Return the UTC datetime ``us`` microseconds after the Unix epoch."""
    return _EPOCH + timedelta(microseconds=us)


def encode_key(key: EntityKey) -> bytes:
    """Return the canonical bytes of an entity key.

    Raises:
        InvalidInput: The key is not a non-empty tuple (or list) of ``str`` and ``int`` values.
    """
    if not isinstance(key, tuple | list):
        raise InvalidInput(f"an entity key must be a tuple of join-key values, got {key!r}")
    for part in key:
        kind = type(part)
        if kind is not str and kind is not int:
            raise InvalidInput(
                f"entity key {key!r}: join-key values must be str or int, got {type(part).__name__}"
            )
    if not key:
        raise InvalidInput("an entity key must have at least one join-key value")
    try:
        return orjson.dumps(key)
    except orjson.JSONEncodeError as exc:  # integers past 64 bits
        raise InvalidInput(f"entity key {key!r} cannot be encoded: {exc}") from None


def check_view(view: str) -> None:
    """Refuse a view name that is not a non-empty string.

    Raises:
        InvalidInput: It is not.
    """
    if type(view) is not str or not view:
        raise InvalidInput(f"a feature view name must be a non-empty string, got {view!r}")


def _scalar(feature: str, value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, float):  # numpy.float64 and other float subclasses
        return float(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):  # numpy.int64
        return int(value)
    raise InvalidInput(
        f"feature {feature!r}: values must be float, int, str, bool or None, "
        f"got {type(value).__name__}"
    )


def _check_lengths(
    keys: Sequence[EntityKey],
    event_ts: Sequence[datetime],
    created_ts: Sequence[datetime | None],
    values: Mapping[str, Sequence[Any]],
) -> int:
    n = len(keys)
    lengths = {"keys": n, "event_ts": len(event_ts), "created_ts": len(created_ts)}
    for feature, column in values.items():
        if type(feature) is not str or not feature:
            raise InvalidInput(f"feature names must be non-empty strings, got {feature!r}")
        if isinstance(column, str | bytes):
            raise InvalidInput(f"values[{feature!r}] must be a sequence of values, not a string")
        lengths[f"values[{feature!r}]"] = len(column)
    if any(length != n for length in lengths.values()):
        shown = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise InvalidInput(f"every column of a write needs one entry per key; got {shown}")
    return n


def _micros_of(name: str, index: int, ts: Any) -> int:
    if not isinstance(ts, datetime):
        raise InvalidInput(f"{name}[{index}] must be a datetime, got {type(ts).__name__}")
    return to_micros(ts)


def rows_to_write(
    view: str,
    keys: Sequence[EntityKey],
    event_ts: Sequence[datetime],
    created_ts: Sequence[datetime | None],
    values: Mapping[str, Sequence[Any]],
) -> list[Row]:
    """Check a write's columns and encode them row by row.

    Returns:
        One :class:`Row` per key, in order.

    Raises:
        InvalidInput: Lengths differ (the message names each length), or a view name, key,
            timestamp or value has the wrong type.
    """
    check_view(view)
    n = _check_lengths(keys, event_ts, created_ts, values)
    features = list(values)
    rows = []
    for i in range(n):
        created = created_ts[i]
        row = {f: _scalar(f, values[f][i]) for f in features}
        rows.append(
            Row(
                key=encode_key(keys[i]),
                event_us=_micros_of("event_ts", i, event_ts[i]),
                created_us=CREATED_NONE
                if created is None
                else _micros_of("created_ts", i, created),
                data=orjson.dumps(row),
            )
        )
    return rows


def check_read(
    view: str, keys: Sequence[EntityKey], features: Sequence[str], ttl: timedelta | None
) -> tuple[list[bytes], int | None]:
    """Check a read's arguments.

    Returns:
        The keys' canonical bytes, in order, and the TTL in microseconds (``None``: no TTL).

    Raises:
        InvalidInput: A view name, key or feature name is malformed, a feature repeats, or the
            TTL is negative.
    """
    check_view(view)
    if isinstance(features, str):
        raise InvalidInput(f"features must be a sequence of names, not the string {features!r}")
    for feature in features:
        if type(feature) is not str or not feature:
            raise InvalidInput(f"feature names must be non-empty strings, got {feature!r}")
    if len(set(features)) != len(features):
        raise InvalidInput(f"feature names repeat in {list(features)!r}")
    ttl_us = None
    if ttl is not None:
        if ttl < timedelta(0):
            raise InvalidInput(f"ttl must not be negative, got {ttl}")
        ttl_us = ttl // _MICRO
    return [encode_key(key) for key in keys], ttl_us


def build_read(
    features: Sequence[str],
    records: Sequence[tuple[int, dict[str, Any]] | None],
    now_us: int,
    ttl_us: int | None,
) -> OnlineRead:
    """Turn stored rows into an :class:`OnlineRead`, applying the TTL.

    Args:
        features: The feature names asked for.
        records: Per key asked for, the stored ``(event_us, {feature: value})``, or ``None``.
        now_us: The read's time, microseconds since the epoch.
        ttl_us: The TTL in microseconds, or ``None`` for no TTL.

    Returns:
        Values, statuses and event timestamps aligned with ``records``.
    """
    n = len(records)
    event_ts: list[datetime | None] = [None] * n
    live: list[dict[str, Any] | None] = [None] * n  # the rows within the TTL
    expired: list[int] = []
    for i, record in enumerate(records):
        if record is None:
            continue
        event_us, row = record
        event_ts[i] = _EPOCH + timedelta(0, 0, event_us)
        if ttl_us is None or now_us - event_us <= ttl_us:
            live[i] = row
        else:
            expired.append(i)
    # Column by column in comprehensions (a loop per cell costs about three times as much),
    # with a fast path for the common column: every row found, fresh and non-null.
    values: dict[str, list[Any]] = {}
    statuses: dict[str, list[FeatureStatus]] = {}
    for f in features:
        try:
            found = [_MISSING if row is None else row[f] for row in live]
        except KeyError:
            found = [_MISSING if row is None else row.get(f, _MISSING) for row in live]
        if _MISSING not in found and None not in found:
            values[f] = found
            statuses[f] = [_PRESENT] * n
            continue
        statuses[f] = [
            _NOT_FOUND if v is _MISSING else _NULL if v is None else _PRESENT for v in found
        ]
        values[f] = [None if v is _MISSING else v for v in found]
    for i in expired:
        row = records[i][1]  # type: ignore[index]  # expired rows are stored rows
        for f in features:
            if f in row:
                statuses[f][i] = _OLD
    return OnlineRead(values=values, statuses=statuses, event_ts=event_ts)
