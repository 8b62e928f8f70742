"""Periodic background jobs: a name, an interval and a function, run off the event loop.

The control plane's housekeeping (the prediction log's retention today; experiment evaluation,
drift and alert evaluation later) is a list of :class:`Job`. A :class:`JobRunner` runs each in
a loop of its own on the event loop: the function runs in a worker thread (jobs read databases
and files), its one-line summary is logged, and the next run starts ``interval_s`` after this
one ended, so a job never overlaps itself. A job that raises is logged and runs again at its
next turn: no job's failure stops another or the process; one that raises :class:`JobSkipped`
(another process is doing its work) skips its turn quietly. The runner counts each job's runs,
failures and skipped turns (:meth:`JobRunner.stats`, which the metrics read).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import ModelportError

__all__ = ["Job", "JobRunner", "JobSkipped", "JobStats", "exclusive", "turn"]

log = logging.getLogger("modelport.jobs")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Job:
    """One periodic job.

    Args:
        name: Names the job in logs (``prune-predictions``).
        interval_s: Seconds from the end of one run to the start of the next.
        run: The work, called in a worker thread; returns a one-line summary to log (what it
            did), or ``None`` to log nothing.
        at_start: Run once when the runner starts, instead of one interval later.
    """

    name: str
    interval_s: float
    run: Callable[[], str | None]
    at_start: bool = True

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ValueError(f"job {self.name!r}: interval_s must be positive")


class JobSkipped(Exception):
    """Raised by a job's function to skip its turn: another process is doing the work."""


@dataclass(frozen=True, slots=True)
class JobStats:
    """What one job did since the runner started.

    Attributes:
        runs: Runs that did the job's work, failed ones included.
        failures: Of those, runs that raised.
        skipped: Turns skipped with :class:`JobSkipped`.
        last_success: When the latest successful run ended (seconds since the epoch);
            ``None``: none yet.
    """

    runs: int = 0
    failures: int = 0
    skipped: int = 0
    last_success: float | None = None


class JobRunner:
    """Runs :class:`Job` s periodically until stopped.

    Args:
        jobs: The jobs.
        sleep: Waits between runs (tests pass a fake; default :func:`asyncio.sleep`).
        clock: The time of :attr:`JobStats.last_success`.
    """

    def __init__(
        self, jobs: Sequence[Job], sleep: Sleep = asyncio.sleep, clock: Clock | None = None
    ) -> None:
        self.jobs = list(jobs)
        self._sleep = sleep
        self._clock: Clock = clock or SystemClock()
        self._tasks: list[asyncio.Task[None]] = []
        self._stats: dict[str, JobStats] = {job.name: JobStats() for job in self.jobs}

    def stats(self) -> dict[str, JobStats]:
        """Every job's counts, by name."""
        return dict(self._stats)

    async def start(self) -> None:
        """Start every job's loop (on the running event loop)."""
        for job in self.jobs:
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"job {job.name}"))
        if self.jobs:
            names = [job.name for job in self.jobs]
            log.info(
                "background jobs: %s",
                ", ".join(f"{j.name} every {j.interval_s:g} s" for j in self.jobs),
                extra={"fields": {"event": "jobs_started", "jobs": names}},
            )

    async def stop(self) -> None:
        """Stop every loop; a run in progress finishes in its thread, unobserved."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def run_once(self, job: Job) -> bool:
        """Run ``job`` now, in a worker thread; log its summary or its error; count it.

        Returns:
            Whether it succeeded (a skipped turn did not).
        """
        started = time.monotonic()
        try:
            summary = await asyncio.to_thread(job.run)
        except JobSkipped:
            self._count(job, skipped=1)
            return False
        except ModelportError as exc:
            self._count(job, runs=1, failures=1)
            log.error(
                "job %s failed: %s",
                job.name,
                exc.message,
                extra={"fields": {"event": "job_failed", "job": job.name, "error": exc.message}},
            )
            return False
        except Exception as exc:  # a bug in one job must not stop the others
            self._count(job, runs=1, failures=1)
            log.exception(
                "job %s failed",
                job.name,
                extra={"fields": {"event": "job_failed", "job": job.name, "error": repr(exc)}},
            )
            return False
        self._count(job, runs=1, succeeded=True)
        if summary is not None:
            duration_ms = round((time.monotonic() - started) * 1000, 1)
            log.info(
                "job %s: %s",
                job.name,
                summary,
                extra={
                    "fields": {
                        "event": "job_done",
                        "job": job.name,
                        "summary": summary,
                        "duration_ms": duration_ms,
                    }
                },
            )
        return True

    def _count(
        self,
        job: Job,
        *,
        runs: int = 0,
        failures: int = 0,
        skipped: int = 0,
        succeeded: bool = False,
    ) -> None:
        """Add to ``job``'s counts (on the event loop: one assignment a run)."""
        counts = self._stats.get(job.name, JobStats())
        self._stats[job.name] = replace(
            counts,
            runs=counts.runs + runs,
            failures=counts.failures + failures,
            skipped=counts.skipped + skipped,
            last_success=self._clock.now().timestamp() if succeeded else counts.last_success,
        )

    async def _loop(self, job: Job) -> None:
        if not job.at_start:
            await self._sleep(job.interval_s)
        while True:
            await self.run_once(job)
            await self._sleep(job.interval_s)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` if no other process does; yield whether it is held.

    A job that several processes run (every ``modelport up`` worker) does its work only while
    it holds the lock, and skips its turn otherwise. The lock ends with the process, so a
    killed holder never blocks the others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


TURN_SHARE = 0.9
"""A job several processes run is skipped when another did it less than this share of its
interval ago (their timers are not in step: a smaller share lets two runs share an interval)."""


@contextlib.contextmanager
def turn(path: Path, interval_s: float, now: Callable[[], float] = time.time) -> Iterator[None]:
    """Take this interval's turn of a job that several processes run; skip it if it is taken.

    Under ``modelport up`` every worker runs the control plane's jobs on its own timer; with
    :func:`exclusive` alone, N workers would do an interval's work N times. The lock file also
    holds when the job last succeeded, so the work is done about once per interval whoever
    does it, and goes on when a worker dies.

    Raises:
        JobSkipped: Another process holds the lock, or did the work less than
            :data:`TURN_SHARE` of ``interval_s`` ago.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobSkipped("another process is doing it") from None
        try:
            file.seek(0)
            try:
                last = float(file.read().decode() or "nan")
            except ValueError:
                last = float("nan")  # an older lock file, or garbage: do the work
            ago = now() - last
            if 0 <= ago < interval_s * TURN_SHARE:
                raise JobSkipped(f"another process did it {ago:.1f} s ago")
            yield
            file.seek(0)
            file.truncate()
            file.write(repr(now()).encode())
            file.flush()
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)
