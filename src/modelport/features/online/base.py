"""The online-store interface: newest row per entity and view, read with a TTL.

An online store keeps, per feature view and entity key, only the newest row: the one with the
latest event timestamp, ties broken by the latest created timestamp (the offline store's rule).
A write older than what is stored is skipped, atomically, so concurrent writers in several
processes end with the newest row whatever order they commit in.

A read at ``now`` with a view's ``ttl`` returns each stored value when ``now - event_ts <= ttl``,
and null with :attr:`FeatureStatus.OUTSIDE_MAX_AGE` otherwise, so online and offline agree: the
offline store's point-in-time value at ``now`` is this same newest row, or null once it has aged
out. A row whose event timestamp lies after ``now`` (clock skew between writer and reader) is
served as present: the older row it replaced is gone.

Backends are chosen by name through :data:`ONLINE_STORES` (``"module:Class"`` strings, imported
only when asked for); each takes its typed config (``type: Literal[...]``) in its constructor.

Stores hold plain data and know no schema: entity keys are tuples of join-key values (``str`` or
``int``), values are JSON scalars (``float``, ``int``, ``str``, ``bool``, ``None``). A feature
absent from an entity's stored row reads as :attr:`FeatureStatus.NOT_FOUND`; checking names
against a view's definition is the caller's job.
"""

from __future__ import annotations

import abc
import enum
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelport.core.errors import ConfigError

