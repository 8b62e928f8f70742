"""The alert signals of one gateway worker: sampled every second, written every interval.

:class:`GatewaySignals` is what a gateway (or ``modelport up``) worker runs for the alert rules.
A task on the worker's event loop samples each served variant about once a second (its
readiness: for versions this process hosts, the data plane's; for replicas, whether the
deployment's pool has a healthy replica; and, for hosted versions with batching, the share of
the batch queue in use) into a :class:`~modelport.monitoring.signals.SignalRecorder`. On every
boundary of ``monitoring.signal_interval_s`` (multiples of it since the epoch, the same for
every process) it records the bucket that ended (requests, server errors and latency buckets
from the gateway's counts) and writes the rows to the metadata database off the event loop
(:meth:`~modelport.monitoring.alert_state.AlertStateStore.add_signals`). Stopping records and
writes the last, partial bucket.

A failed write is logged and its rows kept for the next one, at most :data:`MAX_PENDING_ROWS`
(the oldest are dropped past that, and counted in the log); serving never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from modelport.core.clock import Clock
from modelport.core.errors import ModelportError
from modelport.core.settings import Settings
from modelport.monitoring.alert_state import AlertStateStore
from modelport.monitoring.signals import SignalRecorder, SignalRow, boundary
from modelport.server.gateway.local import LocalBackend
from modelport.server.gateway.metrics import gateway_counts
from modelport.service.dataplane import DataPlane
from modelport.service.gateway import Gateway

__all__ = ["MAX_PENDING_ROWS", "GatewaySignals"]

log = logging.getLogger("modelport.gateway")

MAX_PENDING_ROWS: Final = 20_000
"""Rows kept for a later write while the database refuses them."""
SAMPLE_EVERY_S: Final = 1.0
"""Seconds between two readiness and queue samples (less when the interval is short)."""


class GatewaySignals:
    """Samples, records and writes one worker's signals (see the module docstring).

    Args:
        settings: The worker's settings (``monitoring.signal_interval_s``, the database).
        gateway: The worker's gateway.
        dataplane: Its in-process data plane (``modelport up``); ``None`` in a gateway.
        clock: The wall clock of the buckets.
        edges: The gateway's latency bucket edges.
        worker_index: The worker's slot, part of its writer name.
        store: Where rows are written; ``None`` opens the metadata database's.

    Raises:
        ConfigError: The metadata database cannot be reached.
    """

    def __init__(
        self,
        settings: Settings,
        gateway: Gateway,
        dataplane: DataPlane | None,
        clock: Clock,
        edges: Sequence[float],
        worker_index: int = 0,
        store: AlertStateStore | None = None,
    ) -> None:
        self.interval_s = settings.monitoring.signal_interval_s
        self._gateway = gateway
        self._dataplane = dataplane
        self._clock = clock
        self._default_capacity = settings.batching.max_queue_rows
        self._store = store or AlertStateStore(settings.resolved_database_url())
        self.recorder = SignalRecorder(edges, clock.now())
        self.writer = f"{socket.gethostname()}:{os.getpid()}:{worker_index}"
        self.pending: list[SignalRow] = []
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling and writing (on the running event loop)."""
        self._task = asyncio.create_task(self._run(), name="modelport-alert-signals")

    async def stop(self) -> None:
        """Stop; record and write the last, partial bucket; close the store."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sample()
        await self.flush(self._clock.now())
        await asyncio.to_thread(self._store.close)

    async def _run(self) -> None:
        interval = self.interval_s
        tick = min(SAMPLE_EVERY_S, interval / 4)
        due = boundary(self._clock.now(), interval) + timedelta(seconds=interval)
        while True:
            left = (due - self._clock.now()).total_seconds()
            await asyncio.sleep(max(0.0, min(tick, left)))
            self.sample()
            now = self._clock.now()
            if now >= due:
                await self.flush(due)
                due = boundary(now, interval) + timedelta(seconds=interval)

    def sample(self) -> None:
        """Take one readiness and queue sample of every served variant."""
        ready: dict[tuple[str, str], bool] = {}
        fill: dict[tuple[str, str], float] = {}
        shares = self._queue_shares()
        gateway = self._gateway
        for name in gateway.names():
            try:
                route = gateway.route(name)
            except ModelportError:
                continue  # removed since names() was read
            backend = route.backend
            local = isinstance(backend, LocalBackend)
            for variant, (model, version) in route.served.items():
                key = (name, variant)
                ready[key] = self._locally_ready(model, version) if local else backend.ready()
                share = shares.get((model, version)) if local else None
                if share is not None:
                    fill[key] = share
        self.recorder.sample(ready, fill)

    def _locally_ready(self, model: str, version: str) -> bool:
        if self._dataplane is None:
            return False
        try:
            return self._dataplane.model_ready(model, version)
        except ModelportError:
            return False

    def _queue_shares(self) -> dict[tuple[str, str], float]:
        """``(model, version)`` -> share of its batch queue in use, for hosted batched versions."""
        if self._dataplane is None:
            return {}
        shares = {}
        for hosted in self._dataplane.repository:
            batcher = hosted.batcher
            if batcher is None:
                continue
            batching = hosted.source.batching
            capacity = batching.max_queue_rows if batching is not None else self._default_capacity
            shares[(hosted.source.name, hosted.source.version)] = batcher.queued_rows / capacity
        return shares

    async def flush(self, end: datetime) -> None:
        """Record the bucket ending at ``end`` and write every row not written yet."""
        rows = self.recorder.record(end, gateway_counts(self._gateway.stats()))
        self.pending += rows
        excess = len(self.pending) - MAX_PENDING_ROWS
        if excess > 0:
            del self.pending[:excess]
            self.dropped += excess
            log.warning(
                "dropped %d alert signal rows the database did not take (%d so far)",
                excess,
                self.dropped,
                extra={"fields": {"event": "signals_dropped", "rows": excess}},
            )
        if not self.pending:
            return
        batch = list(self.pending)
        try:
            await asyncio.to_thread(self._store.add_signals, batch, self.writer)
        except Exception as exc:  # the database is down: keep them for the next write
            log.warning(
                "could not write %d alert signal rows (kept for the next try): %s",
                len(batch),
                exc,
                extra={"fields": {"event": "signals_write_failed", "error": repr(exc)}},
            )
            return
        del self.pending[: len(batch)]
