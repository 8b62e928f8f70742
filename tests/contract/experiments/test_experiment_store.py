"""The experiment store's contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modelport.core.errors import Conflict, InvalidInput, NotFound
from modelport.core.experiment import Experiment, parse_experiment
from modelport.experiments.experiment_store import ExperimentStore
from modelport.testing import FakeClock


def experiment(name: str = "exp", deployment: str = "fraud", **spec: Any) -> Experiment:
    return parse_experiment(
        {
            "apiVersion": "modelport.io/v1",
            "kind": "Experiment",
            "metadata": {"name": name},
            "spec": {
                "deployment": deployment,
                "control": "a",
                "treatment": "b",
                "primary": {"metric": "accuracy"},
                **spec,
            },
        }
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(backend_url: str, clock: FakeClock) -> Iterator[ExperimentStore]:
    with ExperimentStore(backend_url, clock) as opened:
        yield opened


def test_a_new_experiment_runs_from_step_zero(store: ExperimentStore, clock: FakeClock) -> None:
    stored = store.create(experiment(), "alice")
    assert (stored.status, stored.step, stored.generation) == ("running", 0, 1)
    assert stored.started_at == stored.step_started_at == clock.now()
    assert store.get("exp") == stored
    assert store.active("fraud") == stored
    assert store.active("other") is None


def test_one_active_experiment_per_deployment(store: ExperimentStore) -> None:
    store.create(experiment(), "alice")
    with pytest.raises(Conflict, match="already runs experiment 'exp'"):
        store.create(experiment("second"), "alice")
    with pytest.raises(Conflict, match="exists"):
        store.create(experiment(), "alice")
    store.create(experiment("elsewhere", deployment="other"), "alice")
    ended = store.transition(store.get("exp"), "alice", status="aborted")
    assert ended.status == "aborted"
    store.create(experiment("second"), "alice")  # the deployment is free again
    assert [s.name for s in store.list()] == ["elsewhere", "exp", "second"]
    assert [s.name for s in store.list("fraud")] == ["exp", "second"]


def test_transitions_check_the_generation_they_were_read_at(
    store: ExperimentStore, clock: FakeClock
) -> None:
    read = store.create(experiment(), "alice")
    clock.advance(5)
    moved = store.transition(read, "job", step=1, step_started_at=clock.now())
    assert (moved.step, moved.generation, moved.updated_by) == (1, 2, "job")
    assert moved.step_started_at == clock.now()
    with pytest.raises(Conflict, match="changed while this was decided"):
        store.transition(read, "person", status="paused")
    assert store.get("exp").status == "running"
    with pytest.raises(InvalidInput, match="cannot change"):
        store.transition(moved, "job", deployment="x")


def test_replace_keeps_where_it_stands(store: ExperimentStore) -> None:
    store.create(experiment(), "alice")
    store.transition(store.get("exp"), "job", step=1)
    same, changed = store.replace(experiment(), "bob")
    assert not changed and same.generation == 2
    stricter, changed = store.replace(experiment(alpha=0.01), "bob")
    assert changed and stricter.step == 1 and stricter.generation == 3
    assert stricter.experiment.spec.alpha == 0.01
    with pytest.raises(NotFound):
        store.replace(experiment("ghost"), "bob")


def test_decisions_newest_first_and_deleted_with_the_experiment(
    store: ExperimentStore, clock: FakeClock
) -> None:
    store.create(experiment(), "alice")
    assert store.last_decision_at("exp") is None
    for number in range(3):
        clock.advance(60)
        store.record("exp", "continue", f"look {number}", {"n": number, "ci": [0.1, 0.2]})
    decisions = store.decisions("exp", limit=2)
    assert [d.reason for d in decisions] == ["look 2", "look 1"]
    assert decisions[0].inputs == {"n": 2, "ci": [0.1, 0.2]}
    assert store.last_decision_at("exp") == clock.now()
    store.delete("exp")
    assert store.decisions("exp") == []
    with pytest.raises(NotFound):
        store.delete("exp")
