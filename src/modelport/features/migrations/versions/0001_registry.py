"""The feature registry: entities, feature views and services as documents; materialisation.

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

_TS = sa.DateTime(timezone=True)
_DOCUMENT_TABLES = ("feature_entities", "feature_views", "feature_services")


def upgrade() -> None:
    """Create one document table per definition kind, and the materialisation state."""
    for table in _DOCUMENT_TABLES:
        op.create_table(
            table,
            sa.Column("name", sa.String(63), nullable=False),
            sa.Column("generation", sa.BigInteger, nullable=False),
            sa.Column("document", sa.JSON, nullable=False),
            sa.Column("digest", sa.String(64), nullable=False),
            sa.Column("created_at", _TS, nullable=False),
            sa.Column("created_by", sa.Text, nullable=False),
            sa.Column("updated_at", _TS, nullable=False),
            sa.Column("updated_by", sa.Text, nullable=False),
            sa.PrimaryKeyConstraint("name", name=f"pk_{table}"),
            sa.CheckConstraint("generation >= 1", name=f"ck_{table}_generation"),
        )
    op.create_table(
        "feature_materializations",
        sa.Column("view", sa.String(63), nullable=False),
        sa.Column("materialized_until", _TS, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("view", name="pk_feature_materializations"),
    )


def downgrade() -> None:
    """Drop the registry's tables."""
    op.drop_table("feature_materializations")
    for table in reversed(_DOCUMENT_TABLES):
        op.drop_table(table)
