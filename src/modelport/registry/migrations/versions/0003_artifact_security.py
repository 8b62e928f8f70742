"""Artifact security: each version's jurisdiction and the signer of its artifact manifest.

Adds three columns to ``model_versions``: ``jurisdiction`` (text, NOT NULL, default ``global``,
which every existing version gets), bound into the encryption of the version's artifacts, and
``signer`` and ``signer_key_id`` (NULL for versions registered before this migration: their
artifacts are neither encrypted nor signed, so loading them is refused until they are registered
again).

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("jurisdiction", "signer", "signer_key_id")


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN on both SQLite and PostgreSQL (a NOT NULL column with a
    # constant default is allowed by both); no table rebuild, so rows and foreign keys stay.
    op.add_column(
        "model_versions",
        sa.Column("jurisdiction", sa.Text, nullable=False, server_default="global"),
    )
    op.add_column("model_versions", sa.Column("signer", sa.Text, nullable=True))
    op.add_column("model_versions", sa.Column("signer_key_id", sa.Text, nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35 or newer), as in 0002.
    for name in reversed(_COLUMNS):
        op.drop_column("model_versions", name)
