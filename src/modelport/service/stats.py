"""Inference statistics per served model version, shared by every transport.

A :class:`InferenceStats` keeps counters per ``(model, version)``: successful and failed
requests with their cumulative durations, the rows inferred, the model executions and the time
of the last inference. Callers pass the measurements in (durations, wall-clock time), so the
recorder itself reads no clock. :meth:`InferenceStats.snapshot` returns immutable
:class:`ModelStats`, whose :meth:`ModelStats.to_dict` is the statistics extension's JSON form
(Triton's ``model_stats`` entries) that the gRPC codec encodes.

Recording takes a lock for a few additions; it is never held across an ``await``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from modelport.core.clock import Clock, SystemClock, WallMillis
from modelport.core.inference import InferenceRequest

__all__ = ["Duration", "InferenceStats", "ModelStats", "merge_statistics", "request_rows"]


@dataclass(frozen=True, slots=True)
class Duration:
    """A count of events and their cumulative duration in nanoseconds."""

    count: int = 0
    ns: int = 0

    def to_dict(self) -> dict[str, int]:
        """Return ``{"count", "ns"}``."""
        return {"count": self.count, "ns": self.ns}


@dataclass(frozen=True, slots=True)
class ModelStats:
    """Statistics of one model version at the time of a snapshot.

    Attributes:
        name: Model name.
        version: Served version.
        last_inference: Milliseconds since the epoch of the last request, success or failure;
            0 when there was none.
        inference_count: Rows inferred successfully (a request of batch ``n`` counts ``n``).
        execution_count: Successful runs of the model (a request counts one until batching
            merges several requests into one run).
        success: Successful requests and their time from receipt to response.
        fail: Failed requests and their time.
    """

    name: str
    version: str
    last_inference: int = 0
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)

    def to_dict(self) -> dict[str, Any]:
        """Return the statistics extension's JSON form of this entry."""
        return {
            "name": self.name,
            "version": self.version,
            "last_inference": self.last_inference,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {"success": self.success.to_dict(), "fail": self.fail.to_dict()},
        }


@dataclass(slots=True)
class _Counters:
    last_at: float = -math.inf
    """The latest ``clock.monotonic()`` a request was recorded at (``-inf``: none yet)."""
    inference_count: int = 0
    execution_count: int = 0
    success_count: int = 0
    success_seconds: float = 0.0
    fail_count: int = 0
    fail_seconds: float = 0.0


def request_rows(request: InferenceRequest) -> int:
    """Return how many inferences a request holds: its first input's leading dimension.

    A request whose first input is a scalar counts as one inference.
    """
    if not request.inputs or not request.inputs[0].shape:
        return 1
    return int(request.inputs[0].shape[0])


class InferenceStats:
    """Counters per ``(model, version)``, safe to record from any thread.

    Requests are recorded with monotonic readings and durations in seconds, as the serving path
    has them; a snapshot turns them into the statistics extension's wall-clock milliseconds and
    integer nanoseconds. Converting once per snapshot instead of once per request keeps the
    wall clock off the serving path.

    Args:
        clock: The clock whose ``monotonic()`` readings requests are recorded at.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        lock = threading.Lock()
        self._lock = lock
        # Bound once: acquire/release around an update cost about half of a ``with`` block.
        self._acquire = lock.acquire
        self._release = lock.release
        self._counters: dict[tuple[str, str], _Counters] = {}
        self._wall_ms = WallMillis(clock or SystemClock())

    def _entry(self, name: str, version: str) -> _Counters:
        key = (name, version)
        counters = self._counters.get(key)
        if counters is None:
            counters = self._counters[key] = _Counters()
        return counters

    def record_success(
        self,
        name: str,
        version: str,
        rows: int,
        seconds: float,
        at: float,
        executions: int = 1,
    ) -> None:
        """Count one successful request (arguments by position on the serving path: cheaper).

        Args:
            name: Model name.
            version: Served version that answered.
            rows: Inferences in the request (see :func:`request_rows`).
            seconds: Time from receipt to response.
            at: The clock's ``monotonic()`` when it was answered.
            executions: Model runs the request caused.
        """
        self._acquire()
        try:
            counters = self._counters.get((name, version)) or self._entry(name, version)
            counters.success_count += 1
            counters.success_seconds += seconds
            counters.inference_count += rows
            counters.execution_count += executions
            if at > counters.last_at:
                counters.last_at = at
        finally:
            self._release()

    def record_executions(self, name: str, version: str, executions: int = 1) -> None:
        """Count model executions made for requests counted without them (batched requests)."""
        with self._lock:
            self._entry(name, version).execution_count += executions

    def record_failure(self, name: str, version: str, seconds: float, at: float) -> None:
        """Count one failed request against the version it was meant for.

        Args:
            name: Model name.
            version: Served version the request resolved to.
            seconds: Time from receipt to the error.
            at: The clock's ``monotonic()`` when it failed.
        """
        with self._lock:
            counters = self._entry(name, version)
            counters.fail_count += 1
            counters.fail_seconds += seconds
            counters.last_at = max(counters.last_at, at)

    def snapshot(self, models: Iterable[tuple[str, str]] | None = None) -> list[ModelStats]:
        """Return the statistics of ``models`` (``(name, version)`` pairs), in that order.

        Args:
            models: The versions to report; a version with no requests yet reports zeros.
                ``None`` reports every version that has been recorded, sorted.

        Returns:
            One immutable entry per version.
        """
        with self._lock:
            keys = sorted(self._counters) if models is None else list(models)
            return [
                self._freeze(name, version, self._counters.get((name, version)))
                for name, version in keys
            ]

    def _freeze(self, name: str, version: str, counters: _Counters | None) -> ModelStats:
        if counters is None:
            return ModelStats(name=name, version=version)
        last = counters.last_at
        return ModelStats(
            name=name,
            version=version,
            last_inference=self._wall_ms(last) if last > -math.inf else 0,
            inference_count=counters.inference_count,
            execution_count=counters.execution_count,
            success=Duration(counters.success_count, round(counters.success_seconds * 1e9)),
            fail=Duration(counters.fail_count, round(counters.fail_seconds * 1e9)),
        )


def merge_statistics(snapshots: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Add up several processes' statistics (in :meth:`ModelStats.to_dict` form) per version.

    Counts and durations add up; ``last_inference`` is the latest. Entries keep the order in
    which their version first appears.
    """
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for snapshot in snapshots:
        for entry in snapshot:
            key = (entry["name"], entry["version"])
            total = merged.get(key)
            if total is None:
                merged[key] = {
                    **entry,
                    "inference_stats": {k: dict(v) for k, v in entry["inference_stats"].items()},
                }
                continue
            total["last_inference"] = max(total["last_inference"], entry["last_inference"])
            total["inference_count"] += entry["inference_count"]
            total["execution_count"] += entry["execution_count"]
            for kind, duration in entry["inference_stats"].items():
                mine = total["inference_stats"].setdefault(kind, {"count": 0, "ns": 0})
                mine["count"] += duration["count"]
                mine["ns"] += duration["ns"]
    return list(merged.values())
