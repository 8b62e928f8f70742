"""``FeatureStore``: the registry of definitions and historical (point-in-time) retrieval.

The registry is in memory: :meth:`FeatureStore.apply` validates a batch of definitions (unique
names, every referenced entity and view known) and applies all or nothing. Retrieval builds a
:class:`~modelport.features.offline.RetrievalJob`; the online store and materialisation are
separate parts, added beside these.

Timestamps are instants in UTC throughout: naive values (in the entity frame or in sources) are
taken as UTC, values with a time zone are converted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from modelport.core.errors import ConfigError, InvalidInput, NotFound
from modelport.features import _pit
from modelport.features.definitions import (
    RESERVED_PREFIX,
    Entity,
    FeatureService,
    FeatureView,
    Field,
)
from modelport.features.offline import RetrievalJob

__all__ = ["DEFAULT_TIMESTAMP_COLUMN", "FeatureStore"]

#: The entity frame's time column, as in Feast.
DEFAULT_TIMESTAMP_COLUMN = "event_timestamp"

Definition = Entity | FeatureView | FeatureService
_T = TypeVar("_T")


class FeatureStore:
    """Feature definitions and retrieval of training data.

    Args:
        objects: Definitions to apply at once (as :meth:`apply`).
        duckdb_config: Settings for the offline store's DuckDB connections, such as
            ``{"threads": 4, "memory_limit": "4GB", "temp_directory": "/tmp/x"}``.
    """

    def __init__(
        self,
        objects: Iterable[Definition] = (),
        *,
        duckdb_config: dict[str, str | int] | None = None,
    ) -> None:
        self._entities: dict[str, Entity] = {}
        self._views: dict[str, FeatureView] = {}
        self._services: dict[str, FeatureService] = {}
        self._duckdb_config = dict(duckdb_config or {})
        objects = list(objects)
        if objects:
            self.apply(objects)

    def apply(self, objects: Iterable[Definition]) -> None:
        """Register or replace definitions by name; all of them or, on an error, none.

        Args:
            objects: Entities, feature views and feature services.

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
        self._entities = entities
        self._views = views
        self._services.update(staged[FeatureService])

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
        refs = features.feature_refs() if isinstance(features, FeatureService) else list(features)
        if not refs or any(not isinstance(r, str) for r in refs):
            raise InvalidInput("features: expected at least one feature reference ('view:feature')")
        table = _entity_table(entity_df)
        selections, order = self._select(refs, full_feature_names)
        _check_entity_frame(table, timestamp_column, selections)
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


def _lookup(registry: dict[str, _T], name: str, kind: str) -> _T:
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise NotFound(f"{kind} {name!r} does not exist; known: {known}")
    return registry[name]


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


def _entity_table(entity_df: Any) -> pa.Table:
    if isinstance(entity_df, pa.Table):
        return entity_df
    if type(entity_df).__module__.split(".")[0] == "pandas":
        return pa.Table.from_pandas(entity_df, preserve_index=False)
    raise InvalidInput(
        f"entity_df is a {type(entity_df).__name__}: expected a pyarrow.Table or a pandas DataFrame"
    )


def _check_entity_frame(
    table: pa.Table, timestamp_column: str, selections: list[_pit.ViewSelection]
) -> None:
    names = table.column_names
    for name in names:
        if name.startswith(RESERVED_PREFIX):
            raise InvalidInput(
                f"entity frame column {name!r}: names starting {RESERVED_PREFIX!r} are reserved"
            )
    if timestamp_column not in names:
        raise InvalidInput(
            f"the entity frame has no {timestamp_column!r} column: expected the rows' times there"
        )
    ts_type = table.schema.field(timestamp_column).type
    if not (pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type)):
        raise InvalidInput(
            f"entity frame column {timestamp_column!r} is {ts_type}: expected a timestamp or date"
        )
    for sel in selections:
        for key in sel.view.join_keys:
            if key not in names:
                raise InvalidInput(
                    f"the entity frame has no join key {key!r}, needed by feature view "
                    f"{sel.view.name!r}"
                )
        for _, out in sel.features:
            if out in names:
                raise InvalidInput(
                    f"the entity frame already has a column {out!r}, the name of a requested "
                    "feature: rename it, or pass full_feature_names=True"
                )
