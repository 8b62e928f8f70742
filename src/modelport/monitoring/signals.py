"""What a gateway process measured of each variant, per time bucket: the alert rules' input.

Every gateway process (each ``modelport up`` or ``modelport gateway`` worker, on every
machine) keeps a :class:`SignalRecorder`. It is fed twice:

- :meth:`SignalRecorder.sample`, often (about once a second): each variant's readiness and,
  for the versions this process hosts in-process, the share of its batch queue in use
  (queued rows over ``batching.max_queue_rows``). The recorder keeps the samples taken, the
  samples not ready and the peak share.
- :meth:`SignalRecorder.record`, every ``monitoring.signal_interval_s`` and once more when the
  process stops: the gateway's cumulative counts (a
  :class:`~modelport.monitoring.gateway_metrics.GatewayCounts`); the recorder subtracts what it
  saw at the previous recording and returns one :class:`SignalRow` per variant that did
  something in the bucket (requests, samples), which the caller writes to the
  ``traffic_windows`` table.

A cumulative count smaller than the one before (a tally that was replaced) counts from zero, as
Prometheus reads a counter reset. Rows carry their latency bucket edges, so rows of processes
with other settings still add up: :func:`add_up` sums any rows (every writer's, every bucket
of a window) into :class:`SignalTotals`, which answers how many requests were slower than a
threshold (linear interpolation inside a bucket when the threshold is not an edge, as
Prometheus' ``histogram_quantile`` does; a request in the bucket above the largest edge counts
as slower) and a latency quantile. Everything here is pure: no I/O, no clock of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from modelport.monitoring.gateway_metrics import GatewayCounts
from modelport.monitoring.tally import LatencyTotals

__all__ = ["SignalRecorder", "SignalRow", "SignalTotals", "add_up", "boundary", "count_above"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

Variant = tuple[str, str]
"""``(deployment, variant)``."""


@dataclass(frozen=True, slots=True)
class SignalRow:
    """What one process measured of one variant in one bucket ``[start, start + seconds)``.

    Attributes:
        deployment: The deployment.
        variant: Its variant.
        start: When the bucket started.
        seconds: How long it lasted.
        requests: Requests answered (every status).
        errors: Of those, answered with a server error (5xx).
        edges: Upper bounds of the latency buckets, in seconds.
        buckets: Requests per latency bucket (``le``; the last slot is above every edge).
        latency_seconds: The sum of their durations.
        queue_fill: The largest share of the batch queue in use, for a version hosted in this
            process with batching; ``None`` otherwise.
        samples: Readiness samples taken.
        not_ready: Of those, samples where the variant could not answer.
    """

    deployment: str
    variant: str
    start: datetime
    seconds: float
    requests: int = 0
    errors: int = 0
    edges: tuple[float, ...] = ()
    buckets: tuple[int, ...] = (0,)
    latency_seconds: float = 0.0
    queue_fill: float | None = None
    samples: int = 0
    not_ready: int = 0

    @property
    def end(self) -> datetime:
        """When the bucket ended."""
        return self.start + timedelta(seconds=self.seconds)

    @property
    def latency_count(self) -> int:
        """Requests in the latency buckets."""
        return sum(self.buckets)


@dataclass(slots=True)
class _Samples:
    taken: int = 0
    not_ready: int = 0
    peak_fill: float | None = None


class SignalRecorder:
    """Turns a gateway's cumulative counts and frequent samples into rows per bucket.

    Args:
        edges: The latency tallies' bucket edges (the process's histogram edges).
        start: When the first bucket starts (the process's start).
    """

    def __init__(self, edges: Sequence[float], start: datetime) -> None:
        self._edges = tuple(edges)
        self._start = start
        self._requests: dict[Variant, int] = {}
        self._errors: dict[Variant, int] = {}
        self._latency: dict[Variant, LatencyTotals] = {}
        self._samples: dict[Variant, _Samples] = {}

    @property
    def bucket_start(self) -> datetime:
        """When the bucket being recorded started."""
        return self._start

    def sample(self, ready: Mapping[Variant, bool], fill: Mapping[Variant, float]) -> None:
        """Count one readiness sample of each variant in ``ready``; keep each peak queue share.

        Args:
            ready: ``(deployment, variant)`` -> whether it can answer now.
            fill: ``(deployment, variant)`` -> the share of its batch queue in use (only for
                versions this process hosts with batching).
        """
        for key, is_ready in ready.items():
            samples = self._samples.setdefault(key, _Samples())
            samples.taken += 1
            samples.not_ready += 0 if is_ready else 1
        for key, share in fill.items():
            samples = self._samples.setdefault(key, _Samples())
            peak = samples.peak_fill
            samples.peak_fill = share if peak is None else max(peak, share)

    def record(self, now: datetime, counts: GatewayCounts) -> list[SignalRow]:
        """Close the bucket at ``now``: what changed since the last recording, per variant.

        Args:
            now: The end of the bucket (the next one starts there).
            counts: The gateway's counts since it started.

        Returns:
            A row per variant with requests or samples in the bucket; none when ``now`` is not
            after the bucket's start (a clock stepped back: the bucket goes on).
        """
        seconds = (now - self._start).total_seconds()
        if seconds <= 0:
            return []
        requests, errors = _by_variant(counts)
        latency = {(d, v): totals for d, v, totals in counts.latency}
        rows = []
        for key in sorted(set(requests) | set(latency) | set(self._samples)):
            row = self._row(key, now, seconds, requests, errors, latency)
            if row is not None:
                rows.append(row)
        self._requests, self._errors = requests, errors
        self._latency.update(latency)
        self._samples = {}
        self._start = now
        return rows

    def _row(
        self,
        key: Variant,
        now: datetime,
        seconds: float,
        requests: Mapping[Variant, int],
        errors: Mapping[Variant, int],
        latency: Mapping[Variant, LatencyTotals],
    ) -> SignalRow | None:
        n = _delta(requests.get(key, 0), self._requests.get(key, 0))
        failed = _delta(errors.get(key, 0), self._errors.get(key, 0))
        buckets, spent = self._latency_delta(key, latency.get(key))
        samples = self._samples.get(key, _Samples())
        if n == 0 and sum(buckets) == 0 and samples.taken == 0 and samples.peak_fill is None:
            return None
        return SignalRow(
            key[0],
            key[1],
            self._start,
            seconds,
            requests=n,
            errors=failed,
            edges=self._edges,
            buckets=buckets,
            latency_seconds=spent,
            queue_fill=samples.peak_fill,
            samples=samples.taken,
            not_ready=samples.not_ready,
        )

    def _latency_delta(
        self, key: Variant, now: LatencyTotals | None
    ) -> tuple[tuple[int, ...], float]:
        empty = (0,) * (len(self._edges) + 1)
        if now is None or len(now.buckets) != len(empty):
            return empty, 0.0  # none, or made with other edges: nothing it says can be read
        before = self._latency.get(key)
        if before is None or now.count < before.count or len(before.buckets) != len(now.buckets):
            return now.buckets, now.seconds  # new, or replaced: everything is this bucket's
        buckets = tuple(a - b for a, b in zip(now.buckets, before.buckets, strict=True))
        return buckets, max(0.0, now.seconds - before.seconds)


def _by_variant(counts: GatewayCounts) -> tuple[dict[Variant, int], dict[Variant, int]]:
    """Requests and server errors (5xx) per variant, over protocols and unit keys."""
    requests: dict[Variant, int] = {}
    errors: dict[Variant, int] = {}
    for (deployment, variant, _protocol, code, _keyed), n in counts.requests.items():
        key = (deployment, variant)
        requests[key] = requests.get(key, 0) + n
        if code.startswith("5"):
            errors[key] = errors.get(key, 0) + n
    return requests, errors


def _delta(now: int, before: int) -> int:
    return now - before if now >= before else now


def count_above(edges: Sequence[float], buckets: Sequence[int], threshold: float) -> float:
    """How many of a histogram's durations were above ``threshold`` seconds.

    Exact when ``threshold`` is an edge. Inside a bucket, its durations are taken as spread
    evenly over it (the first bucket starts at 0); the bucket above the largest edge counts
    whole, since nothing is known of where in it they fall.

    Args:
        edges: Upper bounds of the buckets, increasing.
        buckets: Durations per bucket: one more than ``edges``.
        threshold: Seconds.
    """
    above = 0.0
    lower = 0.0
    for upper, n in zip(edges, buckets, strict=False):
        if threshold <= lower:
            above += n
        elif threshold < upper:
            above += n * (upper - threshold) / (upper - lower)
        lower = upper
    return above + (buckets[len(edges)] if len(buckets) > len(edges) else 0)


@dataclass(frozen=True, slots=True)
class SignalTotals:
    """Rows added up: every writer's, every bucket of a window.

    Attributes:
        requests: Requests answered.
        errors: Of those, server errors.
        latency_count: Requests in the latency histograms.
        latency_seconds: The sum of their durations.
        samples: Readiness samples.
        not_ready: Of those, not ready.
        peak_fill: The largest batch-queue share seen; ``None`` if none was measured.
        histograms: Each row's ``(edges, buckets)``.
    """

    requests: int = 0
    errors: int = 0
    latency_count: int = 0
    latency_seconds: float = 0.0
    samples: int = 0
    not_ready: int = 0
    peak_fill: float | None = None
    histograms: tuple[tuple[tuple[float, ...], tuple[int, ...]], ...] = field(default=())

    def slower_than(self, threshold: float) -> float:
        """Requests slower than ``threshold`` seconds (see :func:`count_above`)."""
        return sum(count_above(edges, buckets, threshold) for edges, buckets in self.histograms)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of the durations (interpolated in its bucket); ``None`` if none.

        A quantile beyond the largest edge is that edge, as Prometheus answers.

        Raises:
            ValueError: ``q`` is not between 0 and 1.
        """
        if not 0 <= q <= 1:
            raise ValueError(f"a quantile is between 0 and 1, got {q}")
        if self.latency_count == 0:
            return None
        edges = sorted({edge for row_edges, _ in self.histograms for edge in row_edges})
        if not edges:
            return None
        at_most = [self.latency_count - self.slower_than(edge) for edge in edges]
        target = q * self.latency_count
        lower, below = 0.0, 0.0
        for edge, cumulative in zip(edges, at_most, strict=True):
            if cumulative >= target and cumulative > below:
                return lower + (edge - lower) * (target - below) / (cumulative - below)
            lower, below = edge, cumulative
        return edges[-1]


def add_up(rows: Iterable[SignalRow]) -> SignalTotals:
    """The sum of ``rows`` (the largest queue share of any)."""
    requests = errors = count = samples = not_ready = 0
    spent = 0.0
    peak: float | None = None
    histograms = []
    for row in rows:
        requests += row.requests
        errors += row.errors
        count += row.latency_count
        spent += row.latency_seconds
        samples += row.samples
        not_ready += row.not_ready
        if row.queue_fill is not None:
            peak = row.queue_fill if peak is None else max(peak, row.queue_fill)
        if row.latency_count:
            histograms.append((row.edges, row.buckets))
    return SignalTotals(requests, errors, count, spent, samples, not_ready, peak, tuple(histograms))


def boundary(moment: datetime, interval_s: float) -> datetime:
    """The latest multiple of ``interval_s`` since the Unix epoch at or before ``moment``.

    Every process ends its buckets on these boundaries, so the rows of all writers line up and
    a window that ends on one holds whole buckets.
    """
    since = (moment - _EPOCH) // _MICROSECOND  # whole microseconds: exact, unlike floats
    step = max(1, round(interval_s * 1_000_000))
    return _EPOCH + (since - since % step) * _MICROSECOND
