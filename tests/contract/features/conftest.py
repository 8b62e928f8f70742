"""The online stores every contract test runs against: SQLite and the real Redis server.

Redis: the server on 127.0.0.1:6379 must be up (CI starts it); each test gets its own key prefix
and deletes exactly its own keys afterwards, never the whole database.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from modelport.features.online import (
    OnlineStore,
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
    open_online_store,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["sqlite", "redis"])
def online_config(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SqliteOnlineStoreConfig | RedisOnlineStoreConfig]:
    """A config of an empty store that nothing has opened yet."""
    if request.param == "sqlite":
        yield SqliteOnlineStoreConfig(path=tmp_path / "nested" / "online.db")
        return
    prefix = f"modelport-test:{secrets.token_hex(6)}:"
    # A small batch so that writes of a few hundred rows cross batch boundaries.
    yield RedisOnlineStoreConfig(url=REDIS_URL, prefix=prefix, write_batch=64)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.unlink(*keys)
    finally:
        client.close()


@pytest.fixture
def store(online_config: SqliteOnlineStoreConfig | RedisOnlineStoreConfig) -> Iterator[OnlineStore]:
    """An open, empty store of each backend."""
    with open_online_store(online_config) as opened:
        yield opened
