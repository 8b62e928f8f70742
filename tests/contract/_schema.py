"""The one check every store's migrations get: the migrated database matches the table objects."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from modelport.db import Migrations, open_engine


def schema_drift(url: str, migrations: Migrations, metadata: MetaData) -> list[Any]:
    """Alembic's differences between the database at ``url`` and ``metadata``.

    Only the package's own tables are compared: other packages' tables share the database.
    """
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "version_table": migrations.version_table,
                    "compare_type": True,
                    "include_name": lambda name, kind, _parent: (
                        kind != "table" or name in metadata.tables
                    ),
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()
