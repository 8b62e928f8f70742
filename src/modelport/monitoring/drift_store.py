"""Drift windows and the drift job's verdicts, kept in the metadata database.

Gateways write what their :class:`~modelport.monitoring.drift_counter.DriftCounter` counted
(:meth:`DriftStore.add_windows`, one row per served version and time bucket); the drift job
reads a window back as the sum of its buckets (:meth:`DriftStore.window_counts`), from every
writer at once, so workers and replicas need no coordination. The job stores its verdicts
(:meth:`DriftStore.add_results`), which the drift report, the metrics and the alert rules read
(:meth:`DriftStore.latest_results`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select

from modelport import db
from modelport.drift import DriftReport, WindowCounts
from modelport.monitoring._state_schema import MIGRATIONS, drift_results, drift_windows
from modelport.monitoring.drift_counter import WindowSlice

__all__ = ["DriftResult", "DriftStore", "WindowTotal"]

Against = Literal["reference", "previous"]


@dataclass(frozen=True, slots=True)
class WindowTotal:
    """A served version's counts over a window: the sum of its buckets.

    Attributes:
        variant: The deployment's variant that answered.
        model: The registered model.
        version: Its version.
        counts: The counts, all made with one profile (``counts.profile_key``).
    """

    variant: str
    model: str
    version: str
    counts: WindowCounts


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One verdict of the drift job on one version's window.

    Attributes:
        deployment: The deployment whose traffic it is.
        variant: The variant that answered.
        model: The registered model.
        version: Its version.
        window_start: The window's start (UTC).
        window_end: Its end (excluded).
        against: ``reference`` (the version's reference profile) or ``previous`` (the window of
            the same length before it).
        rows: The window's rows.
        baseline_rows: The rows of what it was compared with.
        report: The verdicts per feature: :meth:`~modelport.drift.DriftReport.to_dict`, with
            ``None`` for a score that is not a number (a feature without values).
        evaluated_at: When the job made it.
    """

    deployment: str
    variant: str
    model: str
    version: str
    window_start: datetime
    window_end: datetime
    against: Against
    rows: int
    baseline_rows: int
    report: dict[str, Any]
    evaluated_at: datetime

    @classmethod
    def of(
        cls,
        deployment: str,
        total: WindowTotal,
        window: tuple[datetime, datetime],
        against: Against,
        report: DriftReport,
        evaluated_at: datetime,
    ) -> DriftResult:
        """A verdict made by :func:`~modelport.drift.detect` on ``total``."""
        return cls(
            deployment, total.variant, total.model, total.version, window[0], window[1],
            against, report.rows, report.reference_rows, _finite(report.to_dict()), evaluated_at,
        )  # fmt: skip

    @property
    def drifted(self) -> list[str]:
        """The features that drifted."""
        return [f["name"] for f in self.report["features"] if f["drifted"]]

    @property
    def seconds(self) -> float:
        """The window's length."""
        return (self.window_end - self.window_start).total_seconds()


