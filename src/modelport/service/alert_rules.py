"""Applying, reading and deleting alert rules: validation, authorisation and the audit trail.

:meth:`AlertRuleService.apply` takes every document of a file (or request) and checks them all
before it writes anything (:meth:`AlertRuleService.check`): each must be a valid AlertRule,
names must not repeat, the caller must be allowed to change rules of the deployment each
watches (and, when it replaces a rule that watched another deployment, of that one too), and
each deployment must exist (or be applied in the same file). Then each is applied with its
audit entries: ``started`` before the write (an apply whose entry cannot be written is not
performed) and ``ok`` after it with the generation and the changes
(``spec.condition.errorRate.above: 0.05 -> 0.1``), or ``failed`` with the reason.

Rules are authorised on the name of the deployment they watch, as experiments are: a deployer
of ``fraud`` manages ``fraud``'s alert rules. The transports hand in an :data:`Authorize`
callback (the control plane's access control); the command line works on the database directly
and passes none.

:func:`describe_rule` is a stored rule as plain data, the one shape the CLI's ``--output json``
and the control plane's API both return.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from modelport.core.alert import AlertRule, parse_alert_rule
from modelport.core.documents import Document, changes
from modelport.core.errors import InvalidInput, NotFound
from modelport.experiments.store import DeploymentStore
from modelport.monitoring.alert_rules import AlertRuleStore, Applied, StoredAlertRule
from modelport.service.access import AuditSink, audit_text, run_audited

__all__ = ["AlertRuleService", "Authorize", "describe_rule", "rule_changes"]


Authorize = Callable[[str], None]
"""Raises :class:`~modelport.core.errors.PermissionDenied` unless the caller may act on the
deployment it is given (deployer to change, viewer to read)."""


def describe_rule(stored: StoredAlertRule) -> dict[str, Any]:
    """A stored alert rule as the API and ``--output json`` show it (JSON-ready)."""
    return {
        "name": stored.name,
        "deployment": stored.deployment,
        "generation": stored.generation,
        "createdAt": stored.created_at.isoformat(),
        "createdBy": stored.created_by,
        "updatedAt": stored.updated_at.isoformat(),
        "updatedBy": stored.updated_by,
        "document": stored.rule.document(),
    }


def rule_changes(applied: Applied) -> list[str]:
    """What an apply changed, one line per field (``spec.severity: warning -> critical``)."""
    if not applied.changed:
        return []
    before = applied.previous.document() if applied.previous is not None else None
    return changes(before, applied.stored.rule.document())


class AlertRuleService:
    """Alert rules as the CLI and the control plane change them.

    Args:
        store: Where alert rules are kept.
        deployments: Where the deployments they watch are (only read, to check they exist).
        audit: Where every change is recorded; ``None`` records nothing.
    """

    def __init__(
        self, store: AlertRuleStore, deployments: DeploymentStore, audit: AuditSink | None
    ) -> None:
        self.store = store
        self.deployments = deployments
        self._audit = audit

    def check(
        self,
        documents: Sequence[Document],
        *,
        authorize: Authorize | None = None,
        pending: Collection[str] = (),
    ) -> list[AlertRule]:
        """Validate every document in full and return the rules; nothing is written.

        Args:
            documents: Parsed YAML or JSON documents (``load_documents``).
            authorize: Refuses deployments the caller may not change rules of; ``None``
                allows all (the command line, on the database directly).
            pending: Deployments applied together with the rules (``apply -f`` of one file),
                which need not exist yet.

        Raises:
            InvalidInput: A document is not a valid AlertRule (the message names the field by
                its path), or two have the same name.
            PermissionDenied: ``authorize`` refused a deployment.
            NotFound: A rule's deployment does not exist.
        """
        if authorize is not None:
            for document in documents:  # before validation, as the deployments' POST does
                watched = _deployment_of(document)
                if watched is not None:  # a document without one fails validation anyway
                    authorize(watched)
        rules = [_parsed(doc, number) for number, doc in enumerate(documents, start=1)]
        names = [r.name for r in rules]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InvalidInput(f"alert rule {repeated[0]!r} is given more than once; give it once")
        if authorize is not None:
            for rule in rules:
                stored = self.store.find(rule.name)
                if stored is not None and stored.deployment != rule.spec.deployment:
                    authorize(stored.deployment)  # moving a rule takes it from its deployment
        existing = self.deployments.generations().keys() | set(pending)
        for rule in rules:
            if rule.spec.deployment not in existing:
                raise NotFound(
                    f"alert rule {rule.name!r}, spec.deployment: no deployment "
                    f"{rule.spec.deployment!r}; apply the deployment first (nothing was applied)"
                )
        return rules

    def apply(
        self,
        documents: Sequence[Document],
        actor: str,
        *,
        authorize: Authorize | None = None,
        pending: Collection[str] = (),
        request_id: str | None = None,
    ) -> list[Applied]:
        """Check every document (:meth:`check`), then create or replace each rule, audited.

        Args:
            documents: Parsed YAML or JSON documents.
            actor: Who applies them.
            authorize: As :meth:`check`.
            pending: As :meth:`check`; the caller applies those deployments first.
            request_id: The request the audit entries belong to; a fresh one by default.

        Raises:
            InvalidInput: As :meth:`check` (nothing is written).
            PermissionDenied: As :meth:`check` (nothing is written).
            NotFound: As :meth:`check` (nothing is written).
            Conflict: Another writer created the same rule at the same moment.
        """
        rules = self.check(documents, authorize=authorize, pending=pending)
        return [self._apply(rule, actor, request_id) for rule in rules]

    def get(self, name: str, *, authorize: Authorize | None = None) -> StoredAlertRule:
        """The rule called ``name``.

        Args:
            name: The rule.
            authorize: Refuses the rule's deployment if the caller may not read it.

        Raises:
            NotFound: There is none.
            PermissionDenied: ``authorize`` refused the rule's deployment.
        """
        stored = self.store.get(name)
        if authorize is not None:
            authorize(stored.deployment)
        return stored

    def list(
        self,
        deployment: str | None = None,
        *,
        visible: Callable[[Collection[str]], Collection[str]] | None = None,
    ) -> list[StoredAlertRule]:
        """Every rule, or those watching ``deployment``, by name.

        Args:
            deployment: Only the rules of this deployment.
            visible: Returns which of the deployments it is given the caller may see; rules of
                the others are left out. ``None``: all are shown.
        """
        found = self.store.list(deployment)
        if visible is None:
            return found
        shown = visible({s.deployment for s in found})
        return [s for s in found if s.deployment in shown]

    def delete(
        self,
        name: str,
        actor: str,
        *,
        authorize: Authorize | None = None,
        request_id: str | None = None,
    ) -> StoredAlertRule:
        """Remove the rule called ``name``, audited; return what was stored.

        Args:
            name: The rule.
            actor: Who removes it.
            authorize: Refuses the rule's deployment if the caller may not change its rules.
            request_id: The request the audit entries belong to; a fresh one by default.

        Raises:
            NotFound: There is none.
            PermissionDenied: ``authorize`` refused the rule's deployment.
        """
        if authorize is not None:
            authorize(self.store.get(name).deployment)

        def work() -> tuple[StoredAlertRule, dict[str, Any]]:
            removed = self.store.delete(name)
            return removed, {"deployment": removed.deployment, "generation": removed.generation}

        return run_audited(
            self._audit, actor, "alertrule.delete", audit_text(name), work, request_id
        )

    def _apply(self, rule: AlertRule, actor: str, request_id: str | None) -> Applied:
        def work() -> tuple[Applied, dict[str, Any]]:
            applied = self.store.apply(rule, actor)
            return applied, {
                "deployment": rule.spec.deployment,
                "generation": applied.stored.generation,
                "changed": applied.changed,
                "changes": rule_changes(applied),
            }

        return run_audited(
            self._audit, actor, "alertrule.apply", audit_text(rule.name), work, request_id
        )


def _deployment_of(document: Document) -> str | None:
    spec = document.get("spec")
    watched = spec.get("deployment") if isinstance(spec, dict) else None
    return watched if isinstance(watched, str) else None


def _parsed(document: Document, number: int) -> AlertRule:
    kind = document.get("kind")
    if kind is None:
        raise InvalidInput(f"document {number} has no kind; expected kind: AlertRule")
    if kind != "AlertRule":
        raise InvalidInput(
            f"document {number}: kind {kind!r} is not one modelport applies here; expected "
            "'AlertRule'"
        )
    try:
        return parse_alert_rule(document)
    except InvalidInput as exc:
        raise InvalidInput(f"document {number}: {exc.message}") from None
