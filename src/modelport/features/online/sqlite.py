"""The embedded online store: one SQLite file in WAL mode, the one-box default.

One table holds every view: ``(view, entity)`` is the primary key, ``event_us`` and
``created_us`` the row's timestamps in microseconds, ``data`` the orjson bytes of its features.
A write is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` per row inside one
``BEGIN IMMEDIATE`` transaction, so the newer-row test and the update are one atomic step even
with writers in other processes. A read is one ``SELECT ... WHERE view = ? AND entity IN (...)``
on the stdlib ``sqlite3`` module (SQLAlchemy would cost more than the query on this path).

The connection is shared by the threads of a process behind a lock; open one store per process
(a forked child opens its own).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from modelport.core.errors import ConfigError, ServiceUnavailable
from modelport.features.online import _codec
from modelport.features.online.base import (
    EntityKey,
    OnlineRead,
    OnlineStore,
    SqliteOnlineStoreConfig,
)

__all__ = ["SqliteOnlineStore"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS online_features (
    view TEXT NOT NULL,
    entity BLOB NOT NULL,
    event_us INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (view, entity)
) WITHOUT ROWID
"""

# The WHERE makes an older row a no-op (SQLite then counts no change), so rowcount is the
# number of rows applied.
_UPSERT: Final = """
INSERT INTO online_features (view, entity, event_us, created_us, data) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (view, entity) DO UPDATE SET
    event_us = excluded.event_us, created_us = excluded.created_us, data = excluded.data
WHERE excluded.event_us > online_features.event_us
   OR (excluded.event_us = online_features.event_us
       AND excluded.created_us > online_features.created_us)
"""

_SELECT: Final = "SELECT entity, event_us, data FROM online_features WHERE view = ? AND entity IN "
_MAX_PARAMS: Final = 30_000  # under SQLite's default limit of 32,766 host parameters


def _create_private(path: Path) -> None:
    """Create the database file with mode 0600 (folders 0700) before SQLite does.

    SQLite gives its -wal and -shm files the database file's mode, so all three stay private.
    An existing file keeps its mode.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:  # FileExistsError included: a file where the folder should be
        raise ConfigError(f"cannot create the online store folder {path.parent}: {exc}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot create the online store file {path}: {exc}") from None
    os.close(fd)


class SqliteOnlineStore(OnlineStore):
    """Online store in one SQLite file.

    Args:
        config: The file and busy timeout.

    Raises:
        ConfigError: The file cannot be created or opened as a database.
    """

    def __init__(self, config: SqliteOnlineStoreConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._selects: dict[int, str] = {}
        _create_private(config.path)
        try:
            self._conn = sqlite3.connect(
                config.path,
                timeout=config.busy_timeout_s,
                isolation_level=None,  # autocommit; writes open their own transaction
                check_same_thread=False,  # shared by threads behind self._lock
                cached_statements=256,
            )
            self._setup(config.busy_timeout_s)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open the online store {config.path}: {exc}") from None

    def _setup(self, busy_timeout_s: float) -> None:
        # journal_mode needs a lock that SQLite may refuse at once without calling the busy
        # handler when several processes open a new file together, so retry it by hand.
        deadline = time.monotonic() + busy_timeout_s
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute(_SCHEMA)

    def write(
        self,
        view: str,
        keys: Sequence[EntityKey],
        event_ts: Sequence[datetime],
        created_ts: Sequence[datetime | None],
        values: Mapping[str, Sequence[Any]],
    ) -> int:
        """See :meth:`OnlineStore.write`."""
        rows = _codec.rows_to_write(view, keys, event_ts, created_ts, values)
        if not rows:
            return 0
        params = [(view, r.key, r.event_us, r.created_us, r.data) for r in rows]
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    applied = self._conn.executemany(_UPSERT, params).rowcount
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise ServiceUnavailable(f"online store write failed: {exc}") from None
        return applied

    def _select(self, count: int) -> str:
        sql = self._selects.get(count)
        if sql is None:
            sql = _SELECT + "(" + ",".join("?" * count) + ")"
            if len(self._selects) < 256:
                self._selects[count] = sql
        return sql

    def _fetch(self, view: str, encoded: list[bytes]) -> dict[bytes, tuple[int, Any]]:
        distinct = list(dict.fromkeys(encoded))
        found: dict[bytes, tuple[int, Any]] = {}
        with self._lock:
            try:
                for start in range(0, len(distinct), _MAX_PARAMS):
                    chunk = distinct[start : start + _MAX_PARAMS]
                    cursor = self._conn.execute(self._select(len(chunk)), (view, *chunk))
                    for entity, event_us, data in cursor:
                        found[entity] = (event_us, data)
            except sqlite3.OperationalError as exc:
                raise ServiceUnavailable(f"online store read failed: {exc}") from None
        return found

    def read(
        self,
        view: str,
        keys: Sequence[EntityKey],
        features: Sequence[str],
        now: datetime,
        ttl: timedelta | None,
    ) -> OnlineRead:
        """See :meth:`OnlineStore.read`."""
        encoded, ttl_us = _codec.check_read(view, keys, features, ttl)
        found = self._fetch(view, encoded) if encoded else {}
        decoded: dict[bytes, tuple[int, dict[str, Any]]] = {
            entity: (event_us, orjson.loads(data)) for entity, (event_us, data) in found.items()
        }
        records = [decoded.get(entity) for entity in encoded]
        return _codec.build_read(features, records, _codec.to_micros(now), ttl_us)

    def delete_view(self, view: str) -> int:
        """See :meth:`OnlineStore.delete_view`."""
        _codec.check_view(view)
        with self._lock:
            try:
                cursor = self._conn.execute("DELETE FROM online_features WHERE view = ?", (view,))
            except sqlite3.OperationalError as exc:
                raise ServiceUnavailable(f"online store delete failed: {exc}") from None
        return cursor.rowcount

    def close(self) -> None:
        """See :meth:`OnlineStore.close`."""
        with self._lock:
            self._conn.close()
