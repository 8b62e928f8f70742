"""``FeatureStore``: the registry of definitions and historical (point-in-time) retrieval.

:meth:`FeatureStore.apply` validates a batch of definitions (unique names, every referenced
entity and view known) and applies all or nothing. The definitions live in memory, or, with a
registry (``registry=`` a database URL, or a repository's ``feature_store.yaml``), in the
metadata database (:mod:`.registry`), where every process sees them (:meth:`FeatureStore.refresh`)
and where materialisation records how far each view has got. Retrieval builds a
:class:`~modelport.features.offline.RetrievalJob`. With an online store configured,
:meth:`FeatureStore.materialize` copies the newest row per entity of each online view into it
(:mod:`.materialize`) and :meth:`FeatureStore.get_online_features` reads it
(:mod:`._online_read`).

Timestamps are instants in UTC throughout: naive values (in the entity frame or in sources) are
taken as UTC, values with a time zone are converted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from modelport.core.errors import ConfigError, Conflict, InvalidInput, NotFound
from modelport.features import _pit
from modelport.features._online_read import OnlineResponse, read_online
from modelport.features.config import FeatureStoreConfig
from modelport.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
)
from modelport.features.materialize import (
    MaterializeSummary,
    as_utc,
    materialize_views,
    online_views,
)
from modelport.features.offline import RetrievalJob, check_entity_frame, entity_table
from modelport.features.online import (
    OnlineStore,
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
    open_online_store,
)
from modelport.features.push import (
    PushMode,
    PushSummary,
    as_table,
    check_mode,
    push_rows,
    push_views,
)
from modelport.features.registry import Definitions, FeatureRegistry

__all__ = ["DEFAULT_TIMESTAMP_COLUMN", "FeatureStore"]

#: The entity frame's time column, as in Feast.
DEFAULT_TIMESTAMP_COLUMN = "event_timestamp"

Definition = Entity | FeatureView | FeatureService
_T = TypeVar("_T")


class FeatureStore:
    """Feature definitions and retrieval of training data.

    Args:
        objects: Definitions to apply at once (as :meth:`apply`).
        repo_path: A feature repository's folder: its ``feature_store.yaml`` gives the registry,
            the online store and the offline settings (:class:`~.config.FeatureStoreConfig`).
        config: The same settings as an object (relative paths against its ``repo_path``).
        registry: Where definitions persist: a SQLAlchemy URL of the metadata database, or an
            open :class:`~.registry.FeatureRegistry` (the caller closes it). Overrides the
            config's. None (and no config): definitions live in this object only.
        actor: Who applies definitions, as the registry records it.
        duckdb_config: Settings for the offline store's DuckDB connections, such as
            ``{"threads": 4, "memory_limit": "4GB", "temp_directory": "/tmp/x"}``.
        online_store: The online store: an open :class:`OnlineStore` (the caller closes it),
            or a config (``SqliteOnlineStoreConfig(path=...)``, ``RedisOnlineStoreConfig(...)``)
            opened on first use and closed by :meth:`close`. None by default: an online store
            is a choice of where data lives, so none is made up; the online methods then raise
            ConfigError saying how to configure one.
        clock: Returns the current time (UTC) for online reads without ``now``.
    """

    def __init__(
        self,
        objects: Iterable[Definition] = (),
        *,
        repo_path: str | Path | None = None,
        config: FeatureStoreConfig | None = None,
        registry: str | FeatureRegistry | None = None,
        actor: str = "python",
        duckdb_config: dict[str, str | int] | None = None,
        online_store: OnlineStore | SqliteOnlineStoreConfig | RedisOnlineStoreConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._entities: dict[str, Entity] = {}
        self._views: dict[str, FeatureView] = {}
        self._services: dict[str, FeatureService] = {}
        if repo_path is not None:
            if config is not None:
                raise ConfigError("give repo_path or config, not both")
            config = FeatureStoreConfig.load(repo_path)
        if config is not None:
            registry = config.registry_url() if registry is None else registry
            online_store = config.online() if online_store is None else online_store
            duckdb_config = config.offline_store.duckdb_config() | dict(duckdb_config or {})
        self._duckdb_config = dict(duckdb_config or {})
        self._actor = actor
        kinds = OnlineStore | SqliteOnlineStoreConfig | RedisOnlineStoreConfig | None
        if not isinstance(online_store, kinds):
            raise ConfigError(
                f"online_store is {online_store!r}: expected an OnlineStore or config"
            )
        self._online = online_store if isinstance(online_store, OnlineStore) else None
        self._online_config = None if isinstance(online_store, OnlineStore) else online_store
        self._clock = clock or (lambda: datetime.now(UTC))
        self._opening = threading.Lock()
        # Per view, where its last materialisation ended (without a registry).
        self._materialized: dict[str, datetime] = {}
        self._registry = FeatureRegistry(registry) if isinstance(registry, str) else registry
        self._owns_registry = isinstance(registry, str)
        self._generations: dict[tuple[str, str], int] = {}
        if self._registry is not None:
            self._load(self._registry.load(), self._registry.generations())
        objects = list(objects)
        if objects:
            self.apply(objects)

    def apply(self, objects: Iterable[Definition], *, actor: str | None = None) -> None:
        """Register or replace definitions by name; all of them or, on an error, none.

        Args:
            objects: Entities, feature views and feature services.
            actor: Who applies them, as the registry records it; by default the store's.

        Raises:
            ConfigError: An object is not a definition, or two share a kind and a name, or an
                entity replaces one of the same name with other join keys.
            NotFound: A view's entity or a service's view is neither applied nor in ``objects``.
        """
        staged: dict[type, dict[str, Any]] = {Entity: {}, FeatureView: {}, FeatureService: {}}
        for obj in objects:
            kind = type(obj)
            if kind not in staged:
                raise ConfigError(
                    f"cannot apply {obj!r}: expected Entity, FeatureView or FeatureService objects"
                )
            if obj.name in staged[kind]:
                raise ConfigError(f"{kind.__name__} {obj.name!r} appears twice in one apply")
            staged[kind][obj.name] = obj
        entities = {**self._entities, **staged[Entity]}
        views = {**self._views, **staged[FeatureView]}
        for view in staged[FeatureView].values():
            _check_entities(view, entities)
        for service in staged[FeatureService].values():
            for proj in service.projections:
                if proj.name not in views:
                    raise NotFound(
                        f"feature service {service.name!r} uses feature view {proj.name!r}, "
                        "which is not applied"
                    )
        if self._registry is not None:
            staged_objects = [o for kind in staged.values() for o in kind.values()]
            self._registry.apply(staged_objects, actor or self._actor)
        self._entities = entities
        self._views = views
        self._services.update(staged[FeatureService])

    @property
    def registry(self) -> FeatureRegistry | None:
        """The registry the definitions persist in; ``None`` when they live in memory."""
        return self._registry

    def refresh(self) -> bool:
        """Re-read the definitions from the registry they persist in; whether any changed.

        A store without a registry keeps its definitions in memory, so there is nothing to
        re-read and nothing changes.
        """
        if self._registry is None:
            return False
        generations = self._registry.generations()
        if generations == self._generations:
            return False
        self._load(self._registry.load(), generations)
        return True

    def _load(self, found: Definitions, generations: dict[Any, int]) -> None:
        self._entities, self._views, self._services = found.entities, found.views, found.services
        self._generations = dict(generations)

    def delete(self, kind: str, name: str) -> None:
        """Remove a definition, and a view's rows from the online store (when there is one).

        Args:
            kind: ``Entity``, ``FeatureView`` or ``FeatureService``.
            name: Its name.

        Raises:
            InvalidInput: ``kind`` is not one of those.
            NotFound: There is no such definition.
            Conflict: A view uses the entity, or a service the view.
        """
        registries: dict[str, tuple[dict[str, Any], str]] = {
            "Entity": (self._entities, "entity"),
            "FeatureView": (self._views, "feature view"),
            "FeatureService": (self._services, "feature service"),
        }
        if kind not in registries:
            raise InvalidInput(f"kind {kind!r}: expected Entity, FeatureView or FeatureService")
        known, text = registries[kind]
        _lookup(known, name, text)
        if self._registry is not None:
            self._registry.delete(kind, name)  # type: ignore[arg-type]  # checked above
            self.refresh()
        else:
            users = _users_in_memory(kind, name, self._views, self._services)
            if users:
                raise Conflict(
                    f"{text} {name!r} is used by {', '.join(users)}: delete or change those first"
                )
            del known[name]
            self._materialized.pop(name, None)
        if kind == "FeatureView" and (self._online is not None or self._online_config):
            self.online_store().delete_view(name)

    def get_entity(self, name: str) -> Entity:
        """The applied entity called ``name``; raises NotFound if there is none."""
        return _lookup(self._entities, name, "entity")

    def get_feature_view(self, name: str) -> FeatureView:
        """The applied feature view called ``name``; raises NotFound if there is none."""
        return _lookup(self._views, name, "feature view")

    def get_feature_service(self, name: str) -> FeatureService:
        """The applied feature service called ``name``; raises NotFound if there is none."""
        return _lookup(self._services, name, "feature service")

    def list_entities(self) -> list[Entity]:
        """The applied entities, by name."""
        return [self._entities[n] for n in sorted(self._entities)]

    def list_feature_views(self) -> list[FeatureView]:
        """The applied feature views, by name."""
        return [self._views[n] for n in sorted(self._views)]

    def list_feature_services(self) -> list[FeatureService]:
        """The applied feature services, by name."""
        return [self._services[n] for n in sorted(self._services)]

    def get_historical_features(
        self,
        entity_df: pa.Table | Any,
        features: Sequence[str] | FeatureService,
        full_feature_names: bool = False,
        *,
        timestamp_column: str = DEFAULT_TIMESTAMP_COLUMN,
    ) -> RetrievalJob:
        """Point-in-time correct feature values for each entity row, for training.

        For an entity row at time ``T``, a feature row qualifies when it has the same join keys
        and ``T - ttl <= event_ts <= T`` (no lower bound when the view's ttl is zero); the
        latest ``event_ts`` wins, then the latest created timestamp. Every entity row appears
        once, in the input order, with its columns unchanged (duplicates stay duplicated);
        features are null where no row qualifies. Naive timestamps are taken as UTC.

        Args:
            entity_df: A ``pyarrow.Table`` (or pandas DataFrame) with the views' join keys and
                the time column.
            features: ``"view:feature"`` references, or a feature service.
            full_feature_names: Name result columns ``view__feature`` instead of ``feature``.
            timestamp_column: The entity frame's time column.

        Returns:
            The job; ``to_arrow()`` or ``to_df()`` runs it.

        Raises:
            InvalidInput: A malformed reference, an entity frame without a needed column, or
                result columns with the same name.
            NotFound: An unknown view or feature.
        """
        refs = _feature_refs(features)
        table = entity_table(entity_df)
        selections, order = self._select(refs, full_feature_names)
        check_entity_frame(table, timestamp_column, selections)
        with_rows = table.append_column(
            _pit.ROW_COLUMN, pa.array(np.arange(table.num_rows, dtype=np.int64))
        )
        return RetrievalJob(
            with_rows,
            table.column_names,
            timestamp_column,
            selections,
            feature_columns=order,
            duckdb_config=self._duckdb_config,
        )

    def close(self) -> None:
        """Close the online store and registry if this store opened them. Idempotent."""
        if self._online is not None and self._online_config is not None:
            self._online.close()
            self._online = None
        if self._registry is not None and self._owns_registry:
            self._registry.close()
            self._registry = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def online_store(self) -> OnlineStore:
        """The online store, opened on first use.

        Raises:
            ConfigError: No online store is configured.
        """
        if self._online is None and self._online_config is not None:
            with self._opening:  # two threads' first reads open one store
                if self._online is None:
                    self._online = open_online_store(self._online_config)
        if self._online is None:
            raise ConfigError(
                "this FeatureStore has no online store: pass online_store=SqliteOnlineStoreConfig"
                "(path='online.db') (or a RedisOnlineStoreConfig, or an open OnlineStore)"
            )
        return self._online

    def materialize(
        self,
        start_date: datetime,
        end_date: datetime,
        views: Sequence[str] | None = None,
        *,
        progress: bool | None = None,
        chunk_rows: int = 10_000,
    ) -> MaterializeSummary:
        """Copy the newest row per entity with an event time in ``[start, end]`` online.

        DuckDB reads each source and ``chunk_rows`` rows are written at a time; the online
        store keeps the newest row per entity, so re-running or an older window is harmless.

        Args:
            start_date: The window's first instant (inclusive; naive is UTC).
            end_date: The window's last instant (inclusive; naive is UTC).
            views: The views to materialise; by default every view with ``online=True``.
            progress: Show a progress display on stderr; by default only on a terminal.
            chunk_rows: Rows read and written at a time.

        Returns:
            The rows read and applied per view.

        Raises:
            InvalidInput: ``start_date`` is after ``end_date``, a view is not online, or
                ``chunk_rows`` is below 1.
            NotFound: An unknown view, or a missing source.
            ConfigError: No online store is configured, or a view does not match its source.
        """
        start, end = as_utc(start_date, "start_date"), as_utc(end_date, "end_date")
        if start > end:
            raise InvalidInput(f"start_date {start} is after end_date {end}")
        return self._materialize(
            {v.name: start for v in online_views(self._views, views)}, end, progress, chunk_rows
        )

    def materialize_incremental(
        self,
        end_date: datetime,
        views: Sequence[str] | None = None,
        *,
        progress: bool | None = None,
        chunk_rows: int = 10_000,
    ) -> MaterializeSummary:
        """Materialise each view from where its last materialisation ended to ``end_date``.

        A view materialised before starts at that run's end (kept in the registry, or in this
        object without one), others at ``end_date - ttl``, or at the beginning of their data
        when the ttl is zero.

        Args:
            end_date: The window's last instant (inclusive; naive is UTC).
            views: As for :meth:`materialize`.
            progress: As for :meth:`materialize`.
            chunk_rows: As for :meth:`materialize`.

        Returns:
            The rows read and applied per view.

        Raises:
            InvalidInput: A view's last end is after ``end_date``, or a view is not online.
            NotFound: An unknown view, or a missing source.
            ConfigError: No online store is configured, or a view does not match its source.
        """
        end = as_utc(end_date, "end_date")
        ends = self._registry.materialized() if self._registry is not None else self._materialized
        starts: dict[str, datetime | None] = {}
        for view in online_views(self._views, views):
            last = ends.get(view.name)
            if last is not None and last > end:
                raise InvalidInput(
                    f"view {view.name!r} was materialised up to {last}, after end_date {end}"
                )
            if last is None and view.ttl > timedelta(0):
                last = end - view.ttl
            starts[view.name] = last
        return self._materialize(starts, end, progress, chunk_rows)

    def _materialize(
        self,
        starts: dict[str, datetime | None],
        end: datetime,
        progress: bool | None,
        chunk_rows: int,
    ) -> MaterializeSummary:
        summary = materialize_views(
            self.online_store(),
            [(self._views[name], start) for name, start in starts.items()],
            end,
            duckdb_config=self._duckdb_config,
            progress=progress,
            chunk_rows=chunk_rows,
            ends=self._materialized,
        )
        if self._registry is not None:
            self._registry.record_materialized({v: end for v in starts}, summary.rows)
        return summary

    def push(
        self,
        push_source_name: str,
        df: pa.Table | Any,
        allow_registry_cache: bool = True,
        to: PushMode = PushMode.ONLINE,
    ) -> PushSummary:
        """Write rows to the views fed by a push source: online, offline or both (Feast's push).

        Online, each view with ``online=True`` gets the newest pushed row per entity, unless the
        online store holds a newer one. Offline, the rows are appended to the push source's
        batch source: a new Parquet part file in the folder of a ``dir/*.parquet`` glob
        (written under a temporary name, then renamed), or ``COPY`` into a PostgreSQL table.
        Offline is written first; nothing is written unless every check passes.

        Args:
            push_source_name: The push source's name.
            df: The rows: a ``pyarrow.Table``, pandas DataFrame or dict of lists, with the
                views' join keys, the batch source's time columns and the features.
            allow_registry_cache: When False, re-read the definitions from the registry
                first.
            to: ``PushMode.ONLINE`` (the default), ``OFFLINE`` or ``ONLINE_AND_OFFLINE``.

        Returns:
            The rows pushed, applied online per view, and where they were appended.

        Raises:
            InvalidInput: The rows do not fit the views or the batch source, or ``to`` is not
                a PushMode.
            NotFound: No view is fed by the push source.
            ConfigError: An online push without an online store, or a batch source a push
                cannot append to (a single file, CSV, a query).
            ServiceUnavailable: A PostgreSQL batch source's server cannot be reached.
        """
        mode = check_mode(to)
        if not allow_registry_cache:
            self.refresh()
        views = push_views(self._views, push_source_name)
        table = as_table(df)
        online = None if mode is PushMode.OFFLINE else self.online_store()
        return push_rows(
            online, views, table, mode, duckdb_config=self._duckdb_config, clock=self._clock
        )

    def get_online_features(
        self,
        features: Sequence[str] | FeatureService,
        entity_rows: Sequence[dict[str, Any]] | dict[str, Sequence[Any]],
        full_feature_names: bool = False,
        *,
        now: datetime | None = None,
    ) -> OnlineResponse:
        """The latest materialised feature values of entities, for serving.

        A value older than its view's ttl at ``now`` is null with status ``OUTSIDE_MAX_AGE``,
        so, where the online store holds the row the offline store would pick, this equals
        :meth:`get_historical_features` at ``now``.

        Args:
            features: ``"view:feature"`` references, or a feature service.
            entity_rows: Dicts of join-key values (``[{"user_id": 1}]``), or a dict of lists.
            full_feature_names: Name result columns ``view__feature`` instead of ``feature``.
            now: The instant the read is for (naive is UTC); by default the clock's now.

        Returns:
            The response: ``to_dict()`` gives columns, ``statuses`` each value's status.

        Raises:
            InvalidInput: A malformed reference, an entity row without a needed join key or
                with a key value that is not str or int, or result columns with one name.
            NotFound: An unknown view or feature.
            ConfigError: No online store is configured.
        """
        refs = _feature_refs(features)
        selections, _ = self._select(refs, full_feature_names)
        at = as_utc(self._clock() if now is None else now, "now")
        return read_online(self.online_store(), selections, entity_rows, at)

    def _select(
        self, refs: list[str], full_names: bool
    ) -> tuple[list[_pit.ViewSelection], list[str]]:
        by_view: dict[str, list[tuple[Field, str]]] = {}
        order: list[str] = []
        for ref in refs:
            parts = ref.split(":")
            if len(parts) != 2 or not all(parts):
                raise InvalidInput(f"feature reference {ref!r}: expected 'view:feature'")
            view = self.get_feature_view(parts[0])
            field = view.feature(parts[1])
            name = f"{view.name}__{field.name}" if full_names else field.name
            if name in order:
                raise InvalidInput(
                    f"two requested features are both named {name!r} in the result: request "
                    "each once, or pass full_feature_names=True"
                )
            order.append(name)
            by_view.setdefault(view.name, []).append((field, name))
        selections = [_pit.ViewSelection(self._views[v], tuple(fs)) for v, fs in by_view.items()]
        return selections, order


def _feature_refs(features: Sequence[str] | FeatureService) -> list[str]:
    refs = features.feature_refs() if isinstance(features, FeatureService) else list(features)
    if not refs or any(not isinstance(r, str) for r in refs):
        raise InvalidInput("features: expected at least one feature reference ('view:feature')")
    return refs


def _lookup(registry: dict[str, _T], name: str, kind: str) -> _T:
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise NotFound(f"{kind} {name!r} does not exist; known: {known}")
    return registry[name]


def _users_in_memory(
    kind: str, name: str, views: dict[str, FeatureView], services: dict[str, FeatureService]
) -> list[str]:
    if kind == "Entity":
        return [
            f"feature view {v!r}"
            for v, view in views.items()
            if any(e.name == name for e in view.entities)
        ]
    if kind == "FeatureView":
        return [
            f"feature service {s!r}"
            for s, service in services.items()
            if any(p.name == name for p in service.projections)
        ]
    return []


def _check_entities(view: FeatureView, entities: dict[str, Entity]) -> None:
    for entity in view.entities:
        applied = entities.get(entity.name)
        if applied is None:
            raise NotFound(
                f"feature view {view.name!r} uses entity {entity.name!r}, which is not applied"
            )
        if applied.join_keys != entity.join_keys:
            raise ConfigError(
                f"feature view {view.name!r} uses entity {entity.name!r} with join keys "
                f"{entity.join_keys}, but the applied entity has {applied.join_keys}"
            )
