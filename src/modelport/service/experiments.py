"""Experiments: starting them, acting on them, and the evaluation that decides on its own.

:class:`ExperimentService` is what ``modelport apply``, ``modelport experiments`` and the
control plane's ``/v1/experiments`` call. Starting an experiment checks its deployment (the
control and treatment variants exist with those roles) and, for a canary, sets the treatment's
weight to the first step's. :meth:`ExperimentService.evaluate` reads the experiment's traffic
and feedback (an :class:`ExperimentData`), asks the pure
:func:`~modelport.experiments.analysis.decide` what to do, and does it:

=================  ===============================================================================
decision           what changes
=================  ===============================================================================
continue           nothing
not_enough_data    nothing
blocked            the experiment waits (status ``blocked``) until a mismatch is acknowledged
advance            the treatment's weight goes to the next canary step's; the step's clock restarts
promote            the treatment takes all the traffic and the promotion alias moves to its version
rollback           the control takes all the traffic
inconclusive       the control takes all the traffic
=================  ===============================================================================

Every evaluation is stored with its inputs and reason, and written to the audit log as
``experiment.decide`` (actor ``experiment:NAME``); the deployment changes it makes are applied
through :class:`~modelport.service.deployments.DeploymentService` (validated and audited like any
apply) and alias moves through the registrar (recorded in the alias history).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

from modelport.core.clock import Clock
from modelport.core.deployment import Deployment
from modelport.core.documents import Document
from modelport.core.errors import Conflict, InvalidInput, ModelportError
from modelport.core.experiment import Experiment, parse_experiment
from modelport.experiments.analysis import (
    ArmData,
    Decision,
    Situation,
    as_mapping,
    decide,
    srm_p_value,
    summarize_shadow,
)
from modelport.experiments.experiment_store import (
    ACTIVE,
    ExperimentStore,
    StoredDecision,
    StoredExperiment,
)
from modelport.experiments.feedback import FeedbackStore
from modelport.monitoring.log_query import ExperimentRows, arm_counts, experiment_rows
from modelport.service.access import AuditSink, audit_text, new_request_id, run_audited
from modelport.service.deployments import DeploymentService

__all__ = [
    "AppliedExperiment",
    "ExperimentData",
    "ExperimentService",
    "PredictionLogData",
    "describe_experiment",
]

log = logging.getLogger("modelport.experiments")

SRM_ALPHA: Final = 0.001
"""A sample-ratio test below this p-value flags a mismatch."""

_ENDS: Final = {
    "promote": "promoted",
    "rollback": "rolled_back",
    "inconclusive": "inconclusive",
    "abort": "aborted",
}


class Rows(Protocol):
    """An experiment's observations (``monitoring.log_query.ExperimentRows``)."""

    @property
    def arms(self) -> dict[str, Any]:
        """Per answering variant: :class:`~modelport.experiments.analysis.ArmData`."""
        ...

    @property
    def shadows(self) -> dict[str, Any]:
        """Per shadow: :class:`~modelport.experiments.analysis.ShadowData`."""
        ...

    @property
    def feedback(self) -> int:
        """Feedback rows of the deployment."""
        ...

    @property
    def feedback_unmatched(self) -> int:
        """Feedback without a logged prediction in the window."""
        ...


class ExperimentData(Protocol):
    """Reads what an evaluation needs (wired to the prediction log and the feedback table)."""

    def rows(
        self, experiment: Experiment, shadows: Sequence[str], since: datetime, until: datetime
    ) -> Rows:
        """The experiment's arms (and the deployment's shadows) in ``[since, until)``."""
        ...

    def counts(self, deployment: str, since: datetime, until: datetime) -> dict[str, int]:
        """Requests per variant in ``[since, until)`` (the sample-ratio test's counts)."""
        ...


class AliasMover(Protocol):
    """Moves a registry alias (the registrar: audited, recorded in the alias history)."""

    def set_alias(self, name: str, alias: str, version: int, actor: str) -> Any:
        """Point ``alias`` of model ``name`` at ``version``."""
        ...


@dataclass(frozen=True, slots=True)
class AppliedExperiment:
    """What applying one Experiment document did."""

    stored: StoredExperiment
    created: bool
    changed: bool


