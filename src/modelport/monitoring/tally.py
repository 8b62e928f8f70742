"""What one served model version did: the one record both Triton statistics and Prometheus read.

The serving path records each request once, in the :class:`VersionTally` of the version that
answered: a success (rows, duration, model executions) or a failure (its error kind, duration).
Two readers turn the same totals into their own forms: the statistics extension
(``modelport.service.stats``) reports counts, nanoseconds and the last inference time, and
:class:`~modelport.monitoring.metrics.ServingMetrics` moves what changed since its last flush
into Prometheus counters and a latency histogram. One record per request, instead of one per
reader, halves the bookkeeping on the hot path.

Requests are recorded by the thread that serves them, the event loop (REST and gRPC run on it),
and read there too, without a lock: a lock's acquire and release cost about as much as the rest
of the record. Model executions, which batch threads count, take a lock, so executions counted
from several threads are never lost. A success's duration is only appended to a list, which is
added up and sorted into the latency buckets in bulk (numpy) when it holds :data:`FOLD_EVERY`
durations or the totals are read: a per-request ``bisect`` and sum cost about twice the append.
Recording reads no clock; callers pass the monotonic time and the duration they already have.

The latency buckets are :data:`LATENCY_BUCKETS` and the service-level thresholds of the settings
(:func:`latency_buckets`), so a threshold is always a bucket edge. A :class:`LatencyTally` is the
same bookkeeping for durations alone (the gateway's, per deployment and variant).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

__all__ = [
    "FOLD_EVERY",
    "LATENCY_BUCKETS",
    "LatencyTally",
    "LatencyTotals",
    "TallyTotals",
    "VersionTally",
    "latency_buckets",
]

LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds; from 100 µs (a tiny ONNX model) to 10 s (a large model on a CPU)."""

FOLD_EVERY: Final = 1024
"""Successes that wait in a list before they are added up and bucketed together."""


def latency_buckets(thresholds: Iterable[float] = ()) -> tuple[float, ...]:
    """The bucket edges of a latency histogram: :data:`LATENCY_BUCKETS` and ``thresholds``.

    Args:
        thresholds: Seconds that must be edges (the service-level objectives' thresholds).

    Returns:
        The edges, sorted, each once.

    Raises:
        ValueError: A threshold is not a positive finite number.
    """
    extra = tuple(thresholds)
    for value in extra:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"a latency bucket edge must be a positive number, got {value}")
    return tuple(sorted(set(LATENCY_BUCKETS).union(extra)))


def _bucket_counts(durations: list[float], edges: np.ndarray, slots: int) -> list[int]:
    """How many of ``durations`` fall in each bucket (``le``; the last slot is above all)."""
    # side="left": a duration equal to a bound belongs to that bound's bucket ("le").
    found = np.searchsorted(edges, np.array(durations), side="left")
    counts: list[int] = np.bincount(found, minlength=slots).tolist()
    return counts


@dataclass(frozen=True, slots=True)
class TallyTotals:
    """A consistent copy of one tally's totals.

    Attributes:
        last_at: The latest monotonic time a request was recorded at (``-inf``: none yet).
        inference_count: Rows inferred successfully.
        execution_count: Model runs, batched ones included.
        success_count: Successful requests.
        success_seconds: Their total duration.
        fail_count: Failed requests.
        fail_seconds: Their total duration.
        failures: Failed requests by error kind.
        batch_rows: Model calls a batcher made, by their rows (a batch's size).
        buckets: Requests (successes and failures) per latency bucket: slot ``i`` counts those
            at most the tally's ``i``-th bound (:data:`LATENCY_BUCKETS` by default) and above
            the bound before; the last slot counts those above the largest bound.
    """

    last_at: float = -math.inf
    inference_count: int = 0
    execution_count: int = 0
    success_count: int = 0
    success_seconds: float = 0.0
    fail_count: int = 0
    fail_seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    batch_rows: dict[int, int] = field(default_factory=dict)
    buckets: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS) + 1)


