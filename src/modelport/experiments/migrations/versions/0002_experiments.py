"""Experiments, their decisions, and feedback on logged predictions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
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
    """Create the experiments, experiment_decisions and feedback tables."""
    op.create_table(
        "experiments",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("step_started_at", _TS, nullable=False),
        sa.Column("srm_since", _TS, nullable=True),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_experiments"),
        sa.CheckConstraint("generation >= 1", name="ck_experiments_generation"),
        sa.CheckConstraint("step >= 0", name="ck_experiments_step"),
    )
    op.create_index("ix_experiments_deployment", "experiments", ["deployment"])
    op.create_table(
        "experiment_decisions",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("experiment", sa.String(63), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("decision", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiment_decisions"),
        sa.ForeignKeyConstraint(
            ["experiment"],
            ["experiments.name"],
            name="fk_experiment_decisions_experiment",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_experiment_decisions_experiment_at", "experiment_decisions", ["experiment", "at"]
    )
    op.create_table(
        "feedback",
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("truth", sa.Text, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("received_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("deployment", "request_id", name="pk_feedback"),
        sa.CheckConstraint("kind IN ('label', 'value')", name="ck_feedback_kind"),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("feedback")
    op.drop_table("experiment_decisions")
    op.drop_index("ix_experiments_deployment", table_name="experiments")
    op.drop_table("experiments")
