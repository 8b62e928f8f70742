"""Drift windows counted as predictions are logged: no job rereads raw rows to score a window.

:class:`DriftCounter` sits on the prediction log's writer thread: every flush hands it the
records it rendered, and it counts each answered (not shadow, not failed) record's inputs and
predictions into the served version's reference profile (:mod:`modelport.drift`), one
:class:`~modelport.drift.WindowCounts` per deployment, variant, version and time bucket (a
minute by default). :meth:`DriftCounter.take` returns the buckets that have ended, for storage;
counts of the same bucket from several workers and replicas add up (``a + b``), so a window of
any length is the sum of its buckets. A version without a reference profile is not counted
(its profile is looked up again every few minutes: ``modelport drift profile`` may add one).

:func:`logged_columns` turns logged records into the profile's feature columns; the on-demand
report (``modelport drift report``) uses it too.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import orjson

from modelport.drift import Profile, WindowCounts, feature_columns

__all__ = ["DriftCounter", "WindowSlice", "logged_columns"]

log = logging.getLogger("modelport.drift")

_PROFILE_TTL_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class WindowSlice:
    """What one version's answers counted to in one time bucket.

    Attributes:
        deployment: The deployment called.
        variant: The deployment's variant that answered.
        model: The registered model that answered.
        version: Its version.
        start: The bucket's start (UTC); it lasts the counter's ``bucket_s``.
        counts: The bucket's counts in the version's profile's bins.
    """

    deployment: str
    variant: str
    model: str
    version: str
    start: datetime
    seconds: float
    counts: WindowCounts


class DriftCounter:
    """Counts logged predictions into their version's reference bins, per time bucket.

    Args:
        profiles: The reference profile of ``(model, version)``, or ``None`` without one;
            blocking (it reads the registry), called on the log's writer thread, cached for
            five minutes per version.
        hidden: The input and output names a deployment's log redacts or hashes.
        bucket_s: The length of a bucket in seconds.
        monotonic: The clock of the profile cache.
    """

    def __init__(
        self,
        profiles: Callable[[str, str], Profile | None],
        hidden: Callable[[str], Collection[str]],
        bucket_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if bucket_s <= 0:
            raise ValueError("bucket_s must be positive")
        self._profiles = profiles
        self._hidden = hidden
        self._bucket_s = bucket_s
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str], tuple[float, Profile | None]] = {}
        self._open: dict[tuple[str, str, str, str, float], WindowCounts] = {}
        self.failures = 0
        """Groups of records that could not be counted (logged, never raised)."""

    def observe(self, records: Iterable[Any]) -> None:
        """Count a flush's rendered records (``PredictionRecord`` s); never raises."""
        groups: dict[tuple[str, str, str, str, float], list[tuple[str, str]]] = {}
        for record in records:
            if record.shadow or record.error is not None:
                continue
            at = record.time.timestamp()
            start = math.floor(at / self._bucket_s) * self._bucket_s
            key = (record.deployment, record.variant, record.model, record.model_version, start)
            groups.setdefault(key, []).append((record.inputs, record.outputs))
        for key, logged in groups.items():
            try:
                self._count(key, logged)
            except Exception as exc:  # noqa: BLE001 - drift must never break the log
                self.failures += 1
                log.warning("cannot count %d records of %s@%s for drift: %s",
                            len(logged), key[2], key[3], exc)  # fmt: skip

    def take(self, before: float | None = None) -> list[WindowSlice]:
        """The buckets counted that end at or before ``before`` (Unix time); all when ``None``.

        What is taken is forgotten: a record of a taken bucket that arrives later (it waited in
        the log's queue) starts a new slice of the same bucket, which adds up with the first.
        """
        bucket_s = self._bucket_s
        taken = {
            key: counts
            for key, counts in self._open.items()
            if before is None or key[-1] + bucket_s <= before
        }
        for key in taken:
            del self._open[key]
        return [
            WindowSlice(
                deployment,
                variant,
                model,
                version,
                datetime.fromtimestamp(start, UTC),
                bucket_s,
                counts,
            )  # fmt: skip
            for (deployment, variant, model, version, start), counts in sorted(taken.items())
        ]

    def _count(
        self, key: tuple[str, str, str, str, float], logged: Sequence[tuple[str, str]]
    ) -> None:
        deployment, _, model, version, _ = key
        profile = self._profile(model, version)
        if profile is None:
            return
        counts = profile.count(logged_columns(logged, set(self._hidden(deployment)), profile))
        held = self._open.get(key)
        self._open[key] = counts if held is None else held + counts

    def _profile(self, model: str, version: str) -> Profile | None:
        now = self._monotonic()
        cached = self._cache.get((model, version))
        if cached is not None and now - cached[0] < _PROFILE_TTL_S:
            return cached[1]
        found = self._profiles(model, version)
        self._cache[model, version] = (now, found)
        return found


def logged_columns(
    records: Sequence[tuple[str, str]], hidden: set[str], profile: Any
) -> dict[str, np.ndarray]:
    """Logged records' features, one column per feature of ``profile``.

    Args:
        records: ``(inputs, outputs)`` JSON text of each record, as the prediction log keeps it.
        hidden: Input and output names the log redacts or hashes: their features are reported
            missing (every value), never compared.
        profile: The served version's reference profile (``modelport.drift.Profile``).
    """
    inputs: dict[str, list[Any]] = {}
    outputs: dict[str, list[Any]] = {}
    # Rows, not requests: a request may carry several; each record's first input tells.
    rows = 0
    for logged_inputs, logged_outputs in records:
        sent = orjson.loads(logged_inputs)
        first = next(iter(sent.values()), None)
        rows += len(first) if isinstance(first, list) else 0
        for target, tensors in ((inputs, sent), (outputs, orjson.loads(logged_outputs))):
            for name, values in tensors.items():
                if name not in hidden and isinstance(values, list):
                    target.setdefault(name, []).extend(values)
    # A tensor whose values do not line up with those rows (one value per request of a
    # batch) is left out.
    arrays = {}
    for source in (inputs, outputs):
        for name, values in source.items():
            if len(values) == rows:
                arrays[name] = _typed(np.asarray(values, dtype=object))
    columns, _ = feature_columns(
        {k: v for k, v in arrays.items() if k in inputs},
        {k: v for k, v in arrays.items() if k in outputs},
    )
    filled: dict[str, np.ndarray] = {}
    for name in profile.names:
        column = columns.get(name)
        if column is None:  # redacted, hashed or not logged: every value missing
            column = np.full(rows, np.nan if name not in profile.categorical else None)
        elif name in profile.categorical:
            column = np.asarray([_label(v) for v in column], dtype=object)
        else:
            column = np.asarray(column, dtype=float)
        filled[name] = column
    return filled


def _typed(array: np.ndarray) -> np.ndarray:
    """Logged JSON values as numbers where they are numbers (text and booleans stay)."""
    try:
        return np.asarray(array.tolist(), dtype=float)
    except (TypeError, ValueError):
        return np.asarray(array.tolist(), dtype=object)


def _label(value: Any) -> Any:
    """A categorical value as the profile keeps it (integral numbers as integers)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
