"""Audit outcome ``started``: a control action's entry is written before the action runs.

Replaces the check constraint on ``audit_log.outcome`` (``ok``, ``denied``, ``failed``) with one
that also allows ``started``. Existing entries are untouched (their hashes cover their content,
not the constraint).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ck_audit_log_outcome"


def upgrade() -> None:
    """Allow ``started`` besides ``ok``, ``denied`` and ``failed``."""
    # On SQLite, batch mode (render_as_batch) rebuilds the table with the new constraint and
    # copies the rows; on PostgreSQL it is a plain DROP/ADD CONSTRAINT.
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint(_NAME, type_="check")
        batch.create_check_constraint(_NAME, "outcome IN ('started', 'ok', 'denied', 'failed')")


def downgrade() -> None:
    """Drop the ``started`` entries and allow only the three older outcomes again."""
    op.execute("DELETE FROM audit_log WHERE outcome = 'started'")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint(_NAME, type_="check")
        batch.create_check_constraint(_NAME, "outcome IN ('ok', 'denied', 'failed')")
