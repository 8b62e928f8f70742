"""The prediction log: one row per logged prediction, the Parquet segments' columns.

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
    """Create the prediction_log table and its indexes."""
    op.create_table(
        "prediction_log",
        sa.Column("schema_version", sa.SmallInteger, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deployment", sa.Text, nullable=False),
        sa.Column("variant", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("shadow", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Double, nullable=False),
        sa.Column("identity", sa.Text, nullable=True),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
    )
    op.create_index("ix_prediction_log_deployment_time", "prediction_log", ["deployment", "time"])
    op.create_index("ix_prediction_log_time", "prediction_log", ["time"], postgresql_using="brin")


def downgrade() -> None:
    """Drop the prediction_log table (its indexes go with it)."""
    op.drop_table("prediction_log")
