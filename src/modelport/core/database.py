"""Engines and transactions for the metadata database, and running a package's migrations.

Several packages keep tables in the one metadata database (the registry its models and versions,
security its API keys and audit log); each has its own Alembic script folder and version table,
and migrates with :func:`migrate`.

One code path serves SQLite (the embedded default) and PostgreSQL (at scale). The differences
live here:

* SQLite: WAL journal, a 30 s busy timeout and foreign keys on every connection. Python's sqlite3
  module opens transactions lazily and only before data changes, which lets two writers both read
  the same ``max(version)``; so its own transaction handling is switched off and every transaction
  is begun explicitly, ``BEGIN IMMEDIATE`` for writes (the write lock is taken up front, later
  writers wait up to the busy timeout) and ``BEGIN`` for reads (a consistent snapshot under WAL).
* PostgreSQL: writes run in READ COMMITTED and lock the model row; reads run in REPEATABLE READ so
  one call sees one snapshot; migrations hold a transaction-level advisory lock.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import DateTime, Dialect, Engine, TypeDecorator, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import StaticPool

from modelport.core.errors import ConfigError, DependencyMissing

__all__ = [
    "MigratedDatabase",
    "Migrations",
    "UTCDateTime",
    "display_url",
    "migrate",
    "open_engine",
    "read",
    "run_alembic_env",
    "write",
]

_BUSY_TIMEOUT_S = 30
_WRITE_OPTION = "modelport_write"
# Arbitrary constant: the key of the advisory lock that serialises migrations.
_MIGRATION_LOCK_KEY = 0x6D6F64656C706F72  # "modelpor"
_SQLITE_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite"})
_POSTGRES_DRIVERS = frozenset({"postgresql", "postgresql+psycopg", "postgresql+psycopg2"})


@dataclass(frozen=True, slots=True)
class Migrations:
    """One package's schema history in the metadata database.

    Args:
        name: What the schema is, for error messages (``registry``, ``security``).
        script_dir: The package's Alembic script folder.
        version_table: Alembic's bookkeeping table, named per package so several packages can
            migrate the same database.
    """

    name: str
    script_dir: Path
    version_table: str


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect.

    PostgreSQL stores ``timestamptz`` and returns it in the session's zone; SQLite stores text
    without a zone. Values are converted to UTC before they are written and come back aware (UTC).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC; refuse naive ones, whose zone is a guess."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use an aware (UTC) one")
        value = value.astimezone(UTC)
        # SQLite keeps no zone: store the UTC wall time and re-attach UTC when reading.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        """Return the stored instant as an aware UTC datetime."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


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


def display_url(url: URL) -> str:
    """Return ``url`` as text with any password hidden."""
    return url.render_as_string(hide_password=True)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from None
    if parsed.drivername == "postgresql":
        # SQLAlchemy's default PostgreSQL driver is psycopg2; modelport depends on psycopg 3.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in _SQLITE_DRIVERS | _POSTGRES_DRIVERS:
        raise ConfigError(
            f"unsupported database URL {display_url(parsed)!r}: expected sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST:PORT/DB"
        )
    return parsed


def _sqlite_in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def open_engine(url: str) -> Engine:
    """Create an engine for ``url`` with modelport's connection settings.

    For a SQLite file the parent folder is created when missing (mode 0700), and a new
    database file is created with mode 0600 (its -wal and -shm files follow that mode).

    Args:
        url: A SQLAlchemy URL, ``sqlite:///PATH`` or ``postgresql+psycopg://...``
            (``postgresql://`` means psycopg 3).

    Returns:
        The engine; no connection has been made yet.

    Raises:
        ConfigError: The URL is malformed, names another database, or the folder cannot be made.
        DependencyMissing: The PostgreSQL driver is not installed.
    """
    parsed = _parse(url)
    if parsed.drivername in _POSTGRES_DRIVERS:
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except (NoSuchModuleError, ImportError) as exc:
            raise DependencyMissing(
                f"PostgreSQL needs the psycopg driver: pip install 'modelport[postgres]' ({exc})"
            ) from None
    return _sqlite_engine(parsed)


def _sqlite_engine(url: URL) -> Engine:
    memory = _sqlite_in_memory(url)
    if not memory and not url.query.get("uri"):
        _create_private(Path(str(url.database)).expanduser().absolute())
    kwargs: dict[str, Any] = {"connect_args": {"timeout": _BUSY_TIMEOUT_S}}
    if memory:
        # One shared connection, or every checkout would see its own empty database.
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below (the pysqlite recipe in SQLAlchemy's
        # SQLite dialect documentation).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory:
                _enable_wal(cursor)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writing = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine


def _create_private(path: Path) -> None:
    """Create a new SQLite database file with mode 0600 (its folders 0700) before SQLite does.

    SQLite creates a database with mode 0644 less the umask, and gives its -wal and -shm files
    the database file's mode; an empty file made here first is a new database to SQLite, so all
    three are private. An existing file keeps its mode (an operator may have chosen it).

    Raises:
        ConfigError: The folder or the file cannot be made.
    """
    folder = path.parent
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the database folder {folder}: {exc}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot create the database file {path}: {exc}") from None
    os.close(fd)


def _enable_wal(cursor: Any) -> None:
    """Switch the database to WAL, retrying while another process holds a lock.

    Changing the journal mode needs a lock that SQLite may refuse at once with "database is
    locked" without calling the busy handler (several processes opening a new database together
    hit this), so the busy timeout is applied here by hand.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """Run a read-write transaction; it commits when the block ends without an exception.

    On SQLite the write lock is taken when the transaction begins; on PostgreSQL callers lock the
    rows they depend on (``SELECT ... FOR UPDATE``).
    """
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """Run a read-only transaction that sees one consistent snapshot."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


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
