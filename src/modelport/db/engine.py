"""Engines and transactions for the metadata database.

One code path serves SQLite (the embedded default) and PostgreSQL (at scale). The differences
live here:

* SQLite: WAL journal, a 30 s busy timeout and foreign keys on every connection. Python's sqlite3
  module opens transactions lazily and only before data changes, which lets two writers both read
  the same ``max(version)``; so its own transaction handling is switched off and every transaction
  is begun explicitly, ``BEGIN IMMEDIATE`` for writes (the write lock is taken up front, later
  writers wait up to the busy timeout) and ``BEGIN`` for reads (a consistent snapshot under WAL).
  A new database file is created private (0600, in a 0700 folder) before SQLite opens it.
* PostgreSQL: writes run in READ COMMITTED and lock the model row; reads run in REPEATABLE READ so
  one call sees one snapshot.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, Engine, TypeDecorator, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from modelport.core.errors import ConfigError, DependencyMissing

__all__ = ["UTCDateTime", "display_url", "open_engine", "read", "write"]

_BUSY_TIMEOUT_S = 30
_WRITE_OPTION = "modelport_write"
_SQLITE_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite"})
_POSTGRES_DRIVERS = frozenset({"postgresql", "postgresql+psycopg", "postgresql+psycopg2"})


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
