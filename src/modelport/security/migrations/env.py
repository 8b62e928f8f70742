"""Alembic environment for the security package's schema (API keys, audit log).

The store runs migrations itself (``modelport.core.database.migrate``) and hands Alembic an
open connection, already inside the transaction that serialises concurrent migrators, through
``config.attributes["connection"]``. Nothing here reads an ini file or the environment.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def run_migrations_online() -> None:
    """Run the migrations on the connection the store passed in."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "the security migrations run through modelport.security, which passes a connection "
            "in config.attributes['connection']"
        )
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table=context.config.attributes["version_table"],
        # SQLite cannot ALTER most things; batch mode recreates tables when a later migration
        # needs it.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported for security")
run_migrations_online()
