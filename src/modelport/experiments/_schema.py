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
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from modelport.db import Migrations, UTCDateTime

__all__ = ["MIGRATIONS", "deployments", "metadata"]

MIGRATIONS = Migrations(
    name="experiments",
    script_dir=Path(__file__).resolve().parent / "migrations",
    version_table="experiments_alembic_version",
    head="0001",
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
