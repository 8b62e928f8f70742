"""Applying, reading and deleting deployments: validation, registry checks and the audit trail.

:meth:`DeploymentService.apply` takes every document of a file (or request) and validates them
all before it writes anything: each must be a valid Deployment, names must not repeat, and each
variant's model must be registered (a pinned version that exists and is active, or an alias
that exists). Then each is applied with its audit entries: ``started`` before the write (an
apply whose entry cannot be written is not performed) and ``ok`` after it with the generation
and the changes (``spec.variants[1].weight: 10 -> 50``), or ``failed`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from modelport.core.deployment import Deployment, parse_deployment
from modelport.core.documents import Document, changes
from modelport.core.errors import InvalidInput, ModelportError, NotFound
from modelport.experiments.store import Applied, DeploymentStore, StoredDeployment
from modelport.registry import MetadataStore
from modelport.service.access import AuditSink, audit_text, new_request_id

__all__ = ["DeploymentService"]

T = TypeVar("T")


class DeploymentService:
    """Deployments as the CLI and the control plane change them.

    Args:
        store: Where deployments are kept.
        registry: Where the variants' models must be registered.
        audit: Where every change is recorded; ``None`` records nothing.
    """

    def __init__(
        self, store: DeploymentStore, registry: MetadataStore, audit: AuditSink | None
    ) -> None:
        self.store = store
        self._registry = registry
        self._audit = audit

    def apply(self, documents: Sequence[Document], actor: str) -> list[Applied]:
        """Validate every document, then create or replace each deployment.

        Args:
            documents: Parsed YAML or JSON documents (``load_documents``).
            actor: Who applies them.

        Raises:
            InvalidInput: A document is not a valid Deployment, or two have the same name
                (nothing is written).
            NotFound: A variant's model, version or alias is not registered (nothing is written).
        """
        deployments = [_parsed(doc, number) for number, doc in enumerate(documents, start=1)]
        names = [d.name for d in deployments]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InvalidInput(f"deployment {repeated[0]!r} is given more than once; give it once")
        for deployment in deployments:
            self._check_models(deployment)
        return [self._apply(deployment, actor) for deployment in deployments]

    def get(self, name: str) -> StoredDeployment:
        """The deployment called ``name``.

        Raises:
            NotFound: There is none.
        """
        return self.store.get(name)

    def list(self) -> list[StoredDeployment]:
        """Every deployment, by name."""
        return self.store.list()

    def delete(self, name: str, actor: str) -> StoredDeployment:
        """Remove the deployment called ``name``, audited; return what was stored.

        Raises:
            NotFound: There is none.
        """

        def work() -> tuple[StoredDeployment, dict[str, Any]]:
            removed = self.store.delete(name)
            return removed, {"generation": removed.generation}

        return self._audited(actor, "deployment.delete", name, work)

    def _apply(self, deployment: Deployment, actor: str) -> Applied:
        def work() -> tuple[Applied, dict[str, Any]]:
            applied = self.store.apply(deployment, actor)
            before = applied.previous.document() if applied.previous is not None else None
            return applied, {
                "generation": applied.stored.generation,
                "changed": applied.changed,
                "changes": changes(before, deployment.document()) if applied.changed else [],
            }

        return self._audited(actor, "deployment.apply", deployment.name, work)

    def _check_models(self, deployment: Deployment) -> None:
        for index, variant in enumerate(deployment.spec.variants):
            try:
                version = self._registry.resolve(variant.ref)
            except NotFound as exc:
                raise NotFound(
                    f"deployment {deployment.name!r}, spec.variants[{index}] ({variant.name}): "
                    f"{exc.message}"
                ) from None
            if variant.ref.version is not None and version.status != "active":
                raise InvalidInput(
                    f"deployment {deployment.name!r}, spec.variants[{index}] ({variant.name}): "
                    f"{variant.model} is archived; register a new version or pick an active one"
                )

    def _audited(
        self, actor: str, action: str, name: str, work: Callable[[], tuple[T, dict[str, Any]]]
    ) -> T:
        """Run ``work`` between a ``started`` entry and its outcome (``ok`` with its details)."""
        if self._audit is None:
            return work()[0]
        target = audit_text(name)
        request_id = new_request_id()
        self._audit.append_audit(actor, action, target, "started", request_id, None)
        try:
            result, details = work()
        except ModelportError as exc:
            self._audit.append_audit(
                actor, action, target, "failed", request_id, {"error": exc.message}
            )
            raise
        self._audit.append_audit(actor, action, target, "ok", request_id, details)
        return result


def _parsed(document: Document, number: int) -> Deployment:
    kind = document.get("kind")
    if kind is None:
        raise InvalidInput(f"document {number} has no kind; expected kind: Deployment")
    if kind != "Deployment":
        raise InvalidInput(
            f"document {number}: kind {kind!r} is not one modelport applies here; expected "
            "'Deployment'"
        )
    try:
        return parse_deployment(document)
    except InvalidInput as exc:
        raise InvalidInput(f"document {number}: {exc.message}") from None
