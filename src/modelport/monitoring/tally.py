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
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Final

import numpy as np

__all__ = ["FOLD_EVERY", "LATENCY_BUCKETS", "TallyTotals", "VersionTally"]

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

_BOUNDS = np.array(LATENCY_BUCKETS)


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
        buckets: Requests (successes and failures) per latency bucket: slot ``i`` counts those
            at most ``LATENCY_BUCKETS[i]`` seconds and above the bucket before; the last slot
            counts those above the largest bound.
    """

    last_at: float = -math.inf
    inference_count: int = 0
    execution_count: int = 0
    success_count: int = 0
    success_seconds: float = 0.0
    fail_count: int = 0
    fail_seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    buckets: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS) + 1)


class VersionTally:
    """Running totals of one served model version (see the module docstring)."""

    __slots__ = (
        "_batch_executions",
        "_buckets",
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

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_at = -math.inf
        self._rows = 0
        self._executions = 0
        self._batch_executions = 0
        self._success_count = 0
        self._success_seconds = 0.0
        self._fail_count = 0
        self._fail_seconds = 0.0
        self._failures: dict[str, int] = {}
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._pending: list[float] = []  # durations of successes not yet folded in

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
        self._buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._last_at = max(self._last_at, at)

    def executed(self, executions: int = 1) -> None:
        """Count model runs made for requests recorded without them (any thread; a batch is one)."""
        with self._lock:
            self._batch_executions += executions

    def _fold(self) -> None:
        """Add the pending durations to the success totals and the latency buckets."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        durations = np.array(pending)
        self._success_count += len(pending)
        self._success_seconds += float(durations.sum())
        # side="left": a duration equal to a bound belongs to that bound's bucket ("le").
        slots = np.searchsorted(_BOUNDS, durations, side="left")
        counts = np.bincount(slots, minlength=len(self._buckets)).tolist()
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
                buckets=tuple(self._buckets),
            )
