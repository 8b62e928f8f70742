"""Alert rules in the metadata database (SQLite or PostgreSQL): apply, read, list, delete.

Kept as deployments are (:class:`~modelport.experiments.store.DeploymentStore`), in a
:class:`~modelport.db.DocumentTable` with a ``deployment`` column of its own: applying is
idempotent, a document equal to the stored one (compared by a SHA-256 of its canonical JSON,
defaults filled in) changes nothing and keeps the generation, and any other change raises the
generation by one. The alert job notices changes by comparing :meth:`AlertRuleStore.generations`,
and a deleted rule by its absence. The table is in the monitoring state's Alembic history
(``_state_schema.py``, ``state_migrations/``).

The store checks only what a document says about itself (:func:`~modelport.core.alert.
parse_alert_rule` already did); that the deployment a rule watches exists is the service's
check, since deployments belong to another package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from modelport import db
from modelport.core.alert import AlertRule, parse_alert_rule
from modelport.core.clock import Clock
from modelport.monitoring._state_schema import MIGRATIONS, alert_rules

__all__ = ["AlertRuleStore", "Applied", "StoredAlertRule"]


@dataclass(frozen=True, slots=True)
class StoredAlertRule:
    """An alert rule as stored, with who made it and who changed it last."""

    rule: AlertRule
    generation: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    @property
    def name(self) -> str:
        """The rule's name (its alerts' ``alertname``)."""
        return self.rule.name

    @property
    def deployment(self) -> str:
        """The deployment the rule watches."""
        return self.rule.spec.deployment


Applied: TypeAlias = db.Applied[AlertRule, StoredAlertRule]
"""What :meth:`AlertRuleStore.apply` did: the rule as now stored, the document it replaced
(``None`` when the rule is new), and whether anything was written."""


class AlertRuleStore(db.MigratedDatabase):
    """The alert_rules table, migrated (with the rest of the monitoring state) on open.

    Args:
        url: SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DB``.
        clock: Source of the creation and change times.

    Raises:
        ConfigError: The URL is unsupported or the database cannot be reached.
        DependencyMissing: The PostgreSQL driver is not installed.
    """

    def __init__(self, url: str, clock: Clock) -> None:
        super().__init__(url, MIGRATIONS)
        self._clock = clock
        self._table = db.DocumentTable(
            self._engine, alert_rules, "alert rule", parse_alert_rule, StoredAlertRule
        )

    def apply(self, rule: AlertRule, actor: str) -> Applied:
        """Create the rule, or replace the stored one with the same name.

        Args:
            rule: A validated document.
            actor: Who applies it (recorded as creator or last changer).

        Raises:
            Conflict: Another writer created the same rule at the same moment; apply again.
        """
        now = self._clock.now()
        return self._table.apply(rule, actor, now, deployment=rule.spec.deployment)

    def get(self, name: str) -> StoredAlertRule:
        """The rule called ``name``.

        Raises:
            NotFound: There is none.
        """
        return self._table.get(name)

    def find(self, name: str) -> StoredAlertRule | None:
        """The rule called ``name``, or ``None`` when there is none."""
        return self._table.find(name)

    def list(self, deployment: str | None = None) -> list[StoredAlertRule]:
        """Every rule, or those watching ``deployment``, by name."""
        if deployment is None:
            return self._table.list()
        return self._table.list(alert_rules.c.deployment == deployment)

    def generations(self) -> dict[str, int]:
        """Each rule's generation: what the alert job polls to notice changes cheaply."""
        return self._table.generations()

    def delete(self, name: str) -> StoredAlertRule:
        """Remove the rule called ``name``; return what was stored.

        Raises:
            NotFound: There is none.
        """
        return self._table.delete(name)
