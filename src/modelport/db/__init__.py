"""The metadata database: engines, transactions and each package's schema migrations.

:mod:`.engine` opens engines and runs transactions the same way on SQLite (the embedded default)
and PostgreSQL (the scale path); :mod:`.migrations` runs a package's Alembic history;
:mod:`.documents` keeps a table of named, versioned resource documents (deployments, alert
rules). The registry and security packages keep their tables here; nothing in this package knows
their schemas.
"""

from __future__ import annotations

from modelport.db.documents import Applied, Document, DocumentTable, document_digest
from modelport.db.engine import UTCDateTime, display_url, open_engine, read, write
from modelport.db.migrations import MigratedDatabase, Migrations, migrate, run_alembic_env

__all__ = [
    "Applied",
    "Document",
    "DocumentTable",
    "MigratedDatabase",
    "Migrations",
    "UTCDateTime",
    "display_url",
    "document_digest",
    "migrate",
    "open_engine",
    "read",
    "run_alembic_env",
    "write",
]
