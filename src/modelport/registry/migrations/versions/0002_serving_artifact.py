"""Serving artifacts: what a version serves instead of its registered artifact, and why.

Adds four nullable columns to ``model_versions``: ``serving_framework``,
``serving_artifact_digest`` and ``serving_artifact_size`` (all NULL: serve the registered artifact,
which is what every version registered before this migration does) and ``compile_report`` (JSON;
NULL for those versions too).

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "serving_framework",
    "serving_artifact_digest",
    "serving_artifact_size",
    "compile_report",
)


def upgrade() -> None:
    # Adding nullable columns is a plain ALTER TABLE on both SQLite and PostgreSQL; batch mode
    # (render_as_batch on SQLite) does not rebuild the table for it, so existing rows and the
    # aliases' foreign key to this table are untouched.
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("serving_framework", sa.Text, nullable=True))
        batch.add_column(sa.Column("serving_artifact_digest", sa.String(71), nullable=True))
        batch.add_column(sa.Column("serving_artifact_size", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("compile_report", sa.JSON, nullable=True))


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35 or newer): rebuilding the table in batch
    # mode would drop model_versions, which the aliases' foreign key forbids while rows exist.
    for name in reversed(_COLUMNS):
        op.drop_column("model_versions", name)
