"""The batching policy: a pure function of a queue snapshot, a clock reading and settings.

:func:`decide` does no I/O and keeps no state; :class:`~modelport.batching.batcher.Batcher` calls it
every time the queue changes or a wake-up time it asked for arrives, and carries out the
:class:`Decision`. All times are seconds on the same monotonic clock; ``max_delay`` in
:class:`~modelport.core.settings.BatchingSettings` is in microseconds.

Rules, applied in this order:

1. **Expired requests first.** Every request whose ``deadline`` is set and ``<= now`` is listed in
   :attr:`Decision.expired`. It is never part of the batch: the caller fails it with
   :class:`~modelport.core.errors.DeadlineExceeded` without running it.
2. **The head defines the batch.** The head is the oldest live (not expired) request. Only requests
   with the head's :attr:`Pending.key` (input names, dtypes and non-batch dimensions) can join it;
   requests with another key keep their place and wait for a later batch.
3. **An oversize head runs alone, at once.** A head with more rows than ``max_batch_rows`` cannot
   share a batch and waiting cannot help it, so the batch is the head alone.
4. **Accumulate in queue order, never past the limit.** Starting from the head, each later live
   request with the head's key joins while the total stays ``<= max_batch_rows``. A request that
   would overflow is skipped (it waits for the next batch), and the scan goes on, so a smaller
   request further back may still fill the gap. The total never exceeds ``max_batch_rows``.
5. **Run now** when any of these holds:

   * ``preferred_batch_rows`` is set and the total reached it;
   * the batch is full: the total equals ``max_batch_rows``, or a same-key request had to be
     skipped because it would overflow (more work is already queued than fits, so waiting only
     delays it);
   * the head has waited ``max_delay``: ``now >= head.enqueued_at + max_delay / 1e6``.

6. **Otherwise wait.** Nothing runs now and :attr:`Decision.wake_at` is the earlier of the head's
   delay expiry and the earliest deadline among live requests (so an expiring request is failed
   on time, not when the batch happens to run). New arrivals also wake the caller early.

An empty queue (or one whose requests all expired) yields an empty batch and ``wake_at=None``:
sleep until something arrives.

One decision is a single pass over the queue (O(len(queue))): every queued request is checked
for expiry each time, so a deep queue (up to ``max_queue_rows`` requests) costs more per decision.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from modelport.core.settings import BatchingSettings

__all__ = ["Decision", "Pending", "decide"]


@dataclass(frozen=True, slots=True)
class Pending:
    """One queued request as the policy sees it.

    Attributes:
        rows: Rows in the request (its first dimension); may be 0.
        enqueued_at: Monotonic seconds at which it was queued.
        deadline: Monotonic seconds after which it must not start running; ``None`` for none.
        key: Batch-compatibility key: requests batch together only when their keys are equal. It
            covers input names, dtypes and non-batch dimensions (not the requested outputs,
            which may differ within a batch).
    """

    rows: int
    enqueued_at: float
    deadline: float | None
    key: Hashable


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with the queue now.

    Attributes:
        expired: Queue indices to fail with ``DeadlineExceeded`` (never run), ascending.
        batch: Queue indices to run now as one batch, in queue order; ``()`` runs nothing now.
        wake_at: Monotonic seconds at which to decide again if nothing arrives first; ``None``
            when there is nothing to wait for (the batch runs now, or no live request is queued).
    """

    expired: tuple[int, ...]
    batch: tuple[int, ...]
    wake_at: float | None


def decide(queue: Sequence[Pending], now: float, settings: BatchingSettings) -> Decision:
    """Decide which requests expire, which run now as one batch, and when to look again.

    The rules are listed in the module docstring.

    Args:
        queue: The queued requests, oldest first.
        now: The current monotonic time in seconds, on the clock of ``enqueued_at`` and
            ``deadline``.
        settings: The model's batching settings (``enabled`` is not consulted: whoever builds a
            batcher has already decided to batch).

    Returns:
        The decision; its indices refer to positions in ``queue``.
    """
    limit = settings.max_batch_rows
    expired: list[int] = []
    batch: list[int] = []
    head: Pending | None = None
    key: Hashable = None
    total = 0
    alone = False  # the head is oversize: nothing joins it
    overflowed = False  # a same-key request did not fit: the batch is full
    earliest_deadline: float | None = None
    # One pass: expired requests, the head, the batch and the earliest live deadline.
    for index, item in enumerate(queue):
        deadline = item.deadline
        if deadline is not None:
            if deadline <= now:
                expired.append(index)
                continue
            if earliest_deadline is None or deadline < earliest_deadline:
                earliest_deadline = deadline
        if head is None:
            head, key, total, alone = item, item.key, item.rows, item.rows > limit
            batch.append(index)
        elif alone or item.key != key:
            continue
        elif total + item.rows > limit:
            overflowed = True
        else:
            batch.append(index)
            total += item.rows

    if head is None:
        return Decision(expired=tuple(expired), batch=(), wake_at=None)

    preferred = settings.preferred_batch_rows
    delay_end = head.enqueued_at + settings.max_delay / 1e6
    if (
        alone
        or total == limit
        or overflowed
        or (preferred is not None and total >= preferred)
        or now >= delay_end
    ):
        return Decision(expired=tuple(expired), batch=tuple(batch), wake_at=None)

    wake_at = delay_end if earliest_deadline is None else min(delay_end, earliest_deadline)
    return Decision(expired=tuple(expired), batch=(), wake_at=wake_at)
