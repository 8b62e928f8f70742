"""Alert rules: one row per rule, its validated document, its deployment and its generation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the alert_rules table and its index by deployment."""
    op.create_table(
        "alert_rules",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_alert_rules"),
        sa.CheckConstraint("generation >= 1", name="ck_alert_rules_generation"),
    )
    op.create_index("ix_alert_rules_deployment", "alert_rules", ["deployment"])


def downgrade() -> None:
    """Drop the alert_rules table."""
    op.drop_index("ix_alert_rules_deployment", table_name="alert_rules")
    op.drop_table("alert_rules")
