"""Traffic windows (what gateways measured), alert states, baselines and the notification outbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create traffic_windows, alert_states, alert_baselines and alert_notifications."""
    op.create_table(
        "traffic_windows",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("variant", sa.String(63), nullable=False),
        sa.Column("writer", sa.String(200), nullable=False),
        sa.Column("bucket_start", _TS, nullable=False),
        sa.Column("bucket_end", _TS, nullable=False),
        sa.Column("seconds", sa.Double, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("edges", sa.JSON, nullable=False),
        sa.Column("buckets", sa.JSON, nullable=False),
        sa.Column("latency_seconds", sa.Double, nullable=False),
        sa.Column("queue_fill", sa.Double, nullable=True),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("not_ready", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_traffic_windows"),
        sa.UniqueConstraint(
            "deployment", "variant", "writer", "bucket_start", name="uq_traffic_windows_bucket"
        ),
        sa.CheckConstraint("seconds > 0", name="ck_traffic_windows_seconds"),
        sa.CheckConstraint("errors >= 0 AND errors <= requests", name="ck_traffic_windows_errors"),
        sa.CheckConstraint(
            "not_ready >= 0 AND not_ready <= samples", name="ck_traffic_windows_ready"
        ),
    )
    op.create_index(
        "ix_traffic_windows_deployment_end", "traffic_windows", ["deployment", "bucket_end"]
    )
    op.create_index("ix_traffic_windows_end", "traffic_windows", ["bucket_end"])
    op.create_table(
        "alert_states",
        sa.Column("rule", sa.String(63), nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("annotations", sa.JSON, nullable=False),
        sa.Column("receivers", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("active_since", _TS, nullable=True),
        sa.Column("fired_at", _TS, nullable=True),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.Column("notified_at", _TS, nullable=True),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("rule", "fingerprint", name="pk_alert_states"),
        sa.CheckConstraint(
            "state IN ('pending', 'firing', 'resolved')", name="ck_alert_states_state"
        ),
    )
    op.create_index("ix_alert_states_deployment", "alert_states", ["deployment"])
    op.create_table(
        "alert_baselines",
        sa.Column("rule", sa.String(63), nullable=False),
        sa.Column("signal", sa.String(32), nullable=False),
        sa.Column("mean", sa.Double, nullable=False),
        sa.Column("variance", sa.Double, nullable=False),
        sa.Column("observations", sa.Integer, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("rule", name="pk_alert_baselines"),
    )
    op.create_table(
        "alert_notifications",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(63), nullable=False),
        sa.Column("receiver", sa.Text, nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("delivered_at", _TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("given_up", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_notifications"),
        sa.CheckConstraint(
            "format IN ('alertmanager', 'slack')", name="ck_alert_notifications_format"
        ),
    )
    op.create_index(
        "ix_alert_notifications_due", "alert_notifications", ["delivered_at", "next_attempt_at"]
    )
    op.create_index("ix_alert_notifications_rule", "alert_notifications", ["rule"])


def downgrade() -> None:
    """Drop the four tables."""
    op.drop_index("ix_alert_notifications_rule", table_name="alert_notifications")
    op.drop_index("ix_alert_notifications_due", table_name="alert_notifications")
    op.drop_table("alert_notifications")
    op.drop_table("alert_baselines")
    op.drop_index("ix_alert_states_deployment", table_name="alert_states")
    op.drop_table("alert_states")
    op.drop_index("ix_traffic_windows_end", table_name="traffic_windows")
    op.drop_index("ix_traffic_windows_deployment_end", table_name="traffic_windows")
    op.drop_table("traffic_windows")
