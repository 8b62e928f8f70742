"""The alert job's state in the metadata database: signals, alerts, baselines and the outbox.

- Signals: every gateway process writes what it measured (:meth:`AlertStateStore.add_signals`,
  the ``traffic_windows`` table); the alert job reads a deployment's rows that end in a window
  (:meth:`AlertStateStore.signals`), every writer's at once, so workers and replicas add up.
- The drift job's verdicts against the reference (:meth:`AlertStateStore.latest_drift`), for
  ``driftScore`` rules.
- Alerts (``alert_states``), trafficAnomaly baselines (``alert_baselines``) and the notification
  outbox (``alert_notifications``): one evaluation's changes are written in one transaction
  (:meth:`AlertStateStore.save`), so a notification is stored exactly when the state that
  called for it is, and a process that stops loses nothing: the next one delivers what is left.
- The outbox's delivery bookkeeping (:meth:`AlertStateStore.due`,
  :meth:`AlertStateStore.attempted`) and retention (:meth:`AlertStateStore.prune`).

The records are in :mod:`modelport.monitoring.alert_records`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from modelport import db
from modelport.monitoring._state_schema import (
    MIGRATIONS,
    alert_baselines,
    alert_notifications,
    alert_states,
    drift_results,
    traffic_windows,
)
from modelport.monitoring.alert_records import (
    DriftVerdict,
    Evaluation,
    Notification,
    StoredAlert,
    StoredBaseline,
    alert_of,
    baseline_of,
    notification_of,
    verdict_of,
)
from modelport.monitoring.alerting import Baseline
from modelport.monitoring.signals import SignalRow

__all__ = ["AlertStateStore"]

_WINDOW_MATCH_S = 1.0
"""A verdict's window matches a rule's when their lengths differ by at most this."""


class AlertStateStore(db.MigratedDatabase):
    """The signals, alert states, baselines and outbox, migrated (monitoring state) on open.

    Args:
        url: SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DB``.

    Raises:
        ConfigError: The URL is unsupported or the database cannot be reached.
        DependencyMissing: The PostgreSQL driver is not installed.
    """

    def __init__(self, url: str) -> None:
        super().__init__(url, MIGRATIONS)

    # -- signals -------------------------------------------------------------------------------

    def add_signals(self, rows: Sequence[SignalRow], writer: str) -> None:
        """Store what ``writer`` measured, in one transaction.

        A row already stored (same deployment, variant, writer and bucket start: a write that
        succeeded but whose answer was lost, then retried) is skipped.
        """
        if not rows:
            return
        values = [
            {
                "deployment": r.deployment,
                "variant": r.variant,
                "writer": writer,
                "bucket_start": r.start,
                "bucket_end": r.end,
                "seconds": r.seconds,
                "requests": r.requests,
                "errors": r.errors,
                "edges": list(r.edges),
                "buckets": list(r.buckets),
                "latency_seconds": r.latency_seconds,
                "queue_fill": r.queue_fill,
                "samples": r.samples,
                "not_ready": r.not_ready,
            }
            for r in rows
        ]
        with db.write(self._engine) as conn:
            dialect = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            conn.execute(dialect(traffic_windows).on_conflict_do_nothing(), values)

    def signals(self, deployment: str, since: datetime, until: datetime) -> list[SignalRow]:
        """The rows of ``deployment`` ending in ``(since, until]``, every writer's, oldest first."""
        t = traffic_windows
        query = (
            select(t)
            .where(t.c.deployment == deployment, t.c.bucket_end > since, t.c.bucket_end <= until)
            .order_by(t.c.bucket_end, t.c.id)
        )
        with db.read(self._engine) as conn:
            return [_signal(row) for row in conn.execute(query)]

    def latest_drift(self, deployment: str, window_s: float, since: datetime) -> list[DriftVerdict]:
        """Each variant's newest verdict against its reference on a window of ``window_s``.

        Args:
            deployment: The deployment.
            window_s: The window's length (the drift job scores several lengths).
            since: Verdicts on windows that ended before are stale and ignored.
        """
        t = drift_results
        query = (
            select(t)
            .where(t.c.deployment == deployment, t.c.against == "reference")
            .where(t.c.window_end >= since)
            .order_by(t.c.window_end.desc(), t.c.evaluated_at.desc(), t.c.id.desc())
        )
        newest: dict[str, DriftVerdict] = {}
        with db.read(self._engine) as conn:
            for row in conn.execute(query):
                seconds = (row.window_end - row.window_start).total_seconds()
                if abs(seconds - window_s) <= _WINDOW_MATCH_S and row.variant not in newest:
                    newest[row.variant] = verdict_of(row)
        return [newest[variant] for variant in sorted(newest)]

    # -- alerts and baselines ------------------------------------------------------------------

    def alerts(self, deployment: str | None = None, rule: str | None = None) -> list[StoredAlert]:
        """The stored alerts (pending, firing, resolved), by rule and fingerprint."""
        t = alert_states
        query = select(t).order_by(t.c.rule, t.c.fingerprint)
        if deployment is not None:
            query = query.where(t.c.deployment == deployment)
        if rule is not None:
            query = query.where(t.c.rule == rule)
        with db.read(self._engine) as conn:
            return [alert_of(row) for row in conn.execute(query)]

    def baselines(self) -> dict[str, StoredBaseline]:
        """Every trafficAnomaly rule's baseline, by rule."""
        with db.read(self._engine) as conn:
            return {row.rule: baseline_of(row) for row in conn.execute(select(alert_baselines))}

    def save(self, evaluation: Evaluation) -> None:
        """Write one evaluation's alerts, removals, baselines and notifications together."""
        with db.write(self._engine) as conn:
            for rule, fingerprint in evaluation.removed:
                conn.execute(
                    delete(alert_states).where(
                        alert_states.c.rule == rule, alert_states.c.fingerprint == fingerprint
                    )
                )
            for alert in evaluation.alerts:
                _upsert_alert(conn, alert)
            for rule in evaluation.baselines_removed:
                conn.execute(delete(alert_baselines).where(alert_baselines.c.rule == rule))
            for stored in evaluation.baselines:
                _upsert_baseline(conn, stored)
            if evaluation.notifications:
                conn.execute(
                    insert(alert_notifications),
                    [
                        {
                            "rule": n.rule,
                            "receiver": n.receiver,
                            "format": n.format,
                            "payload": n.payload,
                            "created_at": evaluation.at,
                            "attempts": 0,
                            "next_attempt_at": evaluation.at,
                            "delivered_at": None,
                            "last_error": None,
                            "given_up": False,
                        }
                        for n in evaluation.notifications
                    ],
                )

    # -- the outbox ----------------------------------------------------------------------------

    def due(self, now: datetime, limit: int = 500) -> list[Notification]:
        """Undelivered entries whose next attempt is due, oldest first."""
        t = alert_notifications
        query = (
            select(t)
            .where(t.c.delivered_at.is_(None), t.c.given_up.is_(False))
            .where(t.c.next_attempt_at <= now)
            .order_by(t.c.id)
            .limit(limit)
        )
        with db.read(self._engine) as conn:
            return [notification_of(row) for row in conn.execute(query)]

    def notifications(self, rule: str | None = None) -> list[Notification]:
        """Every outbox entry (or one rule's), oldest first."""
        t = alert_notifications
        query = select(t).order_by(t.c.id)
        if rule is not None:
            query = query.where(t.c.rule == rule)
        with db.read(self._engine) as conn:
            return [notification_of(row) for row in conn.execute(query)]

    def pending_notifications(self) -> dict[str, int]:
        """Entries neither delivered nor given up, by rule."""
        t = alert_notifications
        query = (
            select(t.c.rule, func.count())
            .where(t.c.delivered_at.is_(None), t.c.given_up.is_(False))
            .group_by(t.c.rule)
        )
        with db.read(self._engine) as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}

    def attempted(
        self,
        entry: int,
        attempts: int,
        *,
        delivered_at: datetime | None = None,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
        given_up: bool = False,
    ) -> None:
        """Record an attempt: delivered, to be retried at ``next_attempt_at``, or given up."""
        values: dict[str, Any] = {"attempts": attempts, "last_error": error, "given_up": given_up}
        if delivered_at is not None:
            values["delivered_at"] = delivered_at
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        with db.write(self._engine) as conn:
            conn.execute(
                update(alert_notifications)
                .where(alert_notifications.c.id == entry)
                .values(**values)
            )

    # -- retention -----------------------------------------------------------------------------

    def prune(
        self, signals_before: datetime, done_before: datetime, resolved_before: datetime
    ) -> tuple[int, int, int]:
        """Delete old signals, finished outbox entries and old resolved alerts.

        Args:
            signals_before: Signal rows that end before this go.
            done_before: Delivered entries delivered before this, and given-up entries created
                before it, go.
            resolved_before: Resolved alerts resolved before this go.

        Returns:
            The signal rows, outbox entries and alerts deleted.
        """
        n = alert_notifications
        with db.write(self._engine) as conn:
            signals = conn.execute(
                delete(traffic_windows).where(traffic_windows.c.bucket_end < signals_before)
            ).rowcount
            delivered = conn.execute(
                delete(n).where(n.c.delivered_at.is_not(None), n.c.delivered_at < done_before)
            ).rowcount
            given_up = conn.execute(
                delete(n).where(n.c.given_up.is_(True), n.c.created_at < done_before)
            ).rowcount
            resolved = conn.execute(
                delete(alert_states).where(
                    alert_states.c.state == "resolved", alert_states.c.resolved_at < resolved_before
                )
            ).rowcount
        return signals, delivered + given_up, resolved


