"""Applying, reading and deleting deployments: validation, registry checks and the audit trail.

:meth:`DeploymentService.apply` takes every document of a file (or request) and validates them
all before it writes anything: each must be a valid Deployment, names must not repeat, and each
variant's model must be registered (a pinned version that exists and is active, or an alias
that exists). Given a :class:`ReplicaProbe`, the replicas a deployment names must answer too
(every URL's ``GET /v2/health/live``, every DNS name must resolve). Then each is applied with
its audit entries: ``started`` before the write (an apply whose entry cannot be written is not
performed) and ``ok`` after it with the generation and the changes
(``spec.variants[1].weight: 10 -> 50``), or ``failed`` with the reason.

:func:`describe` is a stored deployment as plain data, the one shape the CLI's ``--output json``
and the control plane's API both return.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from modelport.core.deployment import Deployment, parse_deployment
from modelport.core.documents import Document, changes
from modelport.core.errors import InvalidInput, NotFound
from modelport.experiments.store import Applied, DeploymentStore, StoredDeployment
from modelport.registry import MetadataStore
from modelport.service.access import AuditSink, audit_text, run_audited

__all__ = ["DeploymentService", "ReplicaProbe", "applied_changes", "describe"]

log = logging.getLogger("modelport.deployments")


Owner = Callable[[str], tuple[str, str, str] | None]
"""Which running experiment owns a deployment's split: ``(experiment, control, treatment)``."""


class ReplicaProbe(Protocol):
    """Asks whether model-server replicas answer (the HTTP one is in ``server/controlplane``)."""

    def unreachable(self, urls: Sequence[str], dns: Sequence[str]) -> dict[str, str]:
        """Return why each URL or ``HOST:PORT`` name that does not answer fails; ``{}`` if none.

        Args:
            urls: Replica base URLs, each to answer ``GET /v2/health/live`` with 200.
            dns: ``HOST:PORT`` names, each to resolve.
        """
        ...


def describe(stored: StoredDeployment) -> dict[str, Any]:
    """A stored deployment as the API and ``--output json`` show it (JSON-ready)."""
    return {
        "name": stored.name,
        "generation": stored.generation,
        "createdAt": stored.created_at.isoformat(),
        "createdBy": stored.created_by,
        "updatedAt": stored.updated_at.isoformat(),
        "updatedBy": stored.updated_by,
        "document": stored.deployment.document(),
    }


def applied_changes(applied: Applied) -> list[str]:
    """What an apply changed, one line per field (``spec.variants[1].weight: 10 -> 50``)."""
    if not applied.changed:
        return []
    before = applied.previous.document() if applied.previous is not None else None
    return changes(before, applied.stored.deployment.document())


