"""Inference statistics per served model version, shared by every transport.

An :class:`InferenceStats` keeps one :class:`~modelport.monitoring.tally.VersionTally` per
``(model, version)``, which the serving path records every request in: successes and failures
with their durations, the rows inferred, the model executions and the time of the last request.
The same tallies feed the Prometheus metrics (``ServingMetrics.follow``), so a request is counted
once for both. :meth:`InferenceStats.snapshot` returns immutable :class:`ModelStats`, whose
:meth:`ModelStats.to_dict` is the statistics extension's JSON form (Triton's ``model_stats``
entries) that the gRPC codec encodes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelport.core.clock import Clock, SystemClock, WallMillis
from modelport.monitoring.tally import LATENCY_BUCKETS, VersionTally

__all__ = ["Duration", "InferenceStats", "ModelStats", "merge_statistics"]


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


class InferenceStats:
    """One tally per ``(model, version)``, created on first use; safe to use from any thread.

    Requests are recorded with monotonic readings and durations in seconds, as the serving path
    has them; a snapshot turns them into the statistics extension's wall-clock milliseconds and
    integer nanoseconds. Converting once per snapshot instead of once per request keeps the
    wall clock off the serving path.

    Args:
        clock: The clock whose ``monotonic()`` readings requests are recorded at.
        latency_buckets: Upper bounds of the tallies' latency buckets, in seconds (the metrics'
            histogram edges).
    """

    def __init__(
        self, clock: Clock | None = None, latency_buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, str], VersionTally] = {}
        self._wall_ms = WallMillis(clock or SystemClock())
        self.latency_buckets = tuple(latency_buckets)
        """The tallies' latency bucket bounds, in seconds."""

    def tally(self, name: str, version: str) -> VersionTally:
        """Return the tally of ``(name, version)``, creating it on first use."""
        key = (name, version)
        tally = self._tallies.get(key)
        if tally is None:
            with self._lock:
                tally = self._tallies.get(key)
                if tally is None:
                    tally = self._tallies[key] = VersionTally(self.latency_buckets)
        return tally

    def tallies(self) -> list[tuple[str, str, VersionTally]]:
        """Return ``(model, version, tally)`` for every version recorded so far."""
        return [(name, version, tally) for (name, version), tally in list(self._tallies.items())]

    def record_executions(self, name: str, version: str, executions: int = 1) -> None:
        """Count model executions made for requests counted without them (batched requests)."""
        self.tally(name, version).executed(executions)

    def record_batch(self, name: str, version: str, rows: int) -> None:
        """Count one model call a batcher made, and its rows (a batch's size)."""
        self.tally(name, version).executed(1, rows)

    def snapshot(self, models: Iterable[tuple[str, str]] | None = None) -> list[ModelStats]:
        """Return the statistics of ``models`` (``(name, version)`` pairs), in that order.

        Args:
            models: The versions to report; a version with no requests yet reports zeros.
                ``None`` reports every version that has been recorded, sorted.

        Returns:
            One immutable entry per version.
        """
        keys = sorted(self._tallies) if models is None else list(models)
        return [
            self._freeze(name, version, self._tallies.get((name, version)))
            for name, version in keys
        ]

    def _freeze(self, name: str, version: str, tally: VersionTally | None) -> ModelStats:
        if tally is None:
            return ModelStats(name=name, version=version)
        totals = tally.totals()
        last = totals.last_at
        return ModelStats(
            name=name,
            version=version,
            last_inference=self._wall_ms(last) if last > -math.inf else 0,
            inference_count=totals.inference_count,
            execution_count=totals.execution_count,
            success=Duration(totals.success_count, round(totals.success_seconds * 1e9)),
            fail=Duration(totals.fail_count, round(totals.fail_seconds * 1e9)),
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