def _upsert_alert(conn: Connection, alert: StoredAlert) -> None:
    values = {
        "deployment": alert.deployment,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "receivers": [{"url": url, "format": form} for url, form in alert.receivers],
        "state": alert.state,
        "active_since": alert.active_since,
        "fired_at": alert.fired_at,
        "resolved_at": alert.resolved_at,
        "notified_at": alert.notified_at,
        "value": alert.value,
        "updated_at": alert.updated_at,
    }
    t = alert_states
    done = conn.execute(
        update(t).where(t.c.rule == alert.rule, t.c.fingerprint == alert.fingerprint).values(values)
    )
    if done.rowcount == 0:
        conn.execute(insert(t).values(rule=alert.rule, fingerprint=alert.fingerprint, **values))


def _upsert_baseline(conn: Connection, stored: StoredBaseline) -> None:
    b: Baseline = stored.baseline
    values = {
        "signal": stored.signal,
        "mean": b.mean,
        "variance": b.variance,
        "observations": b.observations,
        "updated_at": stored.updated_at,
    }
    t = alert_baselines
    done = conn.execute(update(t).where(t.c.rule == stored.rule).values(values))
    if done.rowcount == 0:
        conn.execute(insert(t).values(rule=stored.rule, **values))


def _signal(row: Any) -> SignalRow:
    return SignalRow(
        row.deployment, row.variant, row.bucket_start, row.seconds,
        requests=row.requests, errors=row.errors, edges=tuple(row.edges),
        buckets=tuple(row.buckets), latency_seconds=row.latency_seconds,
        queue_fill=row.queue_fill, samples=row.samples, not_ready=row.not_ready,
    )  # fmt: skip
