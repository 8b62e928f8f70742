"""One process's ``/metrics``: the metrics of every part of it, flushed and rendered together.

Each serving process (a ``serve``, ``gateway`` or ``up`` worker, the control plane) builds one
:class:`Exposition`. The parts that count (:class:`~modelport.monitoring.metrics.ServingMetrics`,
:class:`~modelport.monitoring.gateway_metrics.GatewayMetrics`,
:class:`~modelport.monitoring.control_metrics.ControlPlaneMetrics`) create their Prometheus
metrics through it and register a *flush*: a function that moves what their plain counters
counted since the last flush into those metrics. Nothing on a request path touches
``prometheus_client`` (even its cheapest operations cost microseconds, and its file-backed values
more); :meth:`Exposition.flush` runs every flush once a second (:meth:`Exposition.flush_every`)
and before every scrape. The exposition also measures its own process: CPU seconds and resident
memory, labelled with the worker's index (``worker="0"``), never its process id, so a restarted
worker continues its predecessor's series.

**Several workers.** With more than one worker process the supervisor calls
:func:`enable_multiprocess` before it forks them: ``prometheus_client`` then keeps every value in
a memory-mapped file per process, and :meth:`Exposition.render` adds up every worker's files, so
whichever worker answers a scrape, the counts are the server's. Counters and histograms of a
worker that died stay in the sums (what it counted happened); gauges keep only live workers
(:func:`worker_exited`, called by the supervisor when it reaps one, removes the dead worker's).
``prometheus_client`` reads the mode when it is imported, so it must not be imported before
:func:`enable_multiprocess`: every import of it here is inside a function.

A single process renders its own registry, without the ``*_created`` series the client adds to
counters and histograms (multiprocess mode has none; a timestamp named ``_created`` is in no base
unit).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelport.monitoring.tally import latency_buckets

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CounterFlush",
    "Exposition",
    "GaugeFlush",
    "GaugeMode",
    "HistogramFlush",
    "enable_multiprocess",
    "remove_multiprocess_dir",
    "worker_exited",
]

log = logging.getLogger("modelport.metrics")

_ENV = "PROMETHEUS_MULTIPROC_DIR"
_FLUSH_ERROR_EVERY_S = 60.0

GaugeMode = Literal["livesum", "livemax", "max", "mostrecent"]
"""How several workers' values of a gauge combine: the sum over live workers (in-flight
requests, queue depth), the largest over live workers, the largest ever written (timestamps,
load times), or the latest written (scores a job sets in one worker)."""


def enable_multiprocess() -> Path:
    """Switch ``prometheus_client`` to multiprocess mode with a fresh directory; return it.

    Call in the parent process before forking workers and before anything imports
    ``prometheus_client``. The directory is removed when the parent exits normally.
    """
    directory = Path(tempfile.mkdtemp(prefix="modelport-metrics-"))
    os.environ[_ENV] = str(directory)
    return directory


def remove_multiprocess_dir(directory: Path) -> None:
    """Delete the directory made by :func:`enable_multiprocess`."""
    shutil.rmtree(directory, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Drop the gauges of worker process ``pid``, which exited (multiprocess mode only)."""
    if not os.environ.get(_ENV):
        return
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid)  # type: ignore[no-untyped-call]  # untyped in the client


