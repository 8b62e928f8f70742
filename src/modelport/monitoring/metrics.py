"""The data plane's Prometheus metrics: requests, rows and latency per model version, batching.

Recording is on the hot path, where even ``prometheus_client``'s cheapest operations (and its
file-backed values in multiprocess mode) cost several microseconds a request. So requests are
counted only in the served versions' :class:`~modelport.monitoring.tally.VersionTally` records,
which the statistics extension reads too, and :meth:`ServingMetrics.flush` moves what changed
since its last flush into the Prometheus metrics of the process's
:class:`~modelport.monitoring.exposition.Exposition`: once a second from a background task, and
before every scrape. What is a state rather than a count (batch queues, requests in flight, load
times) is read from the hosted versions at the same moments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from modelport.monitoring.exposition import (
    CounterFlush,
    Exposition,
    GaugeFlush,
    HistogramFlush,
    enable_multiprocess,
    remove_multiprocess_dir,
)
from modelport.monitoring.tally import LATENCY_BUCKETS, TallyTotals, VersionTally

__all__ = [
    "BATCH_ROWS_BUCKETS",
    "LATENCY_BUCKETS",
    "HostedVersion",
    "ServingMetrics",
    "TallySource",
    "enable_multiprocess",
    "remove_multiprocess_dir",
]

BATCH_ROWS_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
"""Upper bounds of the batch-size histogram, in rows."""

TallySource = Callable[[], Iterable[tuple[str, str, VersionTally]]]
"""Returns ``(model, version, tally)`` for every served version that has one."""


@dataclass(frozen=True, slots=True)
class HostedVersion:
    """One hosted version's state at a flush.

    Attributes:
        model: Model name.
        version: Served version.
        load_seconds: How long its last load took; ``None`` before one.
        queued_rows: Rows waiting in its batch queue.
        in_flight: Requests queued or in a running batch. A request that runs without a
            batcher holds the event loop, so it is never seen in flight here.
    """

    model: str
    version: str
    load_seconds: float | None = None
    queued_rows: int = 0
    in_flight: int = 0


HostedSource = Callable[[], Iterable[HostedVersion]]
"""Returns every hosted version's state."""


class ServingMetrics:
    """Request counts, latency and rows per model version; batch queues and sizes; load times.

    Args:
        exposition: The process's metrics (its latency histograms' bucket edges included);
            ``None`` makes one of its own.
        multiprocess: With ``exposition`` ``None``: whether that one adds up every worker's
            metrics (defaults to whether multiprocess mode is on).
    """

    def __init__(
        self, exposition: Exposition | None = None, *, multiprocess: bool | None = None
    ) -> None:
        self.exposition = exposition = exposition or Exposition(multiprocess=multiprocess)
        self.latency_buckets = exposition.latency_buckets
        """Bucket edges of the latency histogram; the tallies followed must use the same."""
        labels = ("model", "version")
        self._requests = CounterFlush(
            exposition.counter(
                "modelport_inference_requests",
                "Inference requests by model version and outcome (ok, or the error kind)",
                [*labels, "outcome"],
            )
        )
        self._rows = CounterFlush(
            exposition.counter(
                "modelport_inference_rows",
                "Rows (batch dimension) inferred successfully",
                labels,
            )
        )
        self._latency = HistogramFlush(
            exposition.histogram(
                "modelport_inference_duration_seconds",
                "Time from a decoded request to its outputs, queueing included",
                labels,
            ),
            self.latency_buckets,
        )
        self._batch_rows = HistogramFlush(
            exposition.histogram(
                "modelport_batch_rows",
                "Rows of each model call a batcher made (the batch's size)",
                labels,
                buckets=BATCH_ROWS_BUCKETS,
            ),
            BATCH_ROWS_BUCKETS,
        )
        self._in_flight = GaugeFlush(
            exposition.gauge(
                "modelport_inference_in_flight_requests",
                "Requests waiting in a batch queue or in a running batch",
                labels,
            )
        )
        self._queued_rows = GaugeFlush(
            exposition.gauge(
                "modelport_batch_queue_rows",
                "Rows waiting in a version's batch queue (refused above batching.max_queue_rows)",
                labels,
            )
        )
        self._load_seconds = GaugeFlush(
            exposition.gauge(
                "modelport_model_load_duration_seconds",
                "How long the last load of a version took (verification, decryption, the "
                "runtime's load); the slowest worker's",
                labels,
                mode="max",
            )
        )
        self._source: TallySource | None = None
        self._hosted: HostedSource | None = None
        exposition.on_flush(self.flush)

    def follow(self, source: TallySource, hosted: HostedSource | None = None) -> None:
        """Read the request counts from ``source``'s tallies and the states from ``hosted``.

        The tallies must bucket latency by :attr:`latency_buckets`.
        """
        self._source = source
        self._hosted = hosted

    def flush(self) -> None:
        """Move what the tallies counted since the last flush into the Prometheus metrics."""
        if self._source is not None:
            for model, version, tally in self._source():
                self._flush_tally((model, version), tally.totals())
        if self._hosted is not None:
            self._flush_hosted(self._hosted())

    def _flush_tally(self, labels: tuple[str, str], totals: TallyTotals) -> None:
        self._requests.update((*labels, "ok"), totals.success_count)
        for kind, count in totals.failures.items():
            self._requests.update((*labels, kind), count)
        self._rows.update(labels, totals.inference_count)
        seconds = totals.success_seconds + totals.fail_seconds
        self._latency.update(labels, seconds, totals.buckets)
        if totals.batch_rows:
            self._batch_rows.update(labels, *_rows_histogram(totals.batch_rows))

    def _flush_hosted(self, hosted: Iterable[HostedVersion]) -> None:
        gone = self._in_flight.known()
        for state in hosted:
            labels: tuple[str, ...] = (state.model, state.version)
            gone.discard(labels)
            self._in_flight.update(labels, state.in_flight)
            self._queued_rows.update(labels, state.queued_rows)
            if state.load_seconds is not None:
                self._load_seconds.update(labels, state.load_seconds)
        for labels in gone:  # unloaded: nothing waits for it any more
            self._in_flight.update(labels, 0)
            self._queued_rows.update(labels, 0)

    async def flush_every(self, seconds: float = 1.0) -> None:
        """Flush the whole exposition every ``seconds`` until cancelled."""
        await self.exposition.flush_every(seconds)

    def render(self) -> tuple[bytes, str]:
        """Return the process's Prometheus text and its content type (after a flush)."""
        return self.exposition.render()


def _rows_histogram(calls_by_rows: Mapping[int, int]) -> tuple[float, list[int]]:
    """The sum of rows and the calls per :data:`BATCH_ROWS_BUCKETS` bucket."""
    counts = [0] * (len(BATCH_ROWS_BUCKETS) + 1)
    total = 0
    for rows, calls in calls_by_rows.items():
        total += rows * calls
        slot = next(
            (i for i, bound in enumerate(BATCH_ROWS_BUCKETS) if rows <= bound),
            len(BATCH_ROWS_BUCKETS),
        )
        counts[slot] += calls
    return float(total), counts