class DriftStore(db.MigratedDatabase):
    """The drift tables, migrated to the newest schema on open.

    Args:
        url: SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DB``.

    Raises:
        ConfigError: The URL is unsupported or the database cannot be reached.
        DependencyMissing: The PostgreSQL driver is not installed.
    """

    def __init__(self, url: str) -> None:
        super().__init__(url, MIGRATIONS)

    def add_windows(self, slices: Sequence[WindowSlice], writer: str) -> None:
        """Store counted buckets, all in one transaction.

        Args:
            slices: What a counter took.
            writer: Who counted them (host and process), for diagnosis.
        """
        if not slices:
            return
        rows = [
            {
                "deployment": s.deployment,
                "variant": s.variant,
                "model": s.model,
                "version": s.version,
                "start": s.start,
                "seconds": s.seconds,
                "rows": s.counts.rows,
                "counts": s.counts.to_dict(),
                "writer": writer,
            }
            for s in slices
        ]
        with db.write(self._engine) as conn:
            conn.execute(insert(drift_windows), rows)

    def window_counts(self, deployment: str, since: datetime, until: datetime) -> list[WindowTotal]:
        """Each served version's counts over the buckets that start in ``[since, until)``.

        Counts made with different profiles of one version (its profile was replaced) are
        kept apart: one :class:`WindowTotal` per profile, ordered by variant, model, version.
        """
        query = (
            select(
                drift_windows.c.variant,
                drift_windows.c.model,
                drift_windows.c.version,
                drift_windows.c.counts,
            )  # fmt: skip
            .where(drift_windows.c.deployment == deployment)
            .where(drift_windows.c.start >= since, drift_windows.c.start < until)
        )
        totals: dict[tuple[str, str, str, str], WindowCounts] = {}
        with db.read(self._engine) as conn:
            for variant, model, version, stored in conn.execute(query):
                counts = WindowCounts.from_dict(stored)
                key = (variant, model, version, counts.profile_key)
                held = totals.get(key)
                totals[key] = counts if held is None else held + counts
        return [
            WindowTotal(variant, model, version, counts)
            for (variant, model, version, _), counts in sorted(totals.items())
        ]

    def deployments_with_windows(self, since: datetime) -> list[str]:
        """The deployments with buckets starting at or after ``since``."""
        query = (
            select(drift_windows.c.deployment)
            .where(drift_windows.c.start >= since)
            .group_by(drift_windows.c.deployment)
            .order_by(drift_windows.c.deployment)
        )
        with db.read(self._engine) as conn:
            return list(conn.execute(query).scalars())

    def add_results(self, results: Iterable[DriftResult]) -> None:
        """Store the drift job's verdicts, all in one transaction."""
        rows = [
            {
                "deployment": r.deployment,
                "variant": r.variant,
                "model": r.model,
                "version": r.version,
                "window_start": r.window_start,
                "window_end": r.window_end,
                "against": r.against,
                "rows": r.rows,
                "baseline_rows": r.baseline_rows,
                "report": r.report,
                "drifted": r.drifted,
                "evaluated_at": r.evaluated_at,
            }
            for r in results
        ]
        if rows:
            with db.write(self._engine) as conn:
                conn.execute(insert(drift_results), rows)

    def latest_results(
        self, deployment: str | None = None, against: Against | None = None
    ) -> list[DriftResult]:
        """The verdicts of each deployment's latest evaluation.

        The drift job stores one evaluation's verdicts with the same ``evaluated_at``; a version
        it did not judge in its latest run (too few rows) has no current verdict.

        Args:
            deployment: Only this deployment's.
            against: Only verdicts against this baseline.
        """
        t = drift_results
        newest = select(t.c.deployment, func.max(t.c.evaluated_at).label("at")).group_by(
            t.c.deployment
        )
        if deployment is not None:
            newest = newest.where(t.c.deployment == deployment)
        latest = newest.subquery()
        query = select(t).join(
            latest, (t.c.deployment == latest.c.deployment) & (t.c.evaluated_at == latest.c.at)
        )
        if against is not None:
            query = query.where(t.c.against == against)
        query = query.order_by(t.c.deployment, t.c.variant, t.c.model, t.c.version, t.c.id)
        with db.read(self._engine) as conn:
            return [_result(row) for row in conn.execute(query)]

    def prune(self, before: datetime) -> tuple[int, int]:
        """Delete buckets that start, and verdicts on windows that end, before ``before``.

        Returns:
            The buckets and the verdicts deleted.
        """
        with db.write(self._engine) as conn:
            windows = conn.execute(delete(drift_windows).where(drift_windows.c.start < before))
            results = conn.execute(delete(drift_results).where(drift_results.c.window_end < before))
            return windows.rowcount, results.rowcount


def _result(row: Any) -> DriftResult:
    return DriftResult(
        row.deployment, row.variant, row.model, row.version,
        row.window_start.astimezone(UTC), row.window_end.astimezone(UTC), row.against,
        row.rows, row.baseline_rows, row.report, row.evaluated_at.astimezone(UTC),
    )  # fmt: skip


def _finite(value: Any) -> Any:
    """``value`` with every float that is not a number replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
