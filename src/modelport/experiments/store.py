"""Deployments in the metadata database (SQLite or PostgreSQL): apply, read, list, delete.

Applying is idempotent: a document equal to the stored one (compared by a SHA-256 of its
canonical JSON, defaults filled in) changes nothing and keeps the generation; any other change
raises the generation by one. Gateways notice changes by comparing generations, and a deleted
deployment by its absence. The reading and writing is :class:`~modelport.db.DocumentTable`'s,
shared with the monitoring package's alert rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from modelport import db
from modelport.core.clock import Clock
from modelport.core.deployment import Deployment, parse_deployment
from modelport.experiments._schema import MIGRATIONS, deployments

__all__ = ["Applied", "DeploymentStore", "StoredDeployment"]


@dataclass(frozen=True, slots=True)
class StoredDeployment:
    """A deployment as stored, with who made it and who changed it last."""

    deployment: Deployment
    generation: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    @property
    def name(self) -> str:
        """The deployment's public name."""
        return self.deployment.name


Applied: TypeAlias = db.Applied[Deployment, StoredDeployment]
"""What :meth:`DeploymentStore.apply` did: the deployment as now stored, the document it replaced
(``None`` when the deployment is new), and whether anything was written."""


class DeploymentStore(db.MigratedDatabase):
    """The deployments table, migrated to the newest schema on open.

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
            self._engine, deployments, "deployment", parse_deployment, StoredDeployment
        )

    def apply(self, deployment: Deployment, actor: str) -> Applied:
        """Create the deployment, or replace the stored one with the same name.

        Args:
            deployment: A validated document.
            actor: Who applies it (recorded as creator or last changer).

        Raises:
            Conflict: Another writer created the same deployment at the same moment; apply again.
        """
        return self._table.apply(deployment, actor, self._clock.now())

    def get(self, name: str) -> StoredDeployment:
        """The deployment called ``name``.

        Raises:
            NotFound: There is none.
        """
        return self._table.get(name)

    def list(self) -> list[StoredDeployment]:
        """Every deployment, by name."""
        return self._table.list()

    def generations(self) -> dict[str, int]:
        """Each deployment's generation: what a gateway polls to notice changes cheaply."""
        return self._table.generations()

    def delete(self, name: str) -> StoredDeployment:
        """Remove the deployment called ``name``; return what was stored.

        Raises:
            NotFound: There is none.
        """
        return self._table.delete(name)
