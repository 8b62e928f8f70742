"""The registry's tables as SQLAlchemy Core objects, for queries.

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
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from modelport.db import Migrations, UTCDateTime

__all__ = [
    "MIGRATIONS",
    "UTCDateTime",
    "alias_events",
    "aliases",
    "metadata",
    "model_versions",
    "models",
    "reference_profiles",
]

MIGRATIONS = Migrations(
    name="registry",
    script_dir=Path(__file__).resolve().parent / "migrations",
    version_table="registry_alembic_version",
    head="0004",
)
"""The registry's Alembic scripts, shipped inside the package."""


metadata = MetaData()

models = Table(
    "models",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column("name", String(63), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("id", name="pk_models"),
    UniqueConstraint("name", name="uq_models_name"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column(
        "model_id", Integer, ForeignKey("models.id", name="fk_model_versions_model"), nullable=False
    ),
    Column("version", Integer, nullable=False),
    Column("artifact_digest", String(71), nullable=False),
    Column("artifact_size", BigInteger, nullable=False),
    Column("artifact_filename", Text, nullable=False),
    Column("framework", Text, nullable=False),
    Column("entrypoint", Text, nullable=True),
    Column("signature", JSON(none_as_null=True), nullable=True),
    Column("tags", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("description", Text, nullable=False),
    Column("registered_by", Text, nullable=False),
    Column("training_data_digest", String(71), nullable=True),
    Column("code_version", Text, nullable=True),
    Column("parent_version", Integer, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("archived_at", UTCDateTime(), nullable=True),
    Column("archived_by", Text, nullable=True),
    # The artifact served instead of the registered one (all NULL: serve the registered one).
    Column("serving_framework", Text, nullable=True),
    Column("serving_artifact_digest", String(71), nullable=True),
    Column("serving_artifact_size", BigInteger, nullable=True),
    Column("compile_report", JSON(none_as_null=True), nullable=True),
    # Where the version's data may live; bound into its artifacts' encryption (0003).
    Column("jurisdiction", Text, nullable=False, server_default="global"),
    # Who signed the artifact manifest (both NULL: registered before signing, not loadable).
    Column("signer", Text, nullable=True),
    Column("signer_key_id", Text, nullable=True),
    PrimaryKeyConstraint("model_id", "version", name="pk_model_versions"),
    CheckConstraint("status IN ('active', 'archived')", name="ck_model_versions_status"),
    CheckConstraint("version >= 1", name="ck_model_versions_version"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Integer, nullable=False),
    Column("alias", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("model_id", "alias", name="pk_aliases"),
    ForeignKeyConstraint(
        ["model_id", "version"],
        ["model_versions.model_id", "model_versions.version"],
        name="fk_aliases_version",
    ),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column(
        "model_id", Integer, ForeignKey("models.id", name="fk_alias_events_model"), nullable=False
    ),
    Column("alias", String(63), nullable=False),
    Column("version", Integer, nullable=True),
    Column("previous_version", Integer, nullable=True),
    Column("actor", Text, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("id", name="pk_alias_events"),
    Index("ix_alias_events_model_alias", "model_id", "alias"),
)


reference_profiles = Table(
    "reference_profiles",
    metadata,
    Column("model_id", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("profile", JSON, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", Text, nullable=False),
    PrimaryKeyConstraint("model_id", "version", name="pk_reference_profiles"),
    ForeignKeyConstraint(
        ["model_id", "version"],
        ["model_versions.model_id", "model_versions.version"],
        name="fk_reference_profiles_version",
    ),
)
"""A version's reference data profile for drift detection (``modelport.drift``): per feature the
reference's bins and proportions, category frequencies, missing rate and range, the prediction's
distribution included; made at registration from the sample (or ``--reference FILE``), or later
by ``modelport drift profile``. ``source`` says which (``sample``, ``reference sha256:...``)."""
