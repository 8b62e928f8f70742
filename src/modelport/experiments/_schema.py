"""The experiments package's tables as SQLAlchemy Core objects, for queries.

The migrations in ``migrations/versions`` create these tables; they do not import this module, so
that an old migration keeps meaning what it meant when it was written. A contract test compares
the migrated database with these definitions, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from modelport.db import Migrations, UTCDateTime

__all__ = ["MIGRATIONS", "decisions", "deployments", "experiments", "feedback", "metadata"]

MIGRATIONS = Migrations(
    name="experiments",
    script_dir=Path(__file__).resolve().parent / "migrations",
    version_table="experiments_alembic_version",
    head="0002",
)
"""The experiments package's Alembic scripts, shipped inside the package."""

metadata = MetaData()

deployments = Table(
    "deployments",
    metadata,
    Column("name", String(63), nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("document", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", Text, nullable=False),
    PrimaryKeyConstraint("name", name="pk_deployments"),
    CheckConstraint("generation >= 1", name="ck_deployments_generation"),
)
"""One row per deployment: its validated document (camelCase, defaults filled in), a SHA-256 of
the document's canonical JSON (an apply that changes nothing is recognised by it), and a
generation that grows by one with every change."""


experiments = Table(
    "experiments",
    metadata,
    Column("name", String(63), nullable=False),
    Column("deployment", String(63), nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("document", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("step", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("step_started_at", UTCDateTime, nullable=False),
    Column("srm_since", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("created_by", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", Text, nullable=False),
    PrimaryKeyConstraint("name", name="pk_experiments"),
    CheckConstraint("generation >= 1", name="ck_experiments_generation"),
    CheckConstraint("step >= 0", name="ck_experiments_step"),
    Index("ix_experiments_deployment", "deployment"),
)
"""One row per experiment: its validated document and where it stands: ``status`` (running,
paused, promoted, rolled_back, aborted, inconclusive), the canary ``step`` it is at and when that
step started (the sample-ratio test counts traffic since then), ``srm_since`` (when a
sample-ratio mismatch was acknowledged: the test counts from then), and when it ended."""

decisions = Table(
    "experiment_decisions",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column("experiment", String(63), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("decision", String(24), nullable=False),
    Column("reason", Text, nullable=False),
    Column("inputs", JSON, nullable=False),
    PrimaryKeyConstraint("id", name="pk_experiment_decisions"),
    ForeignKeyConstraint(
        ["experiment"],
        ["experiments.name"],
        name="fk_experiment_decisions_experiment",
        ondelete="CASCADE",
    ),
    Index("ix_experiment_decisions_experiment_at", "experiment", "at"),
)
"""Every evaluation's outcome, with the inputs it was taken from (counts, estimates, p-values,
thresholds) and its reason in words."""

feedback = Table(
    "feedback",
    metadata,
    Column("deployment", String(63), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("truth", Text, nullable=False),
    Column("value", Double, nullable=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("received_by", Text, nullable=False),
    PrimaryKeyConstraint("deployment", "request_id", name="pk_feedback"),
    CheckConstraint("kind IN ('label', 'value')", name="ck_feedback_kind"),
)
"""The true outcome of logged predictions, by deployment and request id: ``kind`` ``label``
(classification: ``truth`` is the label as JSON, a scalar or one per row) or ``value``
(regression: ``value`` is the number, ``truth`` its JSON). A later feedback for the same request
replaces the earlier one."""
