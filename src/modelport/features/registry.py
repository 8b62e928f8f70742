"""The feature registry: definitions and materialisation state in the metadata database.

Entities, feature views and feature services are kept as their documents
(:mod:`.documents`), one :class:`~modelport.db.DocumentTable` per kind, so applying is
idempotent (an equal document changes nothing and keeps the generation) and readers notice a
change by comparing generations (:meth:`FeatureRegistry.generations`). Where each view's last
materialisation ended is kept beside them, so ``materialize_incremental`` continues where any
process left off.

The registry checks what a document says about itself and what it names: a view's entities
and a service's views must be applied (or in the same apply), and an entity or view still used
cannot be deleted. That a source's files exist is checked when they are read, not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select, update

from modelport import db
from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import Conflict, InvalidInput, NotFound
from modelport.core.errors import IntegrityError as CorruptData
from modelport.features._schema import (
    MIGRATIONS,
    feature_entities,
    feature_materializations,
    feature_services,
    feature_views,
)
from modelport.features.definitions import Entity, FeatureService, FeatureView
from modelport.features.documents import (
    KINDS,
    Definition,
    DefinitionKind,
    document_kind,
    kind_of,
    parse_definition,
    to_document,
)

__all__ = ["Definitions", "FeatureRegistry", "StoredDefinition"]

_TABLES: dict[DefinitionKind, Table] = {
    "Entity": feature_entities,
    "FeatureView": feature_views,
    "FeatureService": feature_services,
}
_KIND_TEXT = {
    "Entity": "entity",
    "FeatureView": "feature view",
    "FeatureService": "feature service",
}


@dataclass(frozen=True, slots=True)
class _Doc:
    """A definition's document as its table keeps it."""

    kind: DefinitionKind
    name: str
    body: dict[str, Any]

    def document(self) -> dict[str, Any]:
        return self.body


@dataclass(frozen=True, slots=True)
class StoredDefinition:
    """A definition's document as stored, with who made it and who changed it last."""

    doc: _Doc
    generation: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    @property
    def kind(self) -> DefinitionKind:
        """``Entity``, ``FeatureView`` or ``FeatureService``."""
        return self.doc.kind

    @property
    def name(self) -> str:
        """The definition's name."""
        return self.doc.name

    def document(self) -> dict[str, Any]:
        """The stored document."""
        return self.doc.body


@dataclass(frozen=True, slots=True)
class Definitions:
    """Every applied definition, built, by kind and name; and their generations."""

    entities: dict[str, Entity]
    views: dict[str, FeatureView]
    services: dict[str, FeatureService]
    stored: dict[tuple[DefinitionKind, str], StoredDefinition]


def _parser(kind: DefinitionKind) -> Any:
    def parse(raw: object) -> _Doc:
        if document_kind(raw) != kind or not isinstance(raw, dict):
            raise InvalidInput(f"expected a {kind} document")
        name = raw.get("metadata", {}).get("name")
        if not isinstance(name, str):
            raise InvalidInput("metadata.name: expected a string")
        return _Doc(kind, name, raw)

    return parse


class FeatureRegistry(db.MigratedDatabase):
    """Feature definitions and materialisation state, migrated on open.

    Args:
        url: SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DB``.
        clock: Source of the creation and change times.

    Raises:
        ConfigError: The URL is unsupported or the database cannot be reached.
        DependencyMissing: The PostgreSQL driver is not installed.
    """

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        super().__init__(url, MIGRATIONS)
        self._clock = clock or SystemClock()
        self._tables: dict[DefinitionKind, db.DocumentTable[_Doc, StoredDefinition]] = {
            kind: db.DocumentTable(self._engine, table, _KIND_TEXT[kind], _parser(kind), _stored)
            for kind, table in _TABLES.items()
        }

    def generations(self) -> dict[tuple[DefinitionKind, str], int]:
        """Each definition's generation by kind and name: what readers poll to see changes."""
        return {
            (kind, name): generation
            for kind in KINDS
            for name, generation in self._tables[kind].generations().items()
        }

    def load(self) -> Definitions:
        """Every applied definition, built (entities, then views, then services).

        Raises:
            IntegrityError: A stored document is not valid any more.
        """
        stored = {(s.kind, s.name): s for kind in KINDS for s in self._tables[kind].list()}
        entities: dict[str, Entity] = {}
        views: dict[str, FeatureView] = {}
        services: dict[str, FeatureService] = {}
        for (kind, name), record in stored.items():
            built = _built(record, entities, views)
            if kind == "Entity":
                entities[name] = built  # type: ignore[assignment]  # the kind says which
            elif kind == "FeatureView":
                views[name] = built  # type: ignore[assignment]
            else:
                services[name] = built  # type: ignore[assignment]
        return Definitions(entities, views, services, stored)

    def apply(
        self, definitions: Sequence[Definition], actor: str
    ) -> list[db.Applied[_Doc, StoredDefinition]]:
        """Store each definition (entities first, then views, then services).

        The caller has checked that what each names exists (``FeatureStore.apply`` does).

        Args:
            definitions: Built definitions.
            actor: Who applies them (recorded as creator or last changer).

        Raises:
            Conflict: Another writer created the same definition at the same moment.
        """
        now = self._clock.now()
        order = sorted(definitions, key=lambda d: KINDS.index(kind_of(d)))
        applied = []
        for definition in order:
            kind = kind_of(definition)
            doc = _Doc(kind, definition.name, to_document(definition))
            applied.append(self._tables[kind].apply(doc, actor, now))
        return applied

    def get(self, kind: DefinitionKind, name: str) -> StoredDefinition:
        """The stored document of the ``kind`` called ``name``.

        Raises:
            NotFound: There is none.
        """
        return self._tables[kind].get(name)

    def list(self, kind: DefinitionKind) -> list[StoredDefinition]:
        """Every stored document of ``kind``, by name."""
        return self._tables[kind].list()

    def delete(self, kind: DefinitionKind, name: str) -> StoredDefinition:
        """Remove a definition nothing uses any more; return what was stored.

        Raises:
            NotFound: There is none.
            Conflict: A view uses the entity, or a service the view.
        """
        users = _users(kind, name, self.load())
        if users:
            raise Conflict(
                f"{_KIND_TEXT[kind]} {name!r} is used by {', '.join(users)}: delete or change "
                "those first"
            )
        removed = self._tables[kind].delete(name)
        if kind == "FeatureView":
            with db.write(self._engine) as conn:
                conn.execute(
                    feature_materializations.delete().where(feature_materializations.c.view == name)
                )
        return removed

    def materialized(self) -> dict[str, datetime]:
        """Per view, the end of the latest window materialised."""
        with db.read(self._engine) as conn:
            rows = conn.execute(
                select(
                    feature_materializations.c.view, feature_materializations.c.materialized_until
                )
            ).all()
        return {row.view: row.materialized_until for row in rows}

    def record_materialized(self, ends: Mapping[str, datetime], rows: Mapping[str, int]) -> None:
        """Record where each view's materialisation ended; an earlier end never replaces a later.

        Args:
            ends: Per view, the end of the window just materialised.
            rows: Per view, the rows that window read.
        """
        now = self._clock.now()
        table = feature_materializations
        with db.write(self._engine) as conn:
            for view, end in ends.items():
                current = conn.execute(
                    select(table.c.materialized_until, table.c.rows)
                    .where(table.c.view == view)
                    .with_for_update()
                ).one_or_none()
                if current is None:
                    conn.execute(
                        insert(table).values(
                            view=view,
                            materialized_until=end,
                            rows=rows.get(view, 0),
                            updated_at=now,
                        )
                    )
                else:
                    conn.execute(
                        update(table)
                        .where(table.c.view == view)
                        .values(
                            materialized_until=max(end, current.materialized_until),
                            rows=current.rows + rows.get(view, 0),
                            updated_at=now,
                        )
                    )


def _stored(
    doc: _Doc,
    generation: int,
    created_at: datetime,
    created_by: str,
    updated_at: datetime,
    updated_by: str,
) -> StoredDefinition:
    return StoredDefinition(doc, generation, created_at, created_by, updated_at, updated_by)


def _built(
    record: StoredDefinition, entities: Mapping[str, Entity], views: Mapping[str, FeatureView]
) -> Definition:
    try:
        return parse_definition(record.document(), entities, views)
    except (InvalidInput, NotFound) as exc:
        raise CorruptData(
            f"the stored {_KIND_TEXT[record.kind]} {record.name!r} is not valid: {exc.message}"
        ) from None


def _users(kind: DefinitionKind, name: str, current: Definitions) -> list[str]:
    if kind == "Entity":
        return [
            f"feature view {v.name!r}"
            for v in current.views.values()
            if any(e.name == name for e in v.entities)
        ]
    if kind == "FeatureView":
        return [
            f"feature service {s.name!r}"
            for s in current.services.values()
            if any(p.name == name for p in s.projections)
        ]
    return []
