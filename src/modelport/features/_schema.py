"""The feature registry's tables in the metadata database, as SQLAlchemy Core objects.

The migrations in ``migrations/versions`` create them; they do not import this module, so that
an old migration keeps meaning what it meant when it was written. A contract test compares the
migrated database with these definitions.
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

__all__ = [
    "MIGRATIONS",
    "feature_entities",
    "feature_materializations",
    "feature_services",
    "feature_views",
    "metadata",
]

MIGRATIONS = Migrations(
    name="feature registry",
    script_dir=Path(__file__).resolve().parent / "migrations",
    version_table="feature_registry_alembic_version",
    head="0001",
)
"""The feature registry's Alembic scripts, shipped inside the package."""

metadata = MetaData()


def _document_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("name", String(63), nullable=False),
        Column("generation", BigInteger, nullable=False),
        Column("document", JSON, nullable=False),
        Column("digest", String(64), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("created_by", Text, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("updated_by", Text, nullable=False),
        PrimaryKeyConstraint("name", name=f"pk_{name}"),
        CheckConstraint("generation >= 1", name=f"ck_{name}_generation"),
    )


feature_entities = _document_table("feature_entities")
feature_views = _document_table("feature_views")
feature_services = _document_table("feature_services")

feature_materializations = Table(
    "feature_materializations",
    metadata,
    Column("view", String(63), nullable=False),
    Column("materialized_until", UTCDateTime, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("view", name="pk_feature_materializations"),
)