class ExperimentService:
    """Experiments as the CLI, the control plane and the evaluation job change them.

    Args:
        store: Where experiments and decisions are kept.
        deployments: The deployments experiments change (validated, audited applies).
        audit: Where every action and decision is recorded; ``None`` records nothing.
        clock: The time of evaluations.
        data: Reads an experiment's traffic and feedback; ``None``: this process does not
            evaluate (the CLI's listing commands).
        aliases: Moves the promotion alias; ``None``: promotions move traffic only.
    """

    def __init__(
        self,
        store: ExperimentStore,
        deployments: DeploymentService,
        audit: AuditSink | None,
        clock: Clock,
        data: ExperimentData | None = None,
        aliases: AliasMover | None = None,
    ) -> None:
        self.store = store
        self.deployments = deployments
        self._audit = audit
        self._clock = clock
        self._data = data
        self._aliases = aliases

    # -- resources ------------------------------------------------------------------------------

    def apply(
        self, documents: Sequence[Document], actor: str, *, request_id: str | None = None
    ) -> list[AppliedExperiment]:
        """Validate every Experiment document, then start or update each.

        Raises:
            InvalidInput: A document is not a valid Experiment, or its deployment has no such
                control or treatment variant (nothing is written).
            NotFound: Its deployment does not exist (nothing is written).
            Conflict: Its deployment runs another experiment, or it changes what a stored
                experiment compares, or changes one that has ended.
        """
        experiments = [_parsed(doc, number) for number, doc in enumerate(documents, start=1)]
        names = [e.name for e in experiments]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InvalidInput(f"experiment {repeated[0]!r} is given more than once; give it once")
        for experiment in experiments:
            self._check(experiment)
        return [self._apply(e, actor, request_id) for e in experiments]

    def get(self, name: str) -> StoredExperiment:
        """The experiment called ``name``.

        Raises:
            NotFound: There is none.
        """
        return self.store.get(name)

    def decisions(self, name: str, limit: int = 20) -> list[StoredDecision]:
        """The newest decisions of ``name``, newest first.

        Raises:
            NotFound: There is no such experiment.
        """
        self.store.get(name)
        return self.store.decisions(name, limit)

    def delete(self, name: str, actor: str, *, request_id: str | None = None) -> StoredExperiment:
        """Remove an experiment that has ended, with its decisions.

        Raises:
            NotFound: There is none.
            Conflict: It still holds its deployment's traffic (abort or promote it first).
        """
        stored = self.store.get(name)
        if stored.status in ACTIVE:
            raise Conflict(
                f"experiment {name!r} is {stored.status}; end it first with modelport "
                f"experiments abort {name} (or promote)"
            )

        def work() -> tuple[StoredExperiment, dict[str, Any]]:
            return self.store.delete(name), {"status": stored.status}

        return run_audited(
            self._audit, actor, "experiment.delete", audit_text(name), work, request_id
        )

    # -- actions --------------------------------------------------------------------------------

    def pause(self, name: str, actor: str, *, request_id: str | None = None) -> StoredExperiment:
        """Stop evaluating ``name``; its traffic stays as it is.

        Raises:
            NotFound: No such experiment.
            Conflict: It is not running (or blocked).
        """
        return self._move(name, actor, "pause", ("running", "blocked"), request_id, "paused")

    def resume(self, name: str, actor: str, *, request_id: str | None = None) -> StoredExperiment:
        """Evaluate ``name`` again after a pause.

        Raises:
            NotFound: No such experiment.
            Conflict: It is not paused.
        """
        return self._move(name, actor, "resume", ("paused",), request_id, "running")

    def acknowledge(
        self, name: str, actor: str, *, request_id: str | None = None
    ) -> StoredExperiment:
        """Acknowledge a sample-ratio mismatch: decisions resume, counting traffic from now.

        Raises:
            NotFound: No such experiment.
            Conflict: It is not blocked by a mismatch.
        """
        return self._move(
            name, actor, "acknowledge", ("blocked",), request_id, "running",
            srm_since=self._clock.now(),
        )  # fmt: skip

    def abort(self, name: str, actor: str, *, request_id: str | None = None) -> StoredExperiment:
        """End ``name`` now: the control takes all the traffic.

        Raises:
            NotFound: No such experiment.
            Conflict: It has ended already.
        """
        return self._end(name, actor, "abort", request_id)

    def promote(self, name: str, actor: str, *, request_id: str | None = None) -> StoredExperiment:
        """End ``name`` now in the treatment's favour: all the traffic, and the alias moves.

        Raises:
            NotFound: No such experiment.
            Conflict: It has ended already.
        """
        return self._end(name, actor, "promote", request_id)

    # -- evaluation -----------------------------------------------------------------------------

    def evaluate_due(self) -> str | None:
        """Evaluate every running or blocked experiment whose turn has come (the job's run).

        Returns:
            A one-line summary of what was decided, or ``None`` when nothing was due.
        """
        done = []
        now = self._clock.now()
        for stored in self.store.list():
            if stored.status not in ("running", "blocked"):
                continue
            last = self.store.last_decision_at(stored.name)
            every = stored.experiment.spec.evaluate_every
            if last is not None and (now - last).total_seconds() < every:
                continue
            try:
                decision = self.evaluate(stored.name)
            except Conflict as exc:  # another evaluator or a person acted first
                log.info("experiment %s: %s", stored.name, exc.message)
                continue
            except ModelportError as exc:
                log.error("experiment %s cannot be evaluated: %s", stored.name, exc.message)
                continue
            done.append(f"{stored.name}: {decision.action}")
        return "; ".join(done) if done else None

    def evaluate(self, name: str) -> Decision:
        """Evaluate ``name`` now and act on the decision.

        Raises:
            NotFound: No such experiment.
            Conflict: It is not running or blocked, or changed while it was evaluated.
            ConfigError: This process has no access to the prediction log.
        """
        if self._data is None:
            raise Conflict("this process does not evaluate experiments (no prediction log)")
        stored = self.store.get(name)
        if stored.status not in ("running", "blocked"):
            raise Conflict(
                f"experiment {name!r} is {stored.status}; only running ones are evaluated"
            )
        spec = stored.experiment.spec
        deployment = self.deployments.get(spec.deployment).deployment
        now = self._clock.now()
        shadows = [v.name for v in deployment.spec.variants if v.role == "shadow"]
        rows = self._data.rows(stored.experiment, shadows, stored.started_at, now)
        situation = self._situation(stored, deployment, now)
        decision = decide(spec, situation, _arm(rows, spec.control), _arm(rows, spec.treatment))
        inputs = decision.record()
        inputs["feedback"] = {"rows": rows.feedback, "unmatched": rows.feedback_unmatched}
        inputs["shadows"] = [
            as_mapping(summarize_shadow(name, data, spec.alpha))
            for name, data in sorted(rows.shadows.items())
        ]
        self._act(stored, deployment, decision)
        self.store.record(name, decision.action, decision.reason, _json_ready(inputs))
        if self._audit is not None:
            self._audit.append_audit(
                f"experiment:{name}",
                "experiment.decide",
                audit_text(name),
                "ok",
                new_request_id(),
                {"decision": decision.action, "reason": decision.reason},
            )
        return decision

    def _situation(
        self, stored: StoredExperiment, deployment: Deployment, now: datetime
    ) -> Situation:
        spec = stored.experiment.spec
        since = stored.step_started_at
        if stored.srm_since is not None and stored.srm_since > since:
            since = stored.srm_since
        data = self._data
        counts = data.counts(spec.deployment, since, now) if data is not None else {}
        pair = (counts.get(spec.control, 0), counts.get(spec.treatment, 0))
        weights = {v.name: v.weight for v in deployment.spec.variants}
        p_value = srm_p_value(pair, (weights.get(spec.control, 0), weights.get(spec.treatment, 0)))
        flagged = stored.status == "blocked" or (p_value is not None and p_value < SRM_ALPHA)
        return Situation(
            now=now,
            started_at=stored.started_at,
            step=stored.step,
            step_started_at=stored.step_started_at,
            step_counts=pair,
            srm_p_value=p_value,
            srm_flagged=flagged,
        )

    def _act(self, stored: StoredExperiment, deployment: Deployment, decision: Decision) -> None:
        action = decision.action
        actor = f"experiment:{stored.name}"
        spec = stored.experiment.spec
        if action == "blocked" and stored.status != "blocked":
            self.store.transition(stored, actor, status="blocked")
        elif action == "advance":
            weight = spec.steps[stored.step + 1].weight
            self._set_weight(deployment, spec.control, spec.treatment, weight, actor)
            self.store.transition(
                stored, actor, step=stored.step + 1, step_started_at=self._clock.now()
            )
        elif action in _ENDS:
            self._finish(stored, deployment, action, actor)

    def _end(self, name: str, actor: str, action: str, request_id: str | None) -> StoredExperiment:
        stored = self.store.get(name)
        if stored.status not in ACTIVE:
            raise Conflict(f"experiment {name!r} has ended ({stored.status})")
        deployment = self.deployments.get(stored.deployment).deployment

        def work() -> tuple[StoredExperiment, dict[str, Any]]:
            ended = self._finish(stored, deployment, action, actor)
            return ended, {"status": ended.status}

        return run_audited(
            self._audit, actor, f"experiment.{action}", audit_text(name), work, request_id
        )

    def _finish(
        self, stored: StoredExperiment, deployment: Deployment, action: str, actor: str
    ) -> StoredExperiment:
        """Give the winner all the traffic (and move the alias on a promotion), then end."""
        spec = stored.experiment.spec
        if action == "promote":
            self._set_weight(deployment, spec.control, spec.treatment, None, actor)
            self._move_alias(stored, deployment, actor)
        else:
            self._set_weight(deployment, spec.control, spec.treatment, 0.0, actor)
        return self.store.transition(
            stored, actor, status=_ENDS[action], ended_at=self._clock.now()
        )

    def _set_weight(
        self,
        deployment: Deployment,
        control: str,
        treatment: str,
        weight: float | None,
        actor: str,
    ) -> None:
        """Give the treatment ``weight`` percent (``None``: all but the other variants' share)."""
        document = deployment.document()
        variants = document["spec"]["variants"]
        others = sum(
            v["weight"] for v in variants if v["name"] not in (control, treatment)
            and v["role"] != "shadow"
        )  # fmt: skip
        share = 100.0 - others
        treatment_weight = share if weight is None else min(weight, share)
        for variant in variants:
            if variant["name"] == treatment:
                variant["weight"] = treatment_weight
            elif variant["name"] == control:
                variant["weight"] = share - treatment_weight
        self.deployments.apply([document], actor, by_experiment=True)

    def _move_alias(self, stored: StoredExperiment, deployment: Deployment, actor: str) -> None:
        spec = stored.experiment.spec
        variants = {v.name: v for v in deployment.spec.variants}
        control, treatment = variants[spec.control], variants[spec.treatment]
        alias = spec.promotion.alias or control.ref.alias
        if alias is None or self._aliases is None:
            return
        model = treatment.ref.name
        version = self.deployments.registry.resolve(treatment.ref).version
        self._aliases.set_alias(model, alias, version, actor)

    def _move(
        self,
        name: str,
        actor: str,
        verb: str,
        allowed: tuple[str, ...],
        request_id: str | None,
        status: str,
        **changes: Any,
    ) -> StoredExperiment:
        stored = self.store.get(name)
        if stored.status not in allowed:
            raise Conflict(
                f"experiment {name!r} is {stored.status}; {verb} needs it " + " or ".join(allowed)
            )

        def work() -> tuple[StoredExperiment, dict[str, Any]]:
            moved = self.store.transition(stored, actor, status=status, **changes)
            return moved, {"from": stored.status, "to": status}

        return run_audited(
            self._audit, actor, f"experiment.{verb}", audit_text(name), work, request_id
        )

    # -- starting -------------------------------------------------------------------------------

    def _check(self, experiment: Experiment) -> None:
        spec = experiment.spec
        deployment = self.deployments.get(spec.deployment).deployment
        roles = {v.name: v.role for v in deployment.spec.variants}
        where = f"experiment {experiment.name!r}"
        for field, role in (("control", "control"), ("treatment", "treatment")):
            variant = getattr(spec, field)
            if variant not in roles:
                raise InvalidInput(
                    f"{where}: deployment {spec.deployment!r} has no variant {variant!r} "
                    f"(spec.{field}); its variants are {', '.join(sorted(roles))}"
                )
            if roles[variant] != role:
                raise InvalidInput(
                    f"{where}: spec.{field} {variant!r} has role {roles[variant]!r} in "
                    f"deployment {spec.deployment!r}; an experiment needs a variant with role "
                    f"{role!r} there"
                )

    def _apply(
        self, experiment: Experiment, actor: str, request_id: str | None
    ) -> AppliedExperiment:
        def work() -> tuple[AppliedExperiment, dict[str, Any]]:
            current = self.store.find(experiment.name)
            if current is None:
                stored = self.store.create(experiment, actor)
                if experiment.spec.steps:
                    deployment = self.deployments.get(experiment.spec.deployment).deployment
                    spec = experiment.spec
                    weight = spec.steps[0].weight
                    self._set_weight(deployment, spec.control, spec.treatment, weight, actor)
                return AppliedExperiment(stored, True, True), {"created": True}
            _same_comparison(current, experiment)
            stored, changed = self.store.replace(experiment, actor)
            return AppliedExperiment(stored, False, changed), {"changed": changed}

        return run_audited(
            self._audit, actor, "experiment.apply", audit_text(experiment.name), work, request_id
        )

    def list(self) -> list[StoredExperiment]:
        """Every experiment, by name."""
        return self.store.list()


