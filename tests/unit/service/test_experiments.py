"""The experiment service over real stores, a real Parquet prediction log and real feedback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from modelport.core.errors import Conflict, InvalidInput, NotFound
from modelport.experiments.experiment_store import ExperimentStore
from modelport.experiments.feedback import Feedback, FeedbackStore
from modelport.experiments.store import DeploymentStore
from modelport.monitoring.prediction_log import ParquetSink, PredictionLog, PredictionRecord
from modelport.registry import MetadataStore
from modelport.service.deployments import DeploymentService
from modelport.service.experiments import ExperimentService, PredictionLogData
from modelport.testing import FakeClock
from tests.contract.registry._support import new_version


class Audit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str, str]] = []

    def append_audit(self, actor: str, action: str, target: str, outcome: str, *_: Any) -> None:
        self.entries.append((actor, action, target, outcome))


class Aliases:
    def __init__(self, registry: MetadataStore) -> None:
        self.registry = registry

    def set_alias(self, name: str, alias: str, version: int, actor: str) -> Any:
        return self.registry.set_alias(name, alias, version, actor)


@dataclass
class World:
    service: ExperimentService
    deployments: DeploymentStore
    registry: MetadataStore
    feedback: FeedbackStore
    folder: Path
    clock: FakeClock
    audit: Audit

    def traffic(
        self, arm: str, n: int, accuracy: float, *, seed: int, latency: float = 5.0
    ) -> None:
        """Log ``n`` answered requests of ``arm`` a minute ago, with feedback for each."""
        rng = np.random.default_rng(seed)
        log = PredictionLog(ParquetSink(self.folder), flush_interval_s=60)
        items = []
        at = self.clock.now() - timedelta(seconds=30)
        for _ in range(n):
            request_id = uuid.uuid4().hex
            truth = int(rng.integers(0, 2))
            label = truth if rng.random() < accuracy else 1 - truth
            log.log(
                PredictionRecord(
                    request_id, at, "fraud", arm, "fraud", "1" if arm == "a" else "2", False,
                    float(rng.gamma(4, latency / 4)), None, '{"x": [[1.0]]}',
                    orjson.dumps({"label": [label]}).decode(),
                )
            )  # fmt: skip
            items.append(Feedback(request_id, "label", str(truth), None))
        log.close()
        self.feedback.put("fraud", items, "tester")

    def deployment_weights(self) -> dict[str, float]:
        variants = self.deployments.get("fraud").deployment.spec.variants
        return {v.name: v.weight for v in variants}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    url, clock = f"sqlite:///{tmp_path / 'm.db'}", FakeClock()
    audit = Audit()
    with (
        DeploymentStore(url, clock) as deployments,
        MetadataStore(url, clock) as registry,
        ExperimentStore(url, clock) as store,
        FeedbackStore(url, clock) as feedback,
    ):
        registry.create_version(new_version("fraud"))
        registry.create_version(new_version("fraud"))
        registry.set_alias("fraud", "production", 1, "alice")

        def owner(name: str) -> tuple[str, str, str] | None:
            running = store.active(name)
            if running is None:
                return None
            return running.name, running.experiment.spec.control, running.experiment.spec.treatment

        service = DeploymentService(deployments, registry, audit, owner)
        service.apply([deployment()], "alice")
        folder = tmp_path / "predictions"
        data = PredictionLogData(folder, feedback)
        experiments = ExperimentService(store, service, audit, clock, data, Aliases(registry))
        yield World(experiments, deployments, registry, feedback, folder, clock, audit)


def deployment(a: float = 50, b: float = 50) -> dict[str, Any]:
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "Deployment",
        "metadata": {"name": "fraud"},
        "spec": {
            "variants": [
                {"name": "a", "model": "fraud@production", "weight": a, "role": "control"},
                {"name": "b", "model": "fraud@2", "weight": b, "role": "treatment"},
            ]
        },
    }


def experiment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "Experiment",
        "metadata": {"name": "exp"},
        "spec": {
            "deployment": "fraud",
            "control": "a",
            "treatment": "b",
            "primary": {"metric": "accuracy"},
            "minSamples": 200,
            "maxDuration": "1h",
            **spec,
        },
    }


def test_a_worse_treatment_is_rolled_back_on_evidence(world: World) -> None:
    world.service.apply([experiment()], "alice")
    world.clock.advance(60)
    world.traffic("a", 600, 0.9, seed=1)
    world.traffic("b", 600, 0.6, seed=2)
    decision = world.service.evaluate("exp")
    assert decision.action == "rollback", decision.reason
    assert world.deployment_weights() == {"a": 100.0, "b": 0.0}
    stored = world.service.get("exp")
    assert stored.status == "rolled_back" and stored.ended_at is not None
    [recorded] = world.service.decisions("exp")
    assert recorded.decision == "rollback"
    assert recorded.inputs["comparisons"][0]["verdict"] == "worse"
    assert recorded.inputs["feedback"] == {"rows": 1200, "unmatched": 0}
    assert ("experiment:exp", "experiment.decide", "exp", "ok") in world.audit.entries
    assert ("experiment:exp", "deployment.apply", "fraud", "ok") in world.audit.entries
    with pytest.raises(Conflict, match="only running ones"):
        world.service.evaluate("exp")


def test_a_better_treatment_is_promoted_and_the_alias_moves(world: World) -> None:
    world.service.apply([experiment()], "alice")
    world.clock.advance(60)
    world.traffic("a", 600, 0.6, seed=3)
    world.traffic("b", 600, 0.9, seed=4)
    assert world.service.evaluate("exp").action == "promote"
    assert world.deployment_weights() == {"a": 0.0, "b": 100.0}
    history = world.registry.alias_history("fraud", "production")
    assert history[-1].version == 2 and history[-1].actor == "experiment:exp"


def test_too_little_traffic_waits_then_ends_inconclusive(world: World) -> None:
    world.service.apply([experiment()], "alice")
    world.clock.advance(60)
    world.traffic("a", 40, 0.6, seed=5)
    world.traffic("b", 40, 0.99, seed=6)
    assert world.service.evaluate("exp").action == "not_enough_data"
    world.clock.advance(3600)
    assert world.service.evaluate("exp").action == "inconclusive"
    assert world.service.get("exp").status == "inconclusive"
    assert world.deployment_weights() == {"a": 100.0, "b": 0.0}


def test_a_sample_ratio_mismatch_blocks_until_acknowledged(world: World) -> None:
    world.service.apply([experiment()], "alice")
    world.clock.advance(60)
    world.traffic("a", 900, 0.9, seed=7)
    world.traffic("b", 300, 0.5, seed=8)  # 50/50 configured: a broken router
    decision = world.service.evaluate("exp")
    assert decision.action == "blocked" and "sample-ratio mismatch" in decision.reason
    assert world.service.get("exp").status == "blocked"
    assert world.deployment_weights() == {"a": 50.0, "b": 50.0}  # nothing changed
    world.service.acknowledge("exp", "alice")
    world.clock.advance(60)
    assert world.service.get("exp").status == "running"
    assert world.service.evaluate("exp").action == "rollback"  # counted from the ack


def test_a_canary_starts_at_its_first_step_and_advances(world: World) -> None:
    steps = [{"weight": 10, "minDuration": "1m"}, {"weight": 50, "minDuration": "1m"}]
    world.service.apply([experiment(steps=steps, minSamples=50)], "alice")
    assert world.deployment_weights() == {"a": 90.0, "b": 10.0}
    world.clock.advance(120)
    world.traffic("a", 900, 0.8, seed=9)
    world.traffic("b", 100, 0.8, seed=10)
    assert world.service.evaluate("exp").action == "advance"
    assert world.deployment_weights() == {"a": 50.0, "b": 50.0}
    assert world.service.get("exp").step == 1


def test_bad_experiments_are_refused_and_nothing_changes(world: World) -> None:
    with pytest.raises(NotFound, match="no deployment 'nope'"):
        world.service.apply([experiment(deployment="nope")], "alice")
    with pytest.raises(InvalidInput, match="has no variant 'c'"):
        world.service.apply([experiment(treatment="c")], "alice")
    with pytest.raises(InvalidInput, match="needs a variant with role 'control'"):
        world.service.apply([experiment(control="b", treatment="a")], "alice")
    assert world.service.list() == []
    with pytest.raises(NotFound, match="no experiment 'ghost'"):
        world.service.pause("ghost", "alice")
    world.service.apply([experiment()], "alice")
    second = experiment() | {"metadata": {"name": "other"}}
    with pytest.raises(Conflict, match="already runs experiment 'exp'"):
        world.service.apply([second], "alice")
    with pytest.raises(Conflict, match="spec.steps cannot change"):
        world.service.apply([experiment(steps=[{"weight": 10}])], "alice")
    assert world.deployment_weights() == {"a": 50.0, "b": 50.0}


def test_pause_resume_abort(world: World) -> None:
    world.service.apply([experiment()], "alice")
    assert world.service.pause("exp", "alice").status == "paused"
    with pytest.raises(Conflict, match="only running ones"):
        world.service.evaluate("exp")
    assert world.service.evaluate_due() is None  # paused: not evaluated
    with pytest.raises(Conflict, match="acknowledge needs it blocked"):
        world.service.acknowledge("exp", "alice")
    assert world.service.resume("exp", "alice").status == "running"
    with pytest.raises(Conflict, match="is running"):
        world.service.delete("exp", "alice")
    assert world.service.abort("exp", "alice").status == "aborted"
    assert world.deployment_weights() == {"a": 100.0, "b": 0.0}
    with pytest.raises(Conflict, match="has ended"):
        world.service.promote("exp", "alice")
    world.service.delete("exp", "alice")
    assert world.service.list() == []


def test_a_running_experiment_owns_its_split(world: World) -> None:
    steps = [{"weight": 10, "minDuration": "1m"}, {"weight": 50, "minDuration": "1m"}]
    world.service.apply([experiment(steps=steps)], "alice")
    deployments = world.service.deployments
    deployments.apply([deployment(100, 0)], "ci")  # the same file applied again by a pipeline
    assert world.deployment_weights() == {"a": 90.0, "b": 10.0}
    dropped = deployment()
    dropped["spec"]["variants"] = dropped["spec"]["variants"][:1]
    dropped["spec"]["variants"][0]["weight"] = 100
    with pytest.raises(InvalidInput, match="keep both variants, or end the experiment"):
        deployments.apply([dropped], "ci")
    world.service.abort("exp", "alice")
    deployments.apply([deployment(30, 70)], "ci")  # ended: the file's weights again
    assert world.deployment_weights() == {"a": 30.0, "b": 70.0}
