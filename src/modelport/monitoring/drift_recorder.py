"""A gateway's drift windows, from its prediction log to the metadata database.

:class:`DriftRecorder` is the prediction log's observer (it runs on the log's writer thread,
off the request path): each flush's records are counted by a
:class:`~modelport.monitoring.drift_counter.DriftCounter`, and the buckets that have ended are
written to the :class:`~modelport.monitoring.drift_store.DriftStore`. A failed write keeps its
buckets for the next flush (at most :data:`MAX_WAITING` of them; beyond, the oldest are dropped
and counted), so the database being down for a while loses nothing and costs bounded memory.
:meth:`DriftRecorder.close` writes the buckets still open (a stopping worker's last minute).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from modelport.monitoring.drift_counter import DriftCounter, WindowSlice
from modelport.monitoring.drift_store import DriftStore

__all__ = ["MAX_WAITING", "DriftRecorder"]

log = logging.getLogger("modelport.drift")

MAX_WAITING: Final = 10_000
"""Buckets held for a retry at most while the database cannot be written."""

_WARN_EVERY_S: Final = 60.0


class DriftRecorder:
    """Counts logged predictions into drift windows and stores the ended ones.

    Args:
        counter: Counts records into their version's bins.
        store: Where ended buckets are written.
        now: The Unix time (buckets ending at or before it are written).
        on_close: Called last by :meth:`close` (to release what the counter reads profiles
            from).
    """

    def __init__(
        self,
        counter: DriftCounter,
        store: DriftStore,
        now: Callable[[], float] = time.time,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._counter = counter
        self._store = store
        self._on_close = on_close
        self._now = now
        self._writer = f"{socket.gethostname()}:{os.getpid()}"
        self._waiting: list[WindowSlice] = []
        self._warned_at = -_WARN_EVERY_S
        self.written = 0
        """Buckets written."""
        self.dropped = 0
        """Buckets dropped because too many were waiting for the database."""

    def __call__(self, records: Sequence[Any]) -> None:
        """Count a flush's records; write the buckets that have ended (the log's observer)."""
        self._counter.observe(records)
        self._write(self._counter.take(before=self._now()))

    def close(self) -> None:
        """Write every bucket, ended or not (one try), and close the store."""
        try:
            self._write(self._counter.take())
            if self._waiting:
                log.error("%d drift buckets could not be written: they are lost",
                          len(self._waiting))  # fmt: skip
        finally:
            self._store.close()
            if self._on_close is not None:
                self._on_close()

    def _write(self, slices: list[WindowSlice]) -> None:
        waiting = self._waiting + slices
        if not waiting:
            return
        try:
            self._store.add_windows(waiting, self._writer)
        except Exception as exc:  # noqa: BLE001 - kept and retried, whatever the database says
            excess = len(waiting) - MAX_WAITING
            if excess > 0:
                self.dropped += excess
                waiting = waiting[excess:]
            self._waiting = waiting
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                log.error("cannot write drift windows (%s: %s); %d buckets kept for a retry",
                          type(exc).__name__, exc, len(waiting))  # fmt: skip
            return
        self.written += len(waiting)
        self._waiting = []
