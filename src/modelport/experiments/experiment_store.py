"""Experiments and their decisions in the metadata database (SQLite or PostgreSQL).

An experiment row holds its validated document and where it stands: its status, the canary step
it is at and when that step started, when a sample-ratio mismatch was last acknowledged, and
when it ended. Every change of state goes through :meth:`ExperimentStore.transition`, which
checks the generation it was computed from, so two evaluators (several ``modelport up``
workers, or a person pausing while the job decides) never both act on the same state: the
second gets :class:`~modelport.core.errors.Conflict` and reads again.

Statuses: ``running`` (evaluated on schedule), ``paused`` (not evaluated; traffic unchanged),
``blocked`` (a sample-ratio mismatch waits for acknowledgement), and the final ones
``promoted``, ``rolled_back``, ``aborted`` and ``inconclusive``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from modelport import db
from modelport.core.clock import Clock
from modelport.core.errors import Conflict, InvalidInput, NotFound
from modelport.core.errors import IntegrityError as CorruptData
from modelport.core.experiment import Experiment, parse_experiment
from modelport.experiments._schema import MIGRATIONS, decisions, experiments

__all__ = [
    "ACTIVE",
    "FINAL",
    "ExperimentStore",
    "StoredDecision",
    "StoredExperiment",
]

ACTIVE: Final = frozenset({"running", "paused", "blocked"})
"""Statuses of an experiment that still holds its deployment's traffic."""
FINAL: Final = frozenset({"promoted", "rolled_back", "aborted", "inconclusive"})
"""Statuses of an experiment that has ended."""


@dataclass(frozen=True, slots=True)
class StoredExperiment:
    """An experiment as stored, with where it stands."""

    experiment: Experiment
    generation: int
    status: str
    step: int
    started_at: datetime
    step_started_at: datetime
    srm_since: datetime | None
    ended_at: datetime | None
    created_by: str
    updated_at: datetime
    updated_by: str

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.experiment.name

    @property
    def deployment(self) -> str:
        """The deployment it splits."""
        return self.experiment.spec.deployment


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """One evaluation's outcome."""

    id: int
    experiment: str
    at: datetime
    decision: str
    reason: str
    inputs: dict[str, Any]


