"""The security package's tables as SQLAlchemy Core objects, for queries.

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
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from modelport.db import Migrations, UTCDateTime

__all__ = ["MIGRATIONS", "HEAD_ID", "api_keys", "audit_head", "audit_log", "metadata"]

MIGRATIONS = Migrations(
    name="security",
    script_dir=Path(__file__).resolve().parent / "migrations",
    version_table="security_alembic_version",
    head="0002",
)
"""The security package's Alembic scripts, shipped inside the package."""

HEAD_ID = 1
"""The id of the one row of ``audit_head``."""

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), nullable=False),
    Column("name", Text, nullable=False),
    # Grants as "role:pattern" strings.
    Column("grants", JSON, nullable=False),
    # hmac-sha256$<salt hex>$<digest hex>; see modelport.security.apikeys.
    Column("secret_hash", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("revoked_by", Text, nullable=True),
    PrimaryKeyConstraint("key_id", name="pk_api_keys"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, autoincrement=False, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("request_id", Text, nullable=True),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    PrimaryKeyConstraint("seq", name="pk_audit_log"),
    CheckConstraint(
        "outcome IN ('started', 'ok', 'denied', 'failed')", name="ck_audit_log_outcome"
    ),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_actor", "actor"),
    Index("ix_audit_log_action", "action"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, autoincrement=False, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    PrimaryKeyConstraint("id", name="pk_audit_head"),
    CheckConstraint("id = 1", name="ck_audit_head_single"),
)
"""One row: the last entry's sequence number and hash, updated with every append."""
