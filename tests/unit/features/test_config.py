"""feature_store.yaml: Feast's keys, paths relative to the repository, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.core.errors import ConfigError, NotFound
from modelport.features.config import FeatureStoreConfig
from modelport.features.online import RedisOnlineStoreConfig, SqliteOnlineStoreConfig


def _repo(tmp_path: Path, text: str) -> Path:
    (tmp_path / "feature_store.yaml").write_text(text)
    return tmp_path


def test_a_feast_repository_file_loads(tmp_path: Path) -> None:
    config = FeatureStoreConfig.load(
        _repo(
            tmp_path,
            """
project: fraud
registry: data/registry.db
provider: local
online_store:
    type: sqlite
    path: data/online_store.db
offline_store:
    type: duckdb
    threads: 2
    memory_limit: 2GB
entity_key_serialization_version: 3
""",
        )
    )
    assert config.project == "fraud"
    assert config.registry_url() == f"sqlite:///{tmp_path.resolve()}/data/registry.db"
    online = config.online()
    assert isinstance(online, SqliteOnlineStoreConfig)
    assert online.path == tmp_path.resolve() / "data" / "online_store.db"
    assert config.offline_store.duckdb_config() == {"threads": 2, "memory_limit": "2GB"}


def test_feasts_redis_connection_string_becomes_a_url(tmp_path: Path) -> None:
    config = FeatureStoreConfig.load(
        _repo(
            tmp_path,
            "registry: postgresql+psycopg://postgres@127.0.0.1:5432/reg\n"
            "online_store: {type: redis, connection_string: 'redis.local:6380,db=3,password=s3'}\n",
        )
    )
    online = config.online()
    assert isinstance(online, RedisOnlineStoreConfig)
    assert online.url == "redis://:s3@redis.local:6380/3"
    assert config.registry_url() == "postgresql+psycopg://postgres@127.0.0.1:5432/reg"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("provider: gcp\n", "only 'local' exists"),
        ("online_store: {type: dynamodb}\n", "online_store"),
        ("offline_store: {type: spark}\n", "offline_store.type"),
        ("colour: red\n", "colour: Extra inputs are not permitted"),
        ("- a list\n", "expected a mapping of settings"),
        ("registry: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_files_are_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FeatureStoreConfig.load(_repo(tmp_path, text))


def test_a_folder_without_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no feature_store.yaml in"):
        FeatureStoreConfig.load(tmp_path)