class Exposition:
    """The Prometheus metrics of one process: created here, flushed together, rendered as text.

    Args:
        slo_latency_seconds: Thresholds every latency histogram has as bucket edges
            (``monitoring.slo_latency_seconds``).
        worker: This worker's index among the server's workers (0 for a single process): the
            ``worker`` label of the process metrics.
        multiprocess: Add up every worker's metrics when rendering (see
            :func:`enable_multiprocess`); defaults to whether that mode is on.
        cpu_seconds: Returns this process's CPU seconds (tests pass a fake);
            default :func:`time.process_time`.
    """

    def __init__(
        self,
        *,
        slo_latency_seconds: Iterable[float] = (),
        worker: int = 0,
        multiprocess: bool | None = None,
        cpu_seconds: Callable[[], float] = time.process_time,
    ) -> None:
        from prometheus_client import CollectorRegistry

        self.multiprocess = bool(os.environ.get(_ENV)) if multiprocess is None else multiprocess
        self.latency_buckets = latency_buckets(slo_latency_seconds)
        """Bucket edges of every latency histogram, in seconds."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.worker = str(worker)
        self._flushes: list[Callable[[], None]] = []
        self._failed_at = -_FLUSH_ERROR_EVERY_S
        self._cpu = cpu_seconds
        cpu = self.counter(
            "modelport_process_cpu_seconds",
            "CPU time (user and system) of the worker process, every thread included",
            ["worker"],
        )
        self._cpu_flush = CounterFlush(cpu)
        memory = self.gauge(
            "modelport_process_resident_memory_bytes",
            "Resident memory of the worker process (Linux; absent elsewhere)",
            ["worker"],
            mode="livesum",
        )
        self._memory_flush = GaugeFlush(memory)
        view = CollectorRegistry(auto_describe=False)
        view.register(_WithoutCreated(self.registry))
        self._view = view

    # -- metric factories ----------------------------------------------------------------------

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter (``name`` without ``_total``: the client adds it to the sample)."""
        from prometheus_client import Counter

        return Counter(name, documentation, list(labels), registry=self.registry)

    def gauge(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        mode: GaugeMode = "livesum",
    ) -> Gauge:
        """A gauge; ``mode`` says how several workers' values combine (:data:`GaugeMode`)."""
        from prometheus_client import Gauge

        return Gauge(
            name, documentation, list(labels), registry=self.registry, multiprocess_mode=mode
        )

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] | None = None,
    ) -> Histogram:
        """A histogram; ``buckets`` defaults to :attr:`latency_buckets` (in seconds)."""
        from prometheus_client import Histogram

        edges = self.latency_buckets if buckets is None else tuple(buckets)
        return Histogram(name, documentation, list(labels), registry=self.registry, buckets=edges)

    def follow_totals(
        self, described: Mapping[str, str], source: Callable[[], Mapping[str, float]]
    ) -> None:
        """Counters without labels, each brought up to the running total ``source`` returns.

        Args:
            described: Each counter's name (ending ``_total``) and help text.
            source: Returns the totals since the process started, by counter name (on the
                thread that flushes).
        """
        flushes = {
            name: CounterFlush(self.counter(name.removesuffix("_total"), text))
            for name, text in described.items()
        }

        def flush() -> None:
            for name, total in source().items():
                flushes[name].update((), total)

        self.on_flush(flush)

    # -- flushing and rendering ----------------------------------------------------------------

    def on_flush(self, flush: Callable[[], None]) -> None:
        """Run ``flush`` at every :meth:`flush`, after those registered before it."""
        self._flushes.append(flush)

    def flush(self) -> None:
        """Move what every part counted since the last flush into the Prometheus metrics.

        Call on the thread that serves requests (the event loop), which the parts count on.
        """
        self._cpu_flush.update((self.worker,), self._cpu())
        memory = _resident_bytes()
        if memory is not None:
            self._memory_flush.update((self.worker,), memory)
        for flush in self._flushes:
            flush()

    async def flush_every(self, seconds: float = 1.0) -> None:
        """Flush every ``seconds`` until cancelled (a task in each worker), and once more then.

        A flush that raises is logged (at most once a minute) and the next one runs anyway.
        """
        try:
            while True:
                await asyncio.sleep(seconds)
                self._flush_logged()
        finally:
            self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception:  # a bug in one part's flush must not stop the metrics of the others
            now = time.monotonic()
            if now - self._failed_at >= _FLUSH_ERROR_EVERY_S:
                self._failed_at = now
                log.exception("the metrics could not be flushed")

    def render(self) -> tuple[bytes, str]:
        """Return the Prometheus text exposition and its content type (after a flush).

        In multiprocess mode the text adds up every worker's metrics.
        """
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        self.flush()
        if not self.multiprocess:
            return generate_latest(self._view), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in the client
        return generate_latest(registry), CONTENT_TYPE_LATEST


class CounterFlush:
    """Moves running totals into a counter: what each label set's total grew by since last time.

    A total that went down (its source was replaced) is taken as the new baseline; a counter
    never goes down.
    """

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._flushed: dict[tuple[str, ...], float] = {}

    def update(self, labels: tuple[str, ...], total: float) -> None:
        """Bring the series of ``labels`` up to ``total``."""
        before = self._flushed.get(labels, 0.0)
        if total == before:
            return
        self._flushed[labels] = total
        if total > before:
            child = self._counter.labels(*labels) if labels else self._counter
            child.inc(total - before)


class GaugeFlush:
    """Sets a gauge's series, writing only those whose value changed."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._set: dict[tuple[str, ...], float] = {}

    def update(self, labels: tuple[str, ...], value: float) -> None:
        """Set the series of ``labels`` to ``value``."""
        if self._set.get(labels) == value:
            return
        self._set[labels] = value
        child = self._gauge.labels(*labels) if labels else self._gauge
        child.set(value)

    def known(self) -> set[tuple[str, ...]]:
        """The label sets set so far."""
        return set(self._set)


class HistogramFlush:
    """Adds bucketed totals to a histogram: what each label set's totals grew by since last time.

    ``prometheus_client``'s histogram has no bulk observe; its value slots are the documented
    storage of a histogram child (``_sum`` and one per bucket, ``+Inf`` last), and, like a
    tally's slots, each counts only the observations of its own bucket.
    """

    def __init__(self, histogram: Histogram, buckets: Sequence[float]) -> None:
        self._histogram = histogram
        self._slots = len(buckets) + 1
        self._flushed: dict[tuple[str, ...], tuple[float, tuple[int, ...]]] = {}

    def update(self, labels: tuple[str, ...], seconds: float, buckets: Sequence[int]) -> None:
        """Bring the series of ``labels`` up to a sum of ``seconds`` and counts per bucket.

        Raises:
            ValueError: ``buckets`` does not have one count per bucket and one above them all.
        """
        if len(buckets) != self._slots:
            raise ValueError(
                f"{len(buckets)} bucket counts for a histogram of {self._slots} buckets"
            )
        before_sum, before = self._flushed.get(labels, (0.0, (0,) * self._slots))
        counts = tuple(buckets)
        if counts == before and seconds == before_sum:
            return
        self._flushed[labels] = (seconds, counts)
        child: Any = self._histogram.labels(*labels) if labels else self._histogram
        if seconds > before_sum:
            child._sum.inc(seconds - before_sum)
        for slot, count, earlier in zip(child._buckets, counts, before, strict=True):
            if count > earlier:
                slot.inc(count - earlier)


class _WithoutCreated:
    """The families of a registry without their ``*_created`` samples."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Any]:
        for family in self._registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


def _resident_bytes() -> float | None:
    """This process's resident memory in bytes, from ``/proc`` (``None`` where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return float(pages * os.sysconf("SC_PAGE_SIZE"))