class DeploymentService:
    """Deployments as the CLI and the control plane change them.

    While an experiment runs on a deployment it owns the weights of its control and treatment:
    an apply keeps the treatment's current weight and gives the control the rest, so a GitOps
    pipeline applying the same file again does not undo a canary step (the apply's audit entry
    names the experiment). End the experiment to set those weights by hand.

    Args:
        store: Where deployments are kept.
        registry: Where the variants' models must be registered.
        audit: Where every change is recorded; ``None`` records nothing.
        owner: Which running experiment owns a deployment's split; ``None``: none do.
    """

    def __init__(
        self,
        store: DeploymentStore,
        registry: MetadataStore,
        audit: AuditSink | None,
        owner: Owner | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self._audit = audit
        self._owner = owner

    def apply(
        self,
        documents: Sequence[Document],
        actor: str,
        *,
        probe: ReplicaProbe | None = None,
        request_id: str | None = None,
        by_experiment: bool = False,
    ) -> list[Applied]:
        """Validate every document, then create or replace each deployment.

        Args:
            documents: Parsed YAML or JSON documents (``load_documents``).
            actor: Who applies them.
            probe: Checks that the replicas the deployments name answer; ``None`` skips it.
            request_id: The request the audit entries belong to; a fresh one by default.
            by_experiment: The experiment owning the split applies it (its weights are taken
                as given).

        Raises:
            InvalidInput: A document is not a valid Deployment, two have the same name, a
                replica does not answer, or it drops a variant a running experiment compares
                (nothing is written).
            NotFound: A variant's model, version or alias is not registered (nothing is written).
        """
        deployments = [_parsed(doc, number) for number, doc in enumerate(documents, start=1)]
        if not by_experiment:
            deployments = [self._owned_split(d) for d in deployments]
        names = [d.name for d in deployments]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InvalidInput(f"deployment {repeated[0]!r} is given more than once; give it once")
        for deployment in deployments:
            self._check_models(deployment)
        if probe is not None:
            _check_replicas(deployments, probe)
        return [self._apply(deployment, actor, request_id) for deployment in deployments]

    def get(self, name: str) -> StoredDeployment:
        """The deployment called ``name``.

        Raises:
            NotFound: There is none.
        """
        return self.store.get(name)

    def list(self) -> list[StoredDeployment]:
        """Every deployment, by name."""
        return self.store.list()

    def delete(self, name: str, actor: str, *, request_id: str | None = None) -> StoredDeployment:
        """Remove the deployment called ``name``, audited; return what was stored.

        Args:
            name: The deployment.
            actor: Who removes it.
            request_id: The request the audit entries belong to; a fresh one by default.

        Raises:
            NotFound: There is none.
        """

        def work() -> tuple[StoredDeployment, dict[str, Any]]:
            removed = self.store.delete(name)
            return removed, {"generation": removed.generation}

        return run_audited(
            self._audit, actor, "deployment.delete", audit_text(name), work, request_id
        )

    def ready(self) -> bool:
        """Whether the metadata database answers (one cheap read)."""
        try:
            self.store.generations()
        except Exception as exc:  # whatever the driver raises: the answer is "not ready"
            log.warning("the metadata database does not answer: %s", exc)
            return False
        return True

    def _apply(self, deployment: Deployment, actor: str, request_id: str | None) -> Applied:
        def work() -> tuple[Applied, dict[str, Any]]:
            applied = self.store.apply(deployment, actor)
            return applied, {
                "generation": applied.stored.generation,
                "changed": applied.changed,
                "changes": applied_changes(applied),
            }

        return run_audited(
            self._audit, actor, "deployment.apply", audit_text(deployment.name), work, request_id
        )

    def _owned_split(self, deployment: Deployment) -> Deployment:
        """``deployment`` with the split a running experiment set kept (see the class)."""
        owner = self._owner(deployment.name) if self._owner is not None else None
        if owner is None:
            return deployment
        experiment, control, treatment = owner
        try:
            stored = self.store.get(deployment.name).deployment
        except NotFound:
            return deployment
        kept = {v.name: v.weight for v in stored.spec.variants}
        document = deployment.document()
        variants = {v["name"]: v for v in document["spec"]["variants"]}
        if control not in variants or treatment not in variants:
            raise InvalidInput(
                f"deployment {deployment.name!r}: experiment {experiment!r} compares {control!r} "
                f"with {treatment!r} while it runs; keep both variants, or end the experiment "
                f"first (modelport experiments abort {experiment})"
            )
        others = sum(
            v["weight"] for name, v in variants.items()
            if name not in (control, treatment) and v["role"] != "shadow"
        )  # fmt: skip
        variants[treatment]["weight"] = min(kept.get(treatment, 0.0), 100.0 - others)
        variants[control]["weight"] = 100.0 - others - variants[treatment]["weight"]
        return parse_deployment(document)

    def _check_models(self, deployment: Deployment) -> None:
        for index, variant in enumerate(deployment.spec.variants):
            try:
                version = self.registry.resolve(variant.ref)
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


def _check_replicas(deployments: Sequence[Deployment], probe: ReplicaProbe) -> None:
    """Refuse the apply, naming each replica that does not answer and why."""
    urls: list[tuple[str, str]] = []  # (where, url)
    names: list[tuple[str, str]] = []  # (where, HOST:PORT)
    for deployment in deployments:
        replicas = deployment.spec.replicas
        if replicas is None:
            continue
        where = f"deployment {deployment.name!r}, spec.replicas"
        urls += [(f"{where}.urls[{i}]", url) for i, url in enumerate(replicas.urls)]
        if replicas.dns is not None:
            names.append((f"{where}.dns", replicas.dns))
    if not urls and not names:
        return
    failed = probe.unreachable(
        sorted({url for _, url in urls}), sorted({name for _, name in names})
    )
    problems = [
        f"{where} {target}: {failed[target]}" for where, target in urls + names if target in failed
    ]
    if problems:
        raise InvalidInput(
            "replicas must answer before a deployment points at them; nothing was applied: "
            + "; ".join(problems)
        )


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