class VersionTally:
    """Running totals of one served model version (see the module docstring).

    Args:
        bounds: The latency buckets' upper bounds in seconds, increasing (:func:`latency_buckets`).
    """

    __slots__ = (
        "_batch_executions",
        "_batch_rows",
        "_bounds",
        "_buckets",
        "_edges",
        "_executions",
        "_fail_count",
        "_fail_seconds",
        "_failures",
        "_last_at",
        "_lock",
        "_pending",
        "_rows",
        "_success_count",
        "_success_seconds",
    )

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._bounds = tuple(bounds)
        self._edges = np.array(self._bounds)
        self._lock = threading.Lock()
        self._last_at = -math.inf
        self._rows = 0
        self._executions = 0
        self._batch_executions = 0
        self._batch_rows: dict[int, int] = {}
        self._success_count = 0
        self._success_seconds = 0.0
        self._fail_count = 0
        self._fail_seconds = 0.0
        self._failures: dict[str, int] = {}
        self._buckets = [0] * (len(self._bounds) + 1)
        self._pending: list[float] = []  # durations of successes not yet folded in

    @property
    def bounds(self) -> tuple[float, ...]:
        """The latency buckets' upper bounds, in seconds."""
        return self._bounds

    def success(self, rows: int, seconds: float, at: float, executions: int) -> None:
        """Count one successful request (on the serving thread; arguments by position: cheaper).

        Args:
            rows: Inferences in the request (its first input's leading dimension).
            seconds: Time from the decoded request to its outputs.
            at: Monotonic time it was answered (the serving thread's readings only grow).
            executions: Model runs the request caused (0 when a batcher ran it: batches are
                counted by :meth:`executed`).
        """
        pending = self._pending
        pending.append(seconds)
        if len(pending) >= FOLD_EVERY:
            self._fold()
        self._rows += rows
        self._executions += executions
        self._last_at = at

    def failure(self, kind: str, seconds: float, at: float) -> None:
        """Count one failed request (on the serving thread).

        Args:
            kind: The error's kind (``invalid_input``, ``timeout``...).
            seconds: Time from the decoded request to the error.
            at: Monotonic time it failed.
        """
        self._fail_count += 1
        self._fail_seconds += seconds
        self._failures[kind] = self._failures.get(kind, 0) + 1
        self._buckets[bisect_left(self._bounds, seconds)] += 1
        self._last_at = max(self._last_at, at)

    def executed(self, executions: int = 1, rows: int | None = None) -> None:
        """Count model runs made for requests recorded without them (any thread; a batch is one).

        Args:
            executions: Model runs.
            rows: The rows of that one run (a batch's size), when a batcher made it.
        """
        with self._lock:
            self._batch_executions += executions
            if rows is not None:
                self._batch_rows[rows] = self._batch_rows.get(rows, 0) + 1

    def _fold(self) -> None:
        """Add the pending durations to the success totals and the latency buckets."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        self._success_count += len(pending)
        self._success_seconds += math.fsum(pending)
        counts = _bucket_counts(pending, self._edges, len(self._buckets))
        for slot, count in enumerate(counts):
            self._buckets[slot] += count

    def totals(self) -> TallyTotals:
        """Return a copy of the totals (on the serving thread, which records them)."""
        self._fold()
        with self._lock:
            return TallyTotals(
                last_at=self._last_at,
                inference_count=self._rows,
                execution_count=self._executions + self._batch_executions,
                success_count=self._success_count,
                success_seconds=self._success_seconds,
                fail_count=self._fail_count,
                fail_seconds=self._fail_seconds,
                failures=dict(self._failures),
                batch_rows=dict(self._batch_rows),
                buckets=tuple(self._buckets),
            )


@dataclass(frozen=True, slots=True)
class LatencyTotals:
    """A copy of one :class:`LatencyTally`'s totals.

    Attributes:
        count: Durations recorded.
        seconds: Their sum.
        buckets: Durations per bucket, as :attr:`TallyTotals.buckets`.
    """

    count: int
    seconds: float
    buckets: tuple[int, ...]


class LatencyTally:
    """Durations of requests, bucketed in bulk: what a histogram needs, for the serving thread.

    :meth:`observe` appends to a list (one call, no bisect, no lock); the list is added up and
    bucketed with numpy every :data:`FOLD_EVERY` durations and when the totals are read. Record
    and read on one thread (the event loop).

    Args:
        bounds: The buckets' upper bounds in seconds, increasing (:func:`latency_buckets`).
    """

    __slots__ = ("_bounds", "_buckets", "_count", "_edges", "_pending", "_seconds")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._bounds = tuple(bounds)
        self._edges = np.array(self._bounds)
        self._buckets = [0] * (len(self._bounds) + 1)
        self._count = 0
        self._seconds = 0.0
        self._pending: list[float] = []

    @property
    def bounds(self) -> tuple[float, ...]:
        """The buckets' upper bounds, in seconds."""
        return self._bounds

    def observe(self, seconds: float) -> None:
        """Record one duration."""
        pending = self._pending
        pending.append(seconds)
        if len(pending) >= FOLD_EVERY:
            self._fold()

    def _fold(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        self._count += len(pending)
        self._seconds += math.fsum(pending)
        counts = _bucket_counts(pending, self._edges, len(self._buckets))
        for slot, count in enumerate(counts):
            self._buckets[slot] += count

    def totals(self) -> LatencyTotals:
        """The totals, everything recorded so far included."""
        self._fold()
        return LatencyTotals(self._count, self._seconds, tuple(self._buckets))
