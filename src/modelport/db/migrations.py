"""Running one package's schema migrations in the metadata database.

Several packages keep tables in the one metadata database (the registry its models and versions,
security its API keys and audit log); each has its own Alembic script folder and version table
(:class:`Migrations`), and migrates with :func:`migrate`. :class:`MigratedDatabase` is the base of
the stores that keep tables there. On PostgreSQL, migrations hold a transaction-level advisory
lock; on SQLite the write lock of ``BEGIN IMMEDIATE`` serialises them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from modelport.core.errors import ConfigError
from modelport.db.engine import display_url, open_engine, read, write

__all__ = ["MigratedDatabase", "Migrations", "migrate", "run_alembic_env"]

# Arbitrary constant: the key of the advisory lock that serialises migrations.
_MIGRATION_LOCK_KEY = 0x6D6F64656C706F72  # "modelpor"


@dataclass(frozen=True, slots=True)
class Migrations:
    """One package's schema history in the metadata database.

    Args:
        name: What the schema is, for error messages (``registry``, ``security``).
        script_dir: The package's Alembic script folder.
        version_table: Alembic's bookkeeping table, named per package so several packages can
            migrate the same database.
        head: The newest revision.
    """

    name: str
    script_dir: Path
    version_table: str
    head: str
    """The newest revision in ``script_dir`` (a test checks it against Alembic's): a database
    already there is opened without loading Alembic at all."""


def run_alembic_env(what: str) -> None:
    """Run a package's migrations; called from its Alembic ``env.py``.

    They run on the connection :func:`migrate` passes in ``config.attributes``, with the
    package's version table.

    Args:
        what: The schema's name, for error messages (``registry``, ``security``).

    Raises:
        RuntimeError: Alembic was run some other way (its command line, offline SQL scripts).
    """
    from alembic import context

    if context.is_offline_mode():
        raise RuntimeError(f"offline (SQL script) migrations are not supported for the {what}")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            f"the {what} migrations run through modelport, which passes a connection in "
            "config.attributes['connection']"
        )
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table=context.config.attributes["version_table"],
        # SQLite cannot ALTER most things; batch mode recreates tables when a migration needs it.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def migrate(engine: Engine, migrations: Migrations, revision: str = "head") -> None:
    """Bring a package's schema to ``revision`` (the newest by default); a no-op when it is there.

    The Alembic environment of the package receives the open connection in
    ``config.attributes["connection"]`` and the version table in
    ``config.attributes["version_table"]``.

    Only tests ask for an older revision, to build a database as an older modelport left it.

    Concurrent callers (several processes opening a new database at once) are serialised: on
    SQLite by the write lock of ``BEGIN IMMEDIATE``, on PostgreSQL by an advisory lock. DDL is
    transactional on both, so a failed migration leaves nothing half done.

    Raises:
        ConfigError: The database cannot be reached, or its schema is at a revision this version
            of modelport does not know (it was migrated by a newer one).
    """
    if revision in ("head", migrations.head) and _at(engine, migrations) == migrations.head:
        return  # the common case: nothing to do, and Alembic (a tenth of a second) not loaded
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    config = Config()
    # Config values go through configparser interpolation, where "%" is special.
    config.set_main_option("script_location", str(migrations.script_dir).replace("%", "%%"))
    config.attributes["version_table"] = migrations.version_table
    try:
        with write(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    except OperationalError as exc:
        raise ConfigError(
            f"cannot open the metadata database {display_url(engine.url)}: {exc.orig}"
        ) from exc
    except CommandError as exc:
        raise ConfigError(
            f"cannot migrate the {migrations.name} schema in {display_url(engine.url)}: {exc}; "
            "a newer modelport may have migrated it, so upgrade modelport"
        ) from exc


def _at(engine: Engine, migrations: Migrations) -> str | None:
    """The schema's revision in the database; ``None`` when it has none or is unreachable."""
    try:
        with read(engine) as conn:
            if not inspect(conn).has_table(migrations.version_table):
                return None
            rows = conn.execute(text(f"SELECT version_num FROM {migrations.version_table}"))
            versions = rows.scalars().all()
    except OperationalError:
        return None
    return versions[0] if len(versions) == 1 else None


class MigratedDatabase:
    """An engine on the metadata database with one package's schema migrated to the newest.

    The base of the stores that keep tables there (the registry's, security's): it opens the
    engine, migrates (safe when several processes open a new database at once), and closes.

    Args:
        url: SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DB``.
        migrations: The package's schema history.

    Raises:
        ConfigError: The URL is unsupported or the database cannot be reached.
        DependencyMissing: The PostgreSQL driver is not installed.
    """

    def __init__(self, url: str, migrations: Migrations) -> None:
        self._engine = open_engine(url)
        try:
            migrate(self._engine, migrations)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return display_url(self._engine.url)

    def close(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
