"""The asyncio driver of dynamic batching: queue requests, let the policy decide, run, split.

A :class:`Batcher` serves one model. Callers ``await submit(...)``; one background task (started on
the first submit, on the running loop) asks :func:`~modelport.batching.policy.decide` what to do,
fails expired requests, runs one batch at a time and hands every caller exactly its own rows of
exactly the outputs it asked for. While a batch runs, new requests queue; they form the next batch.

Per request the hot path costs one future, two small objects and one :meth:`asyncio.Event.set`: no
task per request, no lock, and a batch of one request passes the caller's arrays to the model and
the model's arrays back unchanged (no concatenate, no split).

Each model call's CPU time is measured on the thread that makes it (``time.thread_time_ns``, in
the executor's thread or inline) and shared among the batch's requests by rows;
:meth:`Batcher.submit_timed` returns a request's share with its outputs. A caller that passes
:class:`RunMarks` (a transport tracing the request) gets when the request was queued and when
its model call started and finished: the times the batcher reads anyway, copied only then.

Errors a caller can get from :meth:`Batcher.submit`:

* :class:`~modelport.core.errors.InvalidInput`: inputs disagree on the row count, or the model
  rejected this caller's rows (when a batch is rejected, each request is re-run alone so only the
  culprit fails);
* :class:`~modelport.core.errors.PayloadTooLarge`: the request alone has more rows than the queue
  may hold;
* :class:`~modelport.core.errors.Overloaded`: the queue is full; ``retry_after`` estimates when
  enough of it will have drained;
* :class:`~modelport.core.errors.DeadlineExceeded`: the deadline passed while queued; not run;
* :class:`~modelport.core.errors.InferenceFailed`: the model failed, or returned an output whose
  first dimension is not the batch's row count (such a model cannot be batched);
* :class:`~modelport.core.errors.ModelNotReady`: the batcher was closed (model unloaded).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from time import thread_time_ns

import numpy as np

from modelport.batching._rows import concatenate, rows_and_key, rows_checked, split
from modelport.batching.policy import Pending, decide
from modelport.core.clock import Clock
from modelport.core.errors import (
    DeadlineExceeded,
    InferenceFailed,
    InvalidInput,
    ModelNotReady,
    ModelportError,
    Overloaded,
    PayloadTooLarge,
)
from modelport.core.settings import BatchingSettings

__all__ = ["Batcher", "BatcherStats", "ModelCall", "RunMarks"]

ModelCall = Callable[[dict[str, np.ndarray], Collection[str]], dict[str, np.ndarray]]
"""The model as the batcher sees it: ``run(inputs, outputs) -> arrays by output name``."""

_SMOOTHING = 0.2
"""Weight of the newest batch in the moving averages behind ``retry_after``."""


@dataclass(slots=True)
class BatcherStats:
    """Counters of one batcher, for metrics; plain ints, only ever increased.

    Attributes:
        batches: Model calls made (a rejected batch re-run request by request counts each call).
        rows: Rows passed to the model over all calls.
        requests: Requests taken from the queue to run.
        expired: Requests failed with ``DeadlineExceeded`` without running.
        refused: Requests refused with ``Overloaded`` or ``PayloadTooLarge`` (queue limits).
        cancelled: Requests whose caller went away while they were queued.
    """

    batches: int = 0
    rows: int = 0
    requests: int = 0
    expired: int = 0
    refused: int = 0
    cancelled: int = 0


class RunMarks:
    """When one request waited and ran: monotonic seconds on the batcher's (data plane's) clock.

    Filled only for a request that asks for them (a transport tracing it); ``0.0`` is a stage
    the request did not reach (it failed before, or had no rows to run).

    Attributes:
        queued: It entered the batch queue (run inline: its model call was about to start).
        started: Its model call (its batch's) started.
        finished: That call returned.
    """

    __slots__ = ("finished", "queued", "started")

    def __init__(self) -> None:
        self.queued = 0.0
        self.started = 0.0
        self.finished = 0.0


class _Entry:
    """One queued request: what to run, for whom, and how the policy sees it."""

    __slots__ = ("cpu_ms", "future", "inputs", "marks", "outputs", "pending")

    def __init__(
        self,
        inputs: dict[str, np.ndarray],
        outputs: Sequence[str],
        future: asyncio.Future[dict[str, np.ndarray]],
        pending: Pending,
        marks: RunMarks | None,
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.future = future
        self.pending = pending
        self.marks = marks  # filled when its model call returns, for a traced request
        self.cpu_ms: float | None = None  # this request's share of its model call's CPU time


class Batcher:
    """Dynamic batching of one model, driven by :func:`~modelport.batching.policy.decide`.

    Args:
        run: The model: takes inputs by name (first dimension = rows) and the output names wanted,
            returns arrays by output name whose first dimension is again the rows.
        settings: Batch limits, delay and queue size.
        clock: Source of monotonic time for enqueue times, deadlines and run times.
        executor: Where to call ``run``; ``None`` calls it inline on the event loop (only for
            models fast enough not to stall it).
        name: Model name used in error messages.
        on_call: Called with its rows after every model call that returned (a batch, or a
            request re-run alone), for statistics that count executions and batch sizes rather
            than requests.
    """

    def __init__(
        self,
        run: ModelCall,
        settings: BatchingSettings,
        clock: Clock,
        executor: concurrent.futures.Executor | None = None,
        name: str = "model",
        on_call: Callable[[int], None] | None = None,
    ) -> None:
        self.stats = BatcherStats()
        """Counters for metrics."""
        self._run = run
        self._settings = settings
        self._clock = clock
        self._executor = executor
        self._name = name
        self._on_call = on_call
        # Parallel lists, oldest first: the policy reads ``_pending`` without a copy.
        self._entries: list[_Entry] = []
        self._pending: list[Pending] = []
        self._queued_rows = 0
        self._running: list[_Entry] = []
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._avg_seconds = 0.0  # moving average of one model call's duration
        self._avg_rows = 0.0  # moving average of one model call's rows; 0 = no call yet

    @property
    def queued_rows(self) -> int:
        """Rows waiting in the queue (not counting the batch that is running)."""
        return self._queued_rows

    @property
    def in_flight(self) -> int:
        """Requests queued or in the batch that is running, not yet answered."""
        return len(self._entries) + sum(not e.future.done() for e in self._running)

    async def submit(
        self,
        inputs: dict[str, np.ndarray],
        outputs: Sequence[str],
        deadline: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Queue one request and return its outputs once its batch has run.

        Args:
            inputs: Input arrays by name; all share the first (row) dimension, which may be 0.
            outputs: Names of the outputs wanted; the result has exactly these keys.
            deadline: Monotonic time (on the batcher's clock) after which the request must not
                start running; ``None`` for none.

        Returns:
            This request's rows of each requested output.

        Raises:
            InvalidInput: The inputs disagree on rows, or the model rejected them.
            PayloadTooLarge: The request has more rows than ``max_queue_rows``.
            Overloaded: The queue cannot take the request now; retry after ``retry_after``.
            DeadlineExceeded: The deadline passed before the request ran; it was not run.
            InferenceFailed: The model failed or returned outputs that cannot be split by rows.
            ModelNotReady: The batcher is closed.
        """
        arrays, _ = await self.submit_timed(inputs, outputs, deadline)
        return arrays

    async def submit_timed(
        self,
        inputs: dict[str, np.ndarray],
        outputs: Sequence[str],
        deadline: float | None = None,
        marks: RunMarks | None = None,
    ) -> tuple[dict[str, np.ndarray], float | None]:
        """:meth:`submit`, and the request's share of its model call's CPU time in milliseconds.

        The share is the call's thread CPU time times the request's rows over the batch's rows
        (split equally when the batch has no rows). ``marks``, when given, gets when the request
        was queued and when its model call started and finished.

        Raises:
            ModelportError: As :meth:`submit`.
        """
        if self._closed:
            raise ModelNotReady(f"model {self._name!r} was unloaded; the request was not run")
        rows, key = rows_and_key(inputs)
        limit = self._settings.max_queue_rows
        if rows > limit:
            self.stats.refused += 1
            raise PayloadTooLarge(
                f"the request has {rows} rows; model {self._name!r} queues at most {limit}"
            )
        if self._queued_rows + rows > limit:
            self.stats.refused += 1
            raise Overloaded(
                f"model {self._name!r} has {self._queued_rows} rows queued; {rows} more would "
                f"pass max_queue_rows={limit}",
                retry_after=self._retry_after(rows),
            )
        now = self._clock.monotonic()
        if deadline is not None and deadline <= now:
            self.stats.expired += 1
            raise DeadlineExceeded(
                f"model {self._name!r}: the deadline passed before the request was queued; "
                "it was not run"
            )
        wakeup = self._wakeup
        if wakeup is None or self._task is None or self._task.done():
            wakeup = self._start()
        future: asyncio.Future[dict[str, np.ndarray]] = asyncio.get_running_loop().create_future()
        entry = _Entry(inputs, outputs, future, Pending(rows, now, deadline, key), marks)
        self._entries.append(entry)
        self._pending.append(entry.pending)
        self._queued_rows += rows
        wakeup.set()
        try:
            arrays = await future
        except asyncio.CancelledError:
            self._forget(entry)
            raise
        return arrays, entry.cpu_ms

    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the batcher runs on; ``None`` before its first request."""
        task = self._task
        return task.get_loop() if task is not None else None

    async def drain(self, timeout: float) -> None:
        """Let queued and running requests finish (at most ``timeout`` seconds), then close.

        For a version being replaced: new requests go elsewhere, and those already here are
        answered instead of failed. Whatever is still queued after ``timeout`` fails as
        :meth:`close` fails it.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while (self._entries or self._running) and loop.time() < until:
            await asyncio.sleep(0.001)
        await self.close()

    async def close(self) -> None:
        """Stop batching: fail queued requests with ``ModelNotReady`` and stop the loop task.

        A batch already running finishes and its callers get their results; after ``close``
        returns, ``run`` is not running and is never called again.
        """
        self._closed = True
        self._fail_queued(
            ModelNotReady(f"model {self._name!r} was unloaded; the request was not run")
        )
        task = self._task
        if task is not None and not task.done():
            if self._wakeup is not None:
                self._wakeup.set()
            await task

    # -- the loop ---------------------------------------------------------------------------

    def _start(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._task = loop.create_task(self._serve(self._wakeup), name=f"batcher {self._name}")
        return self._wakeup

    async def _serve(self, wakeup: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                wakeup.clear()  # before reading the queue, so no arrival is missed
                if not self._entries:
                    await wakeup.wait()
                    continue
                now = self._clock.monotonic()
                decision = decide(self._pending, now, self._settings)
                if decision.expired or decision.batch:
                    expired, batch = self._take(decision.expired, decision.batch)
                    for entry in expired:
                        self._expire(entry, now)
                    if batch:
                        self._running = batch  # failed by the ``finally`` below if cancelled
                        await self._run_batch(batch)
                        self._running = []
                    continue
                if decision.wake_at is None:  # pragma: no cover - decide always sets it here
                    await wakeup.wait()
                    continue
                timer = loop.call_later(max(0.0, decision.wake_at - now), wakeup.set)
                try:
                    await wakeup.wait()
                finally:
                    timer.cancel()
        finally:
            # Closed, cancelled with its loop, or crashed: nobody may be left waiting forever.
            error = ModelNotReady(f"model {self._name!r} was unloaded; the request was not run")
            self._fail_queued(error)
            for entry in self._running:
                _fail(entry, error)

    def _take(
        self, expired: tuple[int, ...], batch: tuple[int, ...]
    ) -> tuple[list[_Entry], list[_Entry]]:
        """Remove the decided entries from the queue; skip callers that went away."""
        entries = self._entries
        gone = [entries[i] for i in expired]
        chosen = [entries[i] for i in batch]
        if not expired and batch[-1] == len(batch) - 1:  # the usual case: a prefix
            del entries[: len(batch)]
            del self._pending[: len(batch)]
        else:
            drop = set(expired).union(batch)
            self._entries = [e for i, e in enumerate(entries) if i not in drop]
            self._pending = [p for i, p in enumerate(self._pending) if i not in drop]
        self._queued_rows -= sum(e.pending.rows for e in gone) + sum(e.pending.rows for e in chosen)
        live = [e for e in chosen if not e.future.done()]
        # Callers cancelled since the last look are gone before ``_forget`` could find them.
        self.stats.cancelled += len(chosen) - len(live) + sum(e.future.done() for e in gone)
        return [e for e in gone if not e.future.done()], live

    def _forget(self, entry: _Entry) -> None:
        """Drop a cancelled caller's entry if it is still queued."""
        for index, queued in enumerate(self._entries):
            if queued is entry:
                del self._entries[index]
                del self._pending[index]
                self._queued_rows -= entry.pending.rows
                self.stats.cancelled += 1
                if self._wakeup is not None:
                    self._wakeup.set()  # the head may have changed
                return

    def _fail_queued(self, error: ModelportError) -> None:
        entries, self._entries, self._pending, self._queued_rows = self._entries, [], [], 0
        for entry in entries:
            _fail(entry, error)

    def _expire(self, entry: _Entry, now: float) -> None:
        self.stats.expired += 1
        waited_ms = (now - entry.pending.enqueued_at) * 1000.0
        _fail(
            entry,
            DeadlineExceeded(
                f"model {self._name!r}: deadline passed after {waited_ms:.1f} ms in the queue; "
                "it was not run"
            ),
        )

    # -- running ----------------------------------------------------------------------------

    async def _run_batch(self, batch: list[_Entry]) -> None:
        self.stats.requests += len(batch)
        if len(batch) == 1:
            await self._run_alone(batch[0])
            return
        total = sum(e.pending.rows for e in batch)
        wanted = list(dict.fromkeys(name for e in batch for name in e.outputs))
        try:
            inputs = concatenate([e.inputs for e in batch])
            result, cpu_ns, ran = await self._call(inputs, wanted, total)
            arrays = rows_checked(result, wanted, total)
        except InvalidInput:
            # Someone's rows were rejected: run each request alone so only the culprit fails.
            for entry in batch:
                if self._closed:
                    _fail(entry, ModelNotReady(f"model {self._name!r} was unloaded; not run"))
                else:
                    await self._run_alone(entry)
            return
        except Exception as exc:  # every caller of the batch gets the failure
            error = self._as_error(exc)
            for entry in batch:
                _fail(entry, error)
            return
        parts = split(arrays, [(e.pending.rows, e.outputs) for e in batch])
        # Each request's share of the call's CPU time, by rows (equal shares without rows).
        per_row = cpu_ns / (1e6 * total) if total else 0.0
        per_request = 0.0 if total else cpu_ns / (1e6 * len(batch))
        for entry, part in zip(batch, parts, strict=True):
            entry.cpu_ms = entry.pending.rows * per_row + per_request
            if entry.marks is not None:
                _mark(entry, entry.marks, ran)
            _resolve(entry, part)

    async def _run_alone(self, entry: _Entry) -> None:
        try:
            result, cpu_ns, ran = await self._call(entry.inputs, entry.outputs, entry.pending.rows)
            arrays = rows_checked(result, entry.outputs, entry.pending.rows)
        except Exception as exc:  # the caller gets it
            _fail(entry, self._as_error(exc))
            return
        entry.cpu_ms = cpu_ns / 1e6
        if entry.marks is not None:
            _mark(entry, entry.marks, ran)
        _resolve(entry, {name: arrays[name] for name in entry.outputs})

    async def _call(
        self, inputs: dict[str, np.ndarray], outputs: Collection[str], rows: int
    ) -> tuple[Mapping[str, object], int, tuple[float, float]]:
        """Run the model once.

        Returns:
            Its result, the CPU time of the thread that ran it in ns, and when (monotonic
            seconds) the call started and finished.
        """
        clock = self._clock
        started = clock.monotonic()
        try:
            if self._executor is None:
                result, cpu_ns = _timed(self._run, inputs, outputs)
            else:
                loop = asyncio.get_running_loop()
                result, cpu_ns = await loop.run_in_executor(
                    self._executor, _timed, self._run, inputs, outputs
                )
        finally:
            finished = clock.monotonic()
            self._observe(finished - started, rows)
        if self._on_call is not None:
            self._on_call(rows)
        return result, cpu_ns, (started, finished)

    def _observe(self, seconds: float, rows: int) -> None:
        stats = self.stats
        stats.batches += 1
        stats.rows += rows
        if self._avg_rows == 0.0:
            self._avg_seconds, self._avg_rows = seconds, float(max(rows, 1))
        else:
            self._avg_seconds += _SMOOTHING * (seconds - self._avg_seconds)
            self._avg_rows += _SMOOTHING * (max(rows, 1) - self._avg_rows)

    def _retry_after(self, rows: int) -> float:
        """Estimate when enough queued rows will have run for ``rows`` more to fit."""
        settings = self._settings
        excess = self._queued_rows + rows - settings.max_queue_rows
        if self._avg_rows > 0.0:
            per_call_rows, per_call_seconds = self._avg_rows, self._avg_seconds
        else:  # no call measured yet: assume full batches that each wait the whole delay
            per_call_rows, per_call_seconds = settings.max_batch_rows, settings.max_delay / 1e6
        calls = math.ceil(excess / per_call_rows)
        return max(0.001, calls * per_call_seconds)

    def _as_error(self, exc: Exception) -> ModelportError:
        if isinstance(exc, ModelportError):
            return exc
        error = InferenceFailed(f"model {self._name!r} failed: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error


def _timed(
    run: ModelCall, inputs: dict[str, np.ndarray], outputs: Collection[str]
) -> tuple[dict[str, np.ndarray], int]:
    """``run(inputs, outputs)`` and the CPU time this thread spent in it, in nanoseconds."""
    started = thread_time_ns()
    result = run(inputs, outputs)
    return result, thread_time_ns() - started


def _mark(entry: _Entry, marks: RunMarks, ran: tuple[float, float]) -> None:
    """Copy a traced request's queue entry time and its model call's times into ``marks``."""
    marks.queued = entry.pending.enqueued_at
    marks.started, marks.finished = ran


def _resolve(entry: _Entry, arrays: dict[str, np.ndarray]) -> None:
    if not entry.future.done():  # the caller may have gone away meanwhile
        entry.future.set_result(arrays)


def _fail(entry: _Entry, error: BaseException) -> None:
    if not entry.future.done():
        entry.future.set_exception(error)