class ExperimentStore(db.MigratedDatabase):
    """The experiments and experiment_decisions tables, migrated to the newest schema on open.

    Args:
        url: SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DB``.
        clock: Source of the times recorded.
    """

    def __init__(self, url: str, clock: Clock) -> None:
        super().__init__(url, MIGRATIONS)
        self._clock = clock

    def create(self, experiment: Experiment, actor: str) -> StoredExperiment:
        """Store a new, running experiment.

        Raises:
            Conflict: An experiment of that name exists, or another active one holds the
                deployment.
        """
        now = self._clock.now()
        document = experiment.document()
        try:
            with db.write(self._engine) as conn:
                if _row(conn, experiment.name) is not None:
                    raise Conflict(f"experiment {experiment.name!r} exists")
                holder = _active_on(conn, experiment.spec.deployment)
                if holder is not None:
                    raise Conflict(
                        f"deployment {experiment.spec.deployment!r} already runs experiment "
                        f"{holder!r}; end it (modelport experiments abort {holder}) first"
                    )
                conn.execute(
                    insert(experiments).values(
                        name=experiment.name,
                        deployment=experiment.spec.deployment,
                        generation=1,
                        document=document,
                        digest=db.document_digest(document),
                        status="running",
                        step=0,
                        started_at=now,
                        step_started_at=now,
                        srm_since=None,
                        ended_at=None,
                        created_by=actor,
                        updated_at=now,
                        updated_by=actor,
                    )
                )
                return _stored(_row(conn, experiment.name))
        except IntegrityError:
            raise Conflict(
                f"experiment {experiment.name!r} was created by another writer at the same "
                "moment; apply again"
            ) from None

    def replace(self, experiment: Experiment, actor: str) -> tuple[StoredExperiment, bool]:
        """Replace a stored experiment's document, keeping where it stands.

        Returns:
            The stored experiment and whether anything changed.

        Raises:
            NotFound: There is none.
        """
        document = experiment.document()
        digest = db.document_digest(document)
        with db.write(self._engine) as conn:
            row = _row(conn, experiment.name, lock=True)
            if row is None:
                raise NotFound(f"no experiment {experiment.name!r}")
            if row.digest == digest:
                return _stored(row), False
            conn.execute(
                update(experiments)
                .where(experiments.c.name == experiment.name)
                .values(
                    generation=row.generation + 1,
                    document=document,
                    digest=digest,
                    updated_at=self._clock.now(),
                    updated_by=actor,
                )
            )
            return _stored(_row(conn, experiment.name)), True

    def get(self, name: str) -> StoredExperiment:
        """The experiment called ``name``.

        Raises:
            NotFound: There is none.
        """
        with db.read(self._engine) as conn:
            row = _row(conn, name)
        if row is None:
            raise NotFound(f"no experiment {name!r}")
        return _stored(row)

    def find(self, name: str) -> StoredExperiment | None:
        """The experiment called ``name``, or ``None``."""
        with db.read(self._engine) as conn:
            row = _row(conn, name)
        return None if row is None else _stored(row)

    def active(self, deployment: str) -> StoredExperiment | None:
        """The experiment holding ``deployment``'s traffic now, if any."""
        with db.read(self._engine) as conn:
            name = _active_on(conn, deployment)
            row = None if name is None else _row(conn, name)
        return None if row is None else _stored(row)

    def transition(self, current: StoredExperiment, actor: str, **changes: Any) -> StoredExperiment:
        """Change where ``current`` stands, if nobody changed it since it was read.

        Args:
            current: The experiment as read.
            actor: Who changes it.
            **changes: Columns to set: ``status``, ``step``, ``step_started_at``,
                ``srm_since``, ``ended_at``.

        Raises:
            Conflict: It changed since it was read (read it again).
            InvalidInput: A column that is not one of those.
        """
        allowed = {"status", "step", "step_started_at", "srm_since", "ended_at"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidInput(f"cannot change {sorted(unknown)} of an experiment")
        with db.write(self._engine) as conn:
            done = conn.execute(
                update(experiments)
                .where(experiments.c.name == current.name)
                .where(experiments.c.generation == current.generation)
                .values(
                    generation=current.generation + 1,
                    updated_at=self._clock.now(),
                    updated_by=actor,
                    **changes,
                )
            )
            if done.rowcount != 1:
                raise Conflict(
                    f"experiment {current.name!r} changed while this was decided; read it again"
                )
            return _stored(_row(conn, current.name))

    def delete(self, name: str) -> StoredExperiment:
        """Remove the experiment called ``name`` and its decisions; return what was stored.

        Raises:
            NotFound: There is none.
        """
        with db.write(self._engine) as conn:
            row = _row(conn, name, lock=True)
            if row is None:
                raise NotFound(f"no experiment {name!r}")
            conn.execute(delete(decisions).where(decisions.c.experiment == name))
            conn.execute(delete(experiments).where(experiments.c.name == name))
        return _stored(row)

    def record(self, name: str, decision: str, reason: str, inputs: dict[str, Any]) -> int:
        """Store one evaluation's outcome; return its id."""
        with db.write(self._engine) as conn:
            result = conn.execute(
                insert(decisions).values(
                    experiment=name,
                    at=self._clock.now(),
                    decision=decision,
                    reason=reason,
                    inputs=inputs,
                )
            )
            key = result.inserted_primary_key
        if key is None:  # pragma: no cover - every insert has a key
            raise CorruptData("a decision was stored without an id")
        return int(key[0])

    def decisions(self, name: str, limit: int = 20) -> list[StoredDecision]:
        """The newest ``limit`` decisions of ``name``, newest first."""
        query = (
            select(decisions)
            .where(decisions.c.experiment == name)
            .order_by(decisions.c.id.desc())
            .limit(limit)
        )
        with db.read(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            StoredDecision(r.id, r.experiment, r.at, r.decision, r.reason, dict(r.inputs))
            for r in rows
        ]

    def last_decision_at(self, name: str) -> datetime | None:
        """When ``name`` was last evaluated."""
        query = (
            select(decisions.c.at)
            .where(decisions.c.experiment == name)
            .order_by(decisions.c.id.desc())
            .limit(1)
        )
        with db.read(self._engine) as conn:
            return conn.execute(query).scalar_one_or_none()

    def list(self, deployment: str | None = None) -> list[StoredExperiment]:
        """Every experiment (of one deployment), by name."""
        query = select(experiments).order_by(experiments.c.name)
        if deployment is not None:
            query = query.where(experiments.c.deployment == deployment)
        with db.read(self._engine) as conn:
            rows = conn.execute(query).all()
        return [_stored(row) for row in rows]


def _row(conn: Connection, name: str, lock: bool = False) -> Row[Any] | None:
    query = select(experiments).where(experiments.c.name == name)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).one_or_none()


def _active_on(conn: Connection, deployment: str) -> str | None:
    query = (
        select(experiments.c.name)
        .where(experiments.c.deployment == deployment)
        .where(experiments.c.status.in_(sorted(ACTIVE)))
        .limit(1)
    )
    return conn.execute(query).scalar_one_or_none()


def _stored(row: Row[Any] | None) -> StoredExperiment:
    if row is None:  # only after a write in the same transaction, which cannot be
        raise CorruptData("an experiment written in this transaction cannot be read back")
    try:
        experiment = parse_experiment(row.document)
    except InvalidInput as exc:
        raise CorruptData(f"the stored experiment {row.name!r} is not valid: {exc}") from None
    return StoredExperiment(
        experiment=experiment,
        generation=row.generation,
        status=row.status,
        step=row.step,
        started_at=row.started_at,
        step_started_at=row.step_started_at,
        srm_since=row.srm_since,
        ended_at=row.ended_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )
