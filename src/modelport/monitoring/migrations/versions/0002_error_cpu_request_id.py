"""Prediction log schema version 2: the error kind and CPU time of a record, a request-id index.

Both columns are nullable and have no default, so adding them to a filled table rewrites
nothing. The index on ``(deployment, request_id)`` serves ``find_request_ids`` (feedback is
matched to logged predictions by request id); building it on a large table holds the log's
writes until it is done (they wait in the log's queue, bounded by ``max_queue``).

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


def upgrade() -> None:
    """Add the error and cpu_ms columns and the (deployment, request_id) index."""
    op.add_column("prediction_log", sa.Column("error", sa.Text, nullable=True))
    op.add_column("prediction_log", sa.Column("cpu_ms", sa.Double, nullable=True))
    op.create_index(
        "ix_prediction_log_deployment_request_id", "prediction_log", ["deployment", "request_id"]
    )


def downgrade() -> None:
    """Drop the index and the two columns."""
    op.drop_index("ix_prediction_log_deployment_request_id", table_name="prediction_log")
    op.drop_column("prediction_log", "cpu_ms")
    op.drop_column("prediction_log", "error")