__all__ = [
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

EntityKey = tuple[Any, ...]
"""The join-key values of one entity, in the entity's join-key order (``str`` or ``int`` each)."""


class FeatureStatus(enum.Enum):
    """What a read found for one entity and feature (Feast's field statuses)."""

    PRESENT = "PRESENT"
    """A stored, non-null value within the TTL."""
    NOT_FOUND = "NOT_FOUND"
    """No row for the entity in the view, or the row has no such feature."""
    NULL_VALUE = "NULL_VALUE"
    """A row within the TTL whose value for the feature is null."""
    OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"
    """A row older than the TTL allows; its value comes back as null."""


@dataclass(frozen=True, slots=True)
class OnlineRead:
    """The result of one :meth:`OnlineStore.read`, aligned with the keys asked for.

    Attributes:
        values: Feature name -> one value per key (``None`` unless the status is PRESENT).
        statuses: Feature name -> one :class:`FeatureStatus` per key.
        event_ts: Per key, the stored row's event timestamp (UTC), also when it is outside the
            TTL; ``None`` where no row was found.
    """

    values: dict[str, list[Any]]
    statuses: dict[str, list[FeatureStatus]]
    event_ts: list[datetime | None]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqliteOnlineStoreConfig(_Config):
    """The embedded online store: one SQLite file (WAL) shared by the processes of one box."""

    type: Literal["sqlite"] = "sqlite"
    """Backend name."""
    path: Path
    """The database file; created with mode 0600 (folders 0700) when missing."""
    busy_timeout_s: float = Field(default=5.0, gt=0)
    """How long a writer waits for another process's write lock before failing."""


class RedisOnlineStoreConfig(_Config):
    """The shared online store: one Redis server (or a proxy speaking its protocol)."""

    type: Literal["redis"] = "redis"
    """Backend name."""
    url: str = "redis://127.0.0.1:6379/0"
    """``redis://`` or ``rediss://`` URL of the server, with the database number."""
    prefix: str = Field(default="modelport:online:", min_length=1)
    """Prepended to every key this store writes, so stores can share a database."""
    socket_timeout_s: float = Field(default=1.0, gt=0)
    """Seconds a command may wait on the socket before failing."""
    write_batch: int = Field(default=500, ge=1)
    """Rows per atomic write script; bigger writes are split into batches of this size."""


OnlineStoreConfig = Annotated[
    SqliteOnlineStoreConfig | RedisOnlineStoreConfig, Field(discriminator="type")
]
"""Any backend's config, told apart by ``type``."""


class OnlineStore(abc.ABC):
    """Newest row per (view, entity), read with a TTL. Subclasses take their config."""

    @abc.abstractmethod
    def write(
        self,
        view: str,
        keys: Sequence[EntityKey],
        event_ts: Sequence[datetime],
        created_ts: Sequence[datetime | None],
        values: Mapping[str, Sequence[Any]],
    ) -> int:
        """Store rows, each unless the stored row for its entity is as new or newer.

        A row replaces the stored one when its event timestamp is later, or equal with a later
        created timestamp (``None`` is earlier than any); the whole row is replaced, features
        included. Naive datetimes are taken as UTC. Each row's test and update are one atomic
        step; a write that fails midway leaves nothing applied on SQLite (one transaction) and
        the batches already run applied on Redis (``write_batch`` rows a script).

        Args:
            view: The feature view's name.
            keys: One entity key per row.
            event_ts: When each row's values were true.
            created_ts: When each row was produced, or ``None``.
            values: Feature name -> one JSON scalar per row.

        Returns:
            How many rows were applied; the others were older than what was stored.

        Raises:
            InvalidInput: Lengths differ, or a key, timestamp or value has the wrong type.
            ServiceUnavailable: The backend cannot be reached.
        """

    @abc.abstractmethod
    def read(
        self,
        view: str,
        keys: Sequence[EntityKey],
        features: Sequence[str],
        now: datetime,
        ttl: timedelta | None,
    ) -> OnlineRead:
        """Read features of entities, in key order (duplicates allowed).

        Args:
            view: The feature view's name.
            keys: The entity keys to read.
            features: The feature names to return (distinct).
            now: The time the read is for; rows older than ``now - ttl`` are outside max age.
            ttl: The view's time to live; ``None`` for values that never expire.

        Returns:
            The values, statuses and event timestamps, aligned with ``keys``.

        Raises:
            InvalidInput: A key has the wrong type, a feature name repeats, or ``ttl`` is
                negative.
            ServiceUnavailable: The backend cannot be reached.
        """

    @abc.abstractmethod
    def delete_view(self, view: str) -> int:
        """Delete every row of a view.

        Args:
            view: The feature view's name.

        Returns:
            How many entity rows were deleted.

        Raises:
            InvalidInput: ``view`` is not a non-empty string.
            ServiceUnavailable: The backend cannot be reached.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store is unusable afterwards. Idempotent."""

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


ONLINE_STORES: Final[dict[str, str]] = {
    "sqlite": "modelport.features.online.sqlite:SqliteOnlineStore",
    "redis": "modelport.features.online.redis:RedisOnlineStore",
}
"""Backend name -> ``"module:Class"`` of its :class:`OnlineStore`."""


def online_store_class(name: str) -> type[OnlineStore]:
    """Import and return the online store class registered under ``name``.

    Args:
        name: A key of :data:`ONLINE_STORES`.

    Returns:
        The store class (not an instance).

    Raises:
        ConfigError: ``name`` is not a known backend.
    """
    target = ONLINE_STORES.get(name)
    if target is None:
        known = ", ".join(sorted(ONLINE_STORES))
        raise ConfigError(f"unknown online store {name!r}; expected one of {known}")
    module_name, _, class_name = target.partition(":")
    cls: type[OnlineStore] = getattr(importlib.import_module(module_name), class_name)
    return cls


def open_online_store(config: SqliteOnlineStoreConfig | RedisOnlineStoreConfig) -> OnlineStore:
    """Open the backend ``config.type`` names, importing only that backend's module.

    Args:
        config: The chosen backend's config.

    Returns:
        An open store.

    Raises:
        ConfigError: The backend cannot be opened with this config.
        ServiceUnavailable: The backend cannot be reached.
    """
    return online_store_class(config.type)(config)  # type: ignore[call-arg]  # each takes its config
