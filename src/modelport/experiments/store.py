"""Deployments in the metadata database (SQLite or PostgreSQL): apply, read, list, delete.

Applying is idempotent: a document equal to the stored one (compared by a SHA-256 of its
canonical JSON, defaults filled in) changes nothing and keeps the generation; any other change
raises the generation by one. Gateways notice changes by comparing generations, and a deleted
deployment by its absence.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from modelport import db
from modelport.core.clock import Clock
from modelport.core.deployment import Deployment, parse_deployment
from modelport.core.errors import Conflict, InvalidInput, NotFound
from modelport.core.errors import IntegrityError as CorruptData
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


@dataclass(frozen=True, slots=True)
class Applied:
    """What an apply did.

    Attributes:
        stored: The deployment as it is now stored.
        previous: The document it replaced; ``None`` when the deployment is new.
        changed: Whether anything was written (``False``: the same document was applied again).
    """

    stored: StoredDeployment
    previous: Deployment | None
    changed: bool


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

    def apply(self, deployment: Deployment, actor: str) -> Applied:
        """Create the deployment, or replace the stored one with the same name.

        Args:
            deployment: A validated document.
            actor: Who applies it (recorded as creator or last changer).

        Raises:
            Conflict: Another writer created the same deployment at the same moment; apply again.
        """
        document = deployment.document()
        digest = _digest(document)
        now = self._clock.now()
        try:
            with db.write(self._engine) as conn:
                row = _row(conn, deployment.name, lock=True)
                if row is None:
                    conn.execute(
                        insert(deployments).values(
                            name=deployment.name,
                            generation=1,
                            document=document,
                            digest=digest,
                            created_at=now,
                            created_by=actor,
                            updated_at=now,
                            updated_by=actor,
                        )
                    )
                    return Applied(_stored(_row(conn, deployment.name)), None, changed=True)
                previous = _deployment(row)
                if row.digest == digest:
                    return Applied(_stored(row), previous, changed=False)
                conn.execute(
                    update(deployments)
                    .where(deployments.c.name == deployment.name)
                    .values(
                        generation=row.generation + 1,
                        document=document,
                        digest=digest,
                        updated_at=now,
                        updated_by=actor,
                    )
                )
                return Applied(_stored(_row(conn, deployment.name)), previous, changed=True)
        except IntegrityError:
            raise Conflict(
                f"deployment {deployment.name!r} was created by another writer at the same "
                "moment; apply again"
            ) from None

    def get(self, name: str) -> StoredDeployment:
        """The deployment called ``name``.

        Raises:
            NotFound: There is none.
        """
        with db.read(self._engine) as conn:
            row = _row(conn, name)
        if row is None:
            raise NotFound(f"no deployment {name!r}")
        return _stored(row)

    def list(self) -> list[StoredDeployment]:
        """Every deployment, by name."""
        with db.read(self._engine) as conn:
            rows = conn.execute(select(deployments).order_by(deployments.c.name)).all()
        return [_stored(row) for row in rows]

    def generations(self) -> dict[str, int]:
        """Each deployment's generation: what a gateway polls to notice changes cheaply."""
        with db.read(self._engine) as conn:
            rows = conn.execute(select(deployments.c.name, deployments.c.generation)).all()
        return {row.name: row.generation for row in rows}

    def delete(self, name: str) -> StoredDeployment:
        """Remove the deployment called ``name``; return what was stored.

        Raises:
            NotFound: There is none.
        """
        with db.write(self._engine) as conn:
            row = _row(conn, name, lock=True)
            if row is None:
                raise NotFound(f"no deployment {name!r}")
            conn.execute(delete(deployments).where(deployments.c.name == name))
        return _stored(row)


def _row(conn: Connection, name: str, lock: bool = False) -> Row[Any] | None:
    query = select(deployments).where(deployments.c.name == name)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).one_or_none()


def _stored(row: Row[Any] | None) -> StoredDeployment:
    if row is None:  # only after an insert in the same transaction, which cannot be
        raise CorruptData("a deployment written in this transaction cannot be read back")
    return StoredDeployment(
        deployment=_deployment(row),
        generation=row.generation,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _deployment(row: Row[Any]) -> Deployment:
    try:
        return parse_deployment(row.document)
    except InvalidInput as exc:
        raise CorruptData(f"the stored deployment {row.name!r} is not valid: {exc}") from None


def _digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()
