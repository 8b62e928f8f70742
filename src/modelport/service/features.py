"""The feature store as the CLI, the control plane and its jobs use it: checked and audited.

:class:`FeatureStoreService` wraps one :class:`~modelport.features.FeatureStore` on the
metadata database's registry and the installation's online store
(``MODELPORT_FEATURES__ONLINE_STORE``). Definitions arrive as documents (``modelport apply -f``,
``PUT /v1/featureviews/{name}``) or as Python objects (``modelport features apply REPO``); every
document of a request is validated, and what it names resolved, before anything is written,
and each apply, delete and materialisation is written to the audit log with what changed.

:func:`describe_definition` is a stored definition as plain data, the one shape the CLI's
``--output json`` and the API both return.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from modelport.core.documents import Document, changes
from modelport.core.errors import InvalidInput
from modelport.features import Entity, FeatureService, FeatureStore, FeatureView
from modelport.features.documents import (
    KINDS,
    Definition,
    DefinitionKind,
    document_kind,
    kind_of,
    parse_definition,
    to_document,
)
from modelport.features.materialize import MaterializeSummary
from modelport.features.registry import FeatureRegistry, StoredDefinition
from modelport.service.access import AuditSink, audit_text, run_audited

__all__ = [
    "FeatureStoreService",
    "definitions_from_documents",
    "describe_definition",
    "describe_summary",
    "kind_of_plural",
]

_PLURALS: dict[str, DefinitionKind] = {
    "entities": "Entity",
    "featureviews": "FeatureView",
    "featureservices": "FeatureService",
}


def kind_of_plural(plural: str) -> DefinitionKind:
    """The kind a URL's or command's plural names (``featureviews`` -> ``FeatureView``).

    Raises:
        InvalidInput: It names none.
    """
    kind = _PLURALS.get(plural.lower())
    if kind is None:
        raise InvalidInput(f"{plural!r}: expected one of {', '.join(_PLURALS)}")
    return kind


def describe_definition(stored: StoredDefinition) -> dict[str, Any]:
    """A stored definition as the API and ``--output json`` show it (JSON-ready)."""
    return {
        "kind": stored.kind,
        "name": stored.name,
        "generation": stored.generation,
        "createdAt": stored.created_at.isoformat(),
        "createdBy": stored.created_by,
        "updatedAt": stored.updated_at.isoformat(),
        "updatedBy": stored.updated_by,
        "document": stored.document(),
    }


def describe_summary(summary: MaterializeSummary) -> dict[str, Any]:
    """What a materialisation did, JSON-ready: per view its window, rows read and applied."""
    return {
        "end": summary.end.isoformat(),
        "views": {
            view: {
                "start": None if start is None else start.isoformat(),
                "rows": summary.rows[view],
                "applied": summary.applied[view],
            }
            for view, start in summary.start.items()
        },
    }


def definitions_from_documents(
    documents: Sequence[Document], store: FeatureStore
) -> list[Definition]:
    """Build the definitions of documents, resolving names among them and the applied ones.

    Entities are built first, then views (which may name the entities of the same batch), then
    services.

    Raises:
        InvalidInput: A document is not a valid definition (the message names it and the
            field), or a kind and name appear twice.
        NotFound: A view names an unknown entity, or a service an unknown view or feature.
    """
    entities: dict[str, Entity] = {e.name: e for e in store.list_entities()}
    views: dict[str, FeatureView] = {v.name: v for v in store.list_feature_views()}
    numbered = [(n, doc, document_kind(doc, n)) for n, doc in enumerate(documents, start=1)]
    built: list[Definition] = []
    seen: set[tuple[str, str]] = set()
    for kind in KINDS:
        for number, document, doc_kind in numbered:
            if doc_kind != kind:
                continue
            try:
                definition = parse_definition(document, entities, views)
            except InvalidInput as exc:
                raise InvalidInput(f"document {number}: {exc.message}") from None
            if (kind, definition.name) in seen:
                raise InvalidInput(
                    f"{kind} {definition.name!r} is given more than once; give it once"
                )
            seen.add((kind, definition.name))
            if isinstance(definition, Entity):
                entities[definition.name] = definition
            elif isinstance(definition, FeatureView):
                views[definition.name] = definition
            built.append(definition)
    return built


class FeatureStoreService:
    """Feature definitions, materialisation and online reads, audited.

    Args:
        store: The feature store on the platform's registry and online store.
        audit: Where every change is recorded; ``None`` records nothing.
    """

    def __init__(self, store: FeatureStore, audit: AuditSink | None) -> None:
        self.store = store
        self._audit = audit

    def apply_documents(
        self, documents: Sequence[Document], actor: str, *, request_id: str | None = None
    ) -> list[StoredDefinition]:
        """Validate every document, then apply them all (or, on an error, none).

        Raises:
            InvalidInput: A document is not a valid definition.
            NotFound: A name it uses is neither applied nor in ``documents``.
        """
        self.store.refresh()
        return self.apply(definitions_from_documents(documents, self.store), actor, request_id)

    def apply(
        self, definitions: Sequence[Definition], actor: str, request_id: str | None = None
    ) -> list[StoredDefinition]:
        """Apply built definitions (all or none), audited with what each changed.

        Returns:
            Each definition as now stored, in the order given.

        Raises:
            InvalidInput: No definitions.
            NotFound: A name they use is not applied.
            ConfigError: Two share a kind and a name.
        """
        if not definitions:
            raise InvalidInput("nothing to apply: expected Entity, FeatureView or FeatureService")
        self.store.refresh()
        before = {(kind_of(d), d.name): self._current(kind_of(d), d.name) for d in definitions}
        names = ", ".join(f"{kind_of(d)}/{d.name}" for d in definitions)

        def work() -> tuple[list[StoredDefinition], dict[str, Any]]:
            self.store.apply(definitions, actor=actor)
            stored = [self.get(kind_of(d), d.name) for d in definitions]
            details = {
                f"{s.kind}/{s.name}": {
                    "generation": s.generation,
                    "changes": changes(before[(s.kind, s.name)], s.document()),
                }
                for s in stored
            }
            return stored, details

        return run_audited(
            self._audit, actor, "features.apply", audit_text(names), work, request_id
        )

    def get(self, kind: DefinitionKind, name: str) -> StoredDefinition:
        """The stored definition of ``kind`` called ``name``.

        Raises:
            NotFound: There is none.
        """
        return self._registry().get(kind, name)

    def list(self, kind: DefinitionKind) -> list[StoredDefinition]:
        """Every stored definition of ``kind``, by name."""
        return self._registry().list(kind)

    def delete(
        self, kind: DefinitionKind, name: str, actor: str, *, request_id: str | None = None
    ) -> StoredDefinition:
        """Remove a definition nothing uses (and a view's online rows), audited.

        Raises:
            NotFound: There is none.
            Conflict: A view uses the entity, or a service the view.
        """
        self.store.refresh()

        def work() -> tuple[StoredDefinition, dict[str, Any]]:
            stored = self.get(kind, name)
            self.store.delete(kind, name)
            return stored, {"kind": kind, "generation": stored.generation}

        return run_audited(
            self._audit, actor, "features.delete", audit_text(f"{kind}/{name}"), work, request_id
        )

    def materialize(
        self,
        actor: str,
        *,
        start: datetime | None,
        end: datetime,
        views: Sequence[str] | None = None,
        progress: bool | None = False,
        chunk_rows: int = 10_000,
        request_id: str | None = None,
    ) -> MaterializeSummary:
        """Copy the newest rows into the online store, audited.

        Args:
            actor: Who runs it.
            start: The window's first instant; ``None``: each view from where it last ended
                (``materialize_incremental``).
            end: The window's last instant.
            views: The views; by default every online view.
            progress: Show a progress display.
            chunk_rows: Rows read and written at a time.
            request_id: The request the audit entries belong to.

        Raises:
            InvalidInput: A bad window or view (see ``FeatureStore.materialize``).
            NotFound: An unknown view or a missing source.
        """
        self.store.refresh()
        target = audit_text(", ".join(views) if views else "all online views")

        def work() -> tuple[MaterializeSummary, dict[str, Any]]:
            if start is None:
                summary = self.store.materialize_incremental(
                    end, views, progress=progress, chunk_rows=chunk_rows
                )
            else:
                summary = self.store.materialize(
                    start, end, views, progress=progress, chunk_rows=chunk_rows
                )
            return summary, describe_summary(summary)

        return run_audited(self._audit, actor, "features.materialize", target, work, request_id)

    def _current(self, kind: DefinitionKind, name: str) -> dict[str, Any] | None:
        found: dict[str, Entity] | dict[str, FeatureView] | dict[str, FeatureService]
        if kind == "Entity":
            found = {e.name: e for e in self.store.list_entities()}
        elif kind == "FeatureView":
            found = {v.name: v for v in self.store.list_feature_views()}
        else:
            found = {s.name: s for s in self.store.list_feature_services()}
        current = found.get(name)
        return None if current is None else to_document(current)

    def _registry(self) -> FeatureRegistry:
        registry = self.store.registry
        if registry is None:
            raise InvalidInput("this feature store keeps its definitions in memory only")
        return registry

    def push(
        self,
        actor: str,
        push_source_name: str,
        rows: Any,
        to: str = "online",
        *,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Push rows to the views fed by a push source (``FeatureStore.push``), audited.

        Args:
            actor: Who pushes.
            push_source_name: The push source's name.
            rows: A pyarrow Table, pandas DataFrame or dict of column -> values.
            to: ``online``, ``offline`` or ``online_and_offline`` (Feast's names).
            request_id: The request the audit entries belong to.

        Returns:
            What was written, JSON-ready: ``pushSourceName``, ``rows``, ``applied`` (per online
            view, the rows the online store took) and ``offline`` (where the rows were
            appended, or ``None``).

        Raises:
            InvalidInput: ``to`` is not one of those, or the rows do not fit the views.
            NotFound: No view is fed by the push source.
            ConfigError: A batch source a push cannot append to.
            ServiceUnavailable: A PostgreSQL batch source cannot be reached.
        """
        from modelport.features.push import PushMode  # the one use, kept beside it

        modes = {mode.name.lower(): mode for mode in PushMode}
        if to not in modes:
            raise InvalidInput(f"to is {to!r}: expected {', '.join(modes)}")
        self.store.refresh()

        def work() -> tuple[dict[str, Any], dict[str, Any]]:
            summary = self.store.push(push_source_name, rows, to=modes[to])
            described = {
                "pushSourceName": push_source_name,
                "to": to,
                "rows": summary.rows,
                "applied": dict(summary.applied),
                "offline": summary.offline,
            }
            return described, described

        return run_audited(
            self._audit, actor, "features.push", audit_text(push_source_name), work, request_id
        )