class PredictionLogData:
    """:class:`ExperimentData` read from the prediction log and the feedback table.

    Args:
        source: The log's Parquet folder, or the PostgreSQL URL of its table.
        feedback: The feedback table.
    """

    def __init__(self, source: Path | str, feedback: FeedbackStore) -> None:
        self._source = source
        self._feedback = feedback

    def rows(
        self, experiment: Experiment, shadows: Sequence[str], since: datetime, until: datetime
    ) -> ExperimentRows:
        """The experiment's arms (and the deployment's shadows) in ``[since, until)``."""
        spec = experiment.spec
        return experiment_rows(
            self._source,
            spec.deployment,
            since,
            until,
            arms=[spec.control, spec.treatment],
            shadows=shadows,
            task=spec.task,
            output=spec.output,
            score_output=spec.score_output,
            # Feedback is for predictions, so none of the window's can be older than it.
            feedback=self._feedback.read(spec.deployment, since),
        )

    def counts(self, deployment: str, since: datetime, until: datetime) -> dict[str, int]:
        """Requests per variant in ``[since, until)``."""
        return arm_counts(self._source, deployment, since, until)


def describe_experiment(
    stored: StoredExperiment, decisions: Sequence[StoredDecision] = ()
) -> dict[str, Any]:
    """An experiment as the API and ``--output json`` show it (JSON-ready)."""
    return {
        "name": stored.name,
        "deployment": stored.deployment,
        "status": stored.status,
        "generation": stored.generation,
        "step": stored.step,
        "startedAt": stored.started_at.isoformat(),
        "stepStartedAt": stored.step_started_at.isoformat(),
        "srmAcknowledgedAt": _iso(stored.srm_since),
        "endedAt": _iso(stored.ended_at),
        "createdBy": stored.created_by,
        "updatedAt": stored.updated_at.isoformat(),
        "updatedBy": stored.updated_by,
        "document": stored.experiment.document(),
        "decisions": [
            {
                "id": d.id,
                "at": d.at.isoformat(),
                "decision": d.decision,
                "reason": d.reason,
                "inputs": d.inputs,
            }
            for d in decisions
        ],
    }


def _same_comparison(current: StoredExperiment, experiment: Experiment) -> None:
    before, after = current.experiment.spec, experiment.spec
    if current.status not in ACTIVE and current.experiment != experiment:
        raise Conflict(
            f"experiment {experiment.name!r} has ended ({current.status}); start a new one "
            "under another name"
        )
    for field in ("deployment", "control", "treatment", "steps"):
        if getattr(before, field) != getattr(after, field):
            raise Conflict(
                f"experiment {experiment.name!r} already compares {before.deployment}: "
                f"{before.control} vs {before.treatment}; spec.{field} cannot change while it "
                "exists: start a new experiment under another name"
            )


def _arm(rows: Rows, variant: str) -> ArmData:
    arm: ArmData = rows.arms[variant]
    return arm


def _parsed(document: Document, number: int) -> Experiment:
    kind = document.get("kind")
    if kind != "Experiment":
        raise InvalidInput(f"document {number}: kind {kind!r} is not 'Experiment'")
    try:
        return parse_experiment(document)
    except InvalidInput as exc:
        raise InvalidInput(f"document {number}: {exc.message}") from None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _json_ready(value: Any) -> Any:
    """Floats that JSON cannot hold (NaN, infinities) as ``None``; tuples as lists."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value
