"""A feature repository's ``feature_store.yaml``: where the registry and the stores are.

The keys are Feast's, so a Feast repository's file works as it is (``provider`` and
``entity_key_serialization_version`` are accepted and mean nothing here)::

    project: fraud
    registry: data/registry.db          # a SQLite file (relative to the repository) or a URL
    online_store:
      type: sqlite                      # or redis
      path: data/online_store.db
    offline_store:
      type: duckdb
      threads: 4
      memory_limit: 4GB

A Redis online store takes ``url: redis://host:6379/0`` or Feast's ``connection_string:
"host:6379,db=0,password=..."``. ``registry`` may be a SQLAlchemy URL
(``postgresql+psycopg://postgres@127.0.0.1:5432/modelport``), which is how a repository shares
the platform's registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelport.core.errors import ConfigError, NotFound
from modelport.features.online import RedisOnlineStoreConfig, SqliteOnlineStoreConfig

__all__ = ["CONFIG_FILE", "FeatureStoreConfig", "OfflineStoreConfig"]

CONFIG_FILE = "feature_store.yaml"
"""The configuration file's name in a repository."""


class OfflineStoreConfig(BaseModel):
    """The offline store: DuckDB over the sources, with these connection settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["duckdb", "file"] = "duckdb"
    """``duckdb`` (``file`` is accepted as Feast's name for reading files)."""
    threads: int | None = Field(default=None, ge=1)
    """DuckDB worker threads; default: the cores."""
    memory_limit: str | None = None
    """DuckDB's memory limit (``4GB``); beyond it, it spills to ``temp_directory``."""
    temp_directory: str | None = None
    """Where DuckDB spills."""

    def duckdb_config(self) -> dict[str, str | int]:
        """The settings given, as DuckDB's connection config."""
        config: dict[str, str | int] = {}
        if self.threads is not None:
            config["threads"] = self.threads
        if self.memory_limit is not None:
            config["memory_limit"] = self.memory_limit
        if self.temp_directory is not None:
            config["temp_directory"] = self.temp_directory
        return config


class FeatureStoreConfig(BaseModel):
    """Where a feature store keeps its registry, online rows and how it reads offline data.

    Relative paths are relative to ``repo_path`` (the folder of ``feature_store.yaml``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = "default"
    """The project's name (shown, not used to separate data)."""
    registry: str = "data/registry.db"
    """A SQLite file, or a SQLAlchemy URL of the registry's database."""
    provider: str = "local"
    """Feast's provider; only ``local`` exists here."""
    online_store: SqliteOnlineStoreConfig | RedisOnlineStoreConfig | None = Field(
        default=None, discriminator="type"
    )
    """The online store; none: the online calls say how to configure one."""
    offline_store: OfflineStoreConfig = OfflineStoreConfig()
    """How sources are read."""
    entity_key_serialization_version: int | None = None
    """Feast's key format version; accepted for compatibility, not used."""
    repo_path: Path = Path(".")
    """The folder relative paths are resolved against (set by :meth:`load`)."""

    @model_validator(mode="before")
    @classmethod
    def _feast_forms(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        online = raw.get("online_store")
        if isinstance(online, dict) and "connection_string" in online:
            online = dict(online)
            online["url"] = _redis_url(str(online.pop("connection_string")))
            raw["online_store"] = online
        if isinstance(online, dict):
            online = {k: v for k, v in online.items() if k not in ("redis_type",)}
            raw["online_store"] = online
        return raw

    @model_validator(mode="after")
    def _provider(self) -> FeatureStoreConfig:
        if self.provider != "local":
            raise ValueError(f"provider {self.provider!r}: only 'local' exists")
        return self

    @classmethod
    def load(cls, repo_path: str | Path) -> FeatureStoreConfig:
        """Read ``feature_store.yaml`` from a repository folder.

        Raises:
            NotFound: There is no such file.
            ConfigError: It is not valid (the message names the key).
        """
        folder = Path(repo_path)
        path = folder / CONFIG_FILE
        if not path.is_file():
            raise NotFound(f"no {CONFIG_FILE} in {str(folder)!r}: a feature repository has one")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        try:
            return cls.model_validate({**raw, "repo_path": folder.resolve()})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'the file'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ConfigError(f"{path}: {problems}") from None

    def registry_url(self) -> str:
        """The registry as a SQLAlchemy URL (a file path becomes ``sqlite:///ABSOLUTE``)."""
        if "://" in self.registry:
            return self.registry
        return f"sqlite:///{self._resolve(self.registry)}"

    def online(self) -> SqliteOnlineStoreConfig | RedisOnlineStoreConfig | None:
        """The online store's config, its SQLite path resolved against the repository."""
        config = self.online_store
        if isinstance(config, SqliteOnlineStoreConfig):
            return config.model_copy(update={"path": self._resolve(str(config.path))})
        return config

    def _resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.repo_path / candidate


def _redis_url(connection: str) -> str:
    """Feast's ``host:port,db=N,password=P,ssl=true`` as a ``redis://`` URL."""
    if "://" in connection:
        return connection
    address, *options = [part.strip() for part in connection.split(",")]
    settings = dict(o.split("=", 1) for o in options if "=" in o)
    scheme = "rediss" if settings.get("ssl", "").lower() == "true" else "redis"
    password = settings.get("password")
    auth = f":{password}@" if password else ""
    return f"{scheme}://{auth}{address or '127.0.0.1:6379'}/{settings.get('db', '0')}"
