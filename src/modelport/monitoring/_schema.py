"""The monitoring package's tables as SQLAlchemy Core objects, for queries.

Only the prediction log's PostgreSQL backend keeps a table (the embedded default writes Parquet
files). The migrations in ``migrations/versions`` create it; they do not import this module, so
that an old migration keeps meaning what it meant when it was written. A contract test compares
the migrated database with these definitions, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Boolean, Column, Double, Index, MetaData, SmallInteger, Table, Text

from modelport.db import Migrations, UTCDateTime

__all__ = ["MIGRATIONS", "metadata", "prediction_log"]

MIGRATIONS = Migrations(
    name="monitoring",
    script_dir=Path(__file__).resolve().parent / "migrations",
    version_table="monitoring_alembic_version",
    head="0002",
)
"""The monitoring package's Alembic scripts, shipped inside the package."""

metadata = MetaData()

prediction_log = Table(
    "prediction_log",
    metadata,
    Column("schema_version", SmallInteger, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("deployment", Text, nullable=False),
    Column("variant", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("shadow", Boolean, nullable=False),
    Column("latency_ms", Double, nullable=False),
    Column("identity", Text, nullable=True),
    Column("inputs", Text, nullable=False),
    Column("outputs", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("cpu_ms", Double, nullable=True),
    Index("ix_prediction_log_deployment_time", "deployment", "time"),
    Index("ix_prediction_log_deployment_request_id", "deployment", "request_id"),
    Index("ix_prediction_log_time", "time", postgresql_using="brin"),
)
"""One row per logged prediction: the columns, names and meanings of the Parquet schema
(``monitoring/prediction_log.py``). No key: rows are appended by ``COPY`` and deleted by day.
``(deployment, time)`` serves a deployment's queries, ``(deployment, request_id)`` the look-up of
request ids (``PostgresSink.find_request_ids``); the BRIN index on ``time`` (a few pages for the
whole table, as rows arrive roughly in time order) serves retention and queries across
deployments."""
