"""The online-store package's surface, lazy backend registry and typed configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from modelport.core.errors import ConfigError
from modelport.features import online
from modelport.features.online import (
    ONLINE_STORES,
    OnlineStore,
    OnlineStoreConfig,
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
    online_store_class,
    open_online_store,
)


def test_exported_names() -> None:
    assert sorted(online.__all__) == sorted(
        [
            "ONLINE_STORES",
            "EntityKey",
            "FeatureStatus",
            "OnlineRead",
            "OnlineStore",
            "OnlineStoreConfig",
            "RedisOnlineStoreConfig",
            "SqliteOnlineStoreConfig",
            "online_store_class",
            "open_online_store",
        ]
    )
    for name in online.__all__:
        assert hasattr(online, name), name


def test_importing_the_package_imports_no_backend() -> None:
    code = (
        "import sys, modelport.features.online\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis'"
        " or m.startswith('modelport.features.online.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['modelport.features.online.base']"


@pytest.mark.parametrize("name", sorted(ONLINE_STORES))
def test_every_registered_backend_is_an_online_store(name: str) -> None:
    cls = online_store_class(name)
    assert issubclass(cls, OnlineStore)
    assert cls.__name__ == ONLINE_STORES[name].rpartition(":")[2]


def test_an_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match="unknown online store 'dynamo'; expected one of redis, sqlite"
    ):
        online_store_class("dynamo")


def test_configs_are_told_apart_by_type() -> None:
    adapter: TypeAdapter[SqliteOnlineStoreConfig | RedisOnlineStoreConfig] = TypeAdapter(
        OnlineStoreConfig
    )
    sqlite = adapter.validate_python({"type": "sqlite", "path": "/tmp/x.db"})
    assert sqlite == SqliteOnlineStoreConfig(path=Path("/tmp/x.db"))
    redis = adapter.validate_python({"type": "redis", "prefix": "p:"})
    assert isinstance(redis, RedisOnlineStoreConfig) and redis.url.startswith("redis://")
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "dynamo"})
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "redis", "hosts": "x"})  # extra fields are refused
    with pytest.raises(ValidationError):
        RedisOnlineStoreConfig(prefix="")


def test_open_picks_the_configured_backend(tmp_path: Path) -> None:
    with open_online_store(SqliteOnlineStoreConfig(path=tmp_path / "a" / "o.db")) as store:
        assert type(store) is online_store_class("sqlite")
    assert (tmp_path / "a" / "o.db").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700
