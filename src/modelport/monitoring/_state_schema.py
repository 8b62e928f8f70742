"""The monitoring state in the metadata database, as SQLAlchemy Core objects, for queries.

Drift windows (what gateways counted, per version and time bucket) and the drift job's results;
alert rules, alert states and pending notifications. The prediction log's own PostgreSQL table
is another schema (``_schema.py``): it may live in another database.

The migrations in ``state_migrations/versions`` create these tables; they do not import this
module, so that an old migration keeps meaning what it meant when it was written. A contract
test compares the migrated database with these definitions, so the two cannot drift apart
unnoticed.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from modelport.db import Migrations, UTCDateTime

__all__ = [
    "MIGRATIONS",
    "alert_baselines",
    "alert_notifications",
    "alert_rules",
    "alert_states",
    "drift_results",
    "drift_windows",
    "metadata",
    "traffic_windows",
]

MIGRATIONS = Migrations(
    name="monitoring state",
    script_dir=Path(__file__).resolve().parent / "state_migrations",
    version_table="monitoring_state_alembic_version",
    head="0003",
)
"""The monitoring state's Alembic scripts, shipped inside the package."""

metadata = MetaData()

drift_windows = Table(
    "drift_windows",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column("deployment", String(63), nullable=False),
    Column("variant", String(63), nullable=False),
    Column("model", String(63), nullable=False),
    Column("version", String(32), nullable=False),
    Column("start", UTCDateTime, nullable=False),
    Column("seconds", Double, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("writer", Text, nullable=False),
    PrimaryKeyConstraint("id", name="pk_drift_windows"),
    CheckConstraint("seconds > 0", name="ck_drift_windows_seconds"),
    CheckConstraint("rows >= 0", name="ck_drift_windows_rows"),
    Index("ix_drift_windows_deployment_start", "deployment", "start"),
    Index("ix_drift_windows_start", "start"),
)
"""What one writer (a gateway process) counted of one served version in one time bucket:
``counts`` is the :class:`~modelport.drift.WindowCounts` JSON form. Several rows may hold the
same bucket (several workers and replicas, or records that arrived after the bucket was
written): a window's counts are the sum of the rows whose bucket starts in it."""

drift_results = Table(
    "drift_results",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column("deployment", String(63), nullable=False),
    Column("variant", String(63), nullable=False),
    Column("model", String(63), nullable=False),
    Column("version", String(32), nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    Column("against", String(16), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("baseline_rows", BigInteger, nullable=False),
    Column("report", JSON, nullable=False),
    Column("drifted", JSON, nullable=False),
    Column("evaluated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("id", name="pk_drift_results"),
    CheckConstraint("against IN ('reference', 'previous')", name="ck_drift_results_against"),
    Index("ix_drift_results_deployment_end", "deployment", "window_end"),
)
"""One verdict of the drift job: a version's window ``[window_start, window_end)`` against its
reference profile or the window before it; ``report`` is the
:class:`~modelport.drift.DriftReport`'s plain form and ``drifted`` the names that drifted."""

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("name", String(63), nullable=False),
    Column("deployment", String(63), nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("document", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", Text, nullable=False),
    PrimaryKeyConstraint("name", name="pk_alert_rules"),
    CheckConstraint("generation >= 1", name="ck_alert_rules_generation"),
    Index("ix_alert_rules_deployment", "deployment"),
)
"""One row per AlertRule: its validated document (camelCase, defaults filled in), the deployment
it watches (for listing by deployment), a SHA-256 of the document's canonical JSON (an apply
that changes nothing is recognised by it), and a generation that grows by one with every change
(what the alert job polls)."""

traffic_windows = Table(
    "traffic_windows",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column("deployment", String(63), nullable=False),
    Column("variant", String(63), nullable=False),
    Column("writer", String(200), nullable=False),
    Column("bucket_start", UTCDateTime, nullable=False),
    Column("bucket_end", UTCDateTime, nullable=False),
    Column("seconds", Double, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("edges", JSON, nullable=False),
    Column("buckets", JSON, nullable=False),
    Column("latency_seconds", Double, nullable=False),
    Column("queue_fill", Double, nullable=True),
    Column("samples", Integer, nullable=False),
    Column("not_ready", Integer, nullable=False),
    PrimaryKeyConstraint("id", name="pk_traffic_windows"),
    UniqueConstraint(
        "deployment", "variant", "writer", "bucket_start", name="uq_traffic_windows_bucket"
    ),
    CheckConstraint("seconds > 0", name="ck_traffic_windows_seconds"),
    CheckConstraint("errors >= 0 AND errors <= requests", name="ck_traffic_windows_errors"),
    CheckConstraint("not_ready >= 0 AND not_ready <= samples", name="ck_traffic_windows_ready"),
    Index("ix_traffic_windows_deployment_end", "deployment", "bucket_end"),
    Index("ix_traffic_windows_end", "bucket_end"),
)
"""What one gateway process (``writer``) measured of one variant in one bucket
``[bucket_start, bucket_end)``: requests, server errors, the latency histogram's ``edges`` and
per-bucket counts (``buckets``, one more than the edges), the sum of the durations, the peak
batch-queue share (in-process versions only) and readiness samples
(:class:`~modelport.monitoring.signals.SignalRow`). A window's signals are the sum of every
writer's rows that end in it."""

alert_states = Table(
    "alert_states",
    metadata,
    Column("rule", String(63), nullable=False),
    Column("fingerprint", String(16), nullable=False),
    Column("deployment", String(63), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("receivers", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("active_since", UTCDateTime, nullable=True),
    Column("fired_at", UTCDateTime, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("notified_at", UTCDateTime, nullable=True),
    Column("value", Double, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("rule", "fingerprint", name="pk_alert_states"),
    CheckConstraint("state IN ('pending', 'firing', 'resolved')", name="ck_alert_states_state"),
    Index("ix_alert_states_deployment", "deployment"),
)
"""One alert of a rule (its label set's fingerprint) that is pending, firing or resolved; an
alert that stops holding before it fired has no row. ``notified_at`` is when it was last put in
a notification (firing alerts are sent again after the repeat interval); ``receivers`` are the
rule's when it last changed (``[{"url", "format"}]``), so that a rule deleted while its alert
fires can still tell them it resolved."""

alert_baselines = Table(
    "alert_baselines",
    metadata,
    Column("rule", String(63), nullable=False),
    Column("signal", String(32), nullable=False),
    Column("mean", Double, nullable=False),
    Column("variance", Double, nullable=False),
    Column("observations", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("rule", name="pk_alert_baselines"),
)
"""A trafficAnomaly rule's exponentially weighted baseline of its signal
(:class:`~modelport.monitoring.alerting.Baseline`), and when it was last updated."""

alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column("rule", String(63), nullable=False),
    Column("receiver", Text, nullable=False),
    Column("format", String(16), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("given_up", Boolean, nullable=False),
    PrimaryKeyConstraint("id", name="pk_alert_notifications"),
    CheckConstraint("format IN ('alertmanager', 'slack')", name="ck_alert_notifications_format"),
    Index("ix_alert_notifications_due", "delivered_at", "next_attempt_at"),
    Index("ix_alert_notifications_rule", "rule"),
)
"""The outbox: one webhook POST per row, written in the same transaction as the alert states
that called for it, delivered (and retried) by the control plane's delivery job; a row is
done when ``delivered_at`` is set or ``given_up`` is true."""
