"""Opening online stores: unreachable servers and unusable files are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.core.errors import ConfigError, ServiceUnavailable
from modelport.features.online import (
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
    open_online_store,
)


def test_an_unreachable_redis_is_unavailable() -> None:
    config = RedisOnlineStoreConfig(url="redis://127.0.0.1:1/0", socket_timeout_s=0.5)
    with pytest.raises(ServiceUnavailable, match="cannot reach the online store at redis://"):
        open_online_store(config)


def test_a_url_that_is_not_redis_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bad online store URL 'http://127.0.0.1:6379'"):
        open_online_store(RedisOnlineStoreConfig(url="http://127.0.0.1:6379"))


def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    path.write_bytes(b"not a database, just some bytes" * 100)
    with pytest.raises(ConfigError, match="cannot open the online store"):
        open_online_store(SqliteOnlineStoreConfig(path=path))


def test_a_folder_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot create the online store folder"):
        open_online_store(SqliteOnlineStoreConfig(path=tmp_path / "file" / "online.db"))


def test_closing_twice_is_harmless(tmp_path: Path) -> None:
    for config in (
        SqliteOnlineStoreConfig(path=tmp_path / "o.db"),
        RedisOnlineStoreConfig(prefix="modelport-test:close:"),
    ):
        store = open_online_store(config)
        store.close()
        store.close()
