"""Drift windows (counts per version and time bucket) and the drift job's results.

Revision ID: 0001
Revises:
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create drift_windows and drift_results with their indexes."""
    op.create_table(
        "drift_windows",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("variant", sa.String(63), nullable=False),
        sa.Column("model", sa.String(63), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Double, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("writer", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_windows"),
        sa.CheckConstraint("seconds > 0", name="ck_drift_windows_seconds"),
        sa.CheckConstraint("rows >= 0", name="ck_drift_windows_rows"),
    )
    op.create_index("ix_drift_windows_deployment_start", "drift_windows", ["deployment", "start"])
    op.create_index("ix_drift_windows_start", "drift_windows", ["start"])
    op.create_table(
        "drift_results",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("variant", sa.String(63), nullable=False),
        sa.Column("model", sa.String(63), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("against", sa.String(16), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("baseline_rows", sa.BigInteger, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("drifted", sa.JSON, nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_results"),
        sa.CheckConstraint("against IN ('reference', 'previous')", name="ck_drift_results_against"),
    )
    op.create_index(
        "ix_drift_results_deployment_end", "drift_results", ["deployment", "window_end"]
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_drift_results_deployment_end", table_name="drift_results")
    op.drop_table("drift_results")
    op.drop_index("ix_drift_windows_start", table_name="drift_windows")
    op.drop_index("ix_drift_windows_deployment_start", table_name="drift_windows")
    op.drop_table("drift_windows")
