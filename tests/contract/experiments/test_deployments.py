"""The deployment store, against SQLite and PostgreSQL: idempotent apply, generations, delete."""

from __future__ import annotations

import copy
import multiprocessing
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from modelport.core.deployment import Deployment, parse_deployment
from modelport.core.errors import Conflict, NotFound
from modelport.experiments._schema import MIGRATIONS, metadata
from modelport.experiments.store import DeploymentStore
from modelport.registry import MetadataStore
from modelport.security.store import SecurityStore
from modelport.testing import FakeClock
from tests.contract._schema import schema_drift

DOC: dict[str, Any] = {
    "apiVersion": "modelport.io/v1",
    "kind": "Deployment",
    "metadata": {"name": "fraud"},
    "spec": {
        "variants": [
            {"name": "current", "model": "fraud@3", "weight": 90},
            {"name": "candidate", "model": "fraud@4", "weight": 10, "role": "treatment"},
        ],
        "traffic": {"stickyKey": {"header": "X-User-Id"}},
    },
}


def deployment(name: str = "fraud", candidate_weight: float = 10) -> Deployment:
    doc = copy.deepcopy(DOC)
    doc["metadata"]["name"] = name
    doc["spec"]["variants"][0]["weight"] = 100 - candidate_weight
    doc["spec"]["variants"][1]["weight"] = candidate_weight
    return parse_deployment(doc)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(backend_url: str, clock: FakeClock) -> Iterator[DeploymentStore]:
    with DeploymentStore(backend_url, clock) as opened:
        yield opened


def test_a_new_deployment_starts_at_generation_one(
    store: DeploymentStore, clock: FakeClock
) -> None:
    applied = store.apply(deployment(), "key:alice")
    assert applied.changed and applied.previous is None
    stored = applied.stored
    assert stored.generation == 1 and stored.deployment == deployment()
    assert stored.created_by == stored.updated_by == "key:alice"
    assert stored.created_at == stored.updated_at == clock.now()
    assert store.get("fraud") == stored


def test_applying_the_same_document_again_changes_nothing(
    store: DeploymentStore, clock: FakeClock
) -> None:
    first = store.apply(deployment(), "key:alice").stored
    clock.advance(300)
    again = store.apply(deployment(), "key:bob")
    assert not again.changed and again.stored == first and again.previous == deployment()


def test_a_change_raises_the_generation_and_returns_what_it_replaced(
    store: DeploymentStore, clock: FakeClock
) -> None:
    store.apply(deployment(), "key:alice")
    clock.advance(300)
    applied = store.apply(deployment(candidate_weight=50), "key:bob")
    assert applied.changed and applied.previous == deployment()
    stored = applied.stored
    assert stored.generation == 2 and stored.deployment == deployment(candidate_weight=50)
    assert (stored.created_by, stored.updated_by) == ("key:alice", "key:bob")
    assert stored.updated_at - stored.created_at == timedelta(minutes=5)


def test_list_generations_and_delete(store: DeploymentStore) -> None:
    store.apply(deployment("fraud"), "a")
    store.apply(deployment("churn"), "a")
    store.apply(deployment("churn", candidate_weight=0), "a")
    assert [s.name for s in store.list()] == ["churn", "fraud"]
    assert store.generations() == {"churn": 2, "fraud": 1}
    removed = store.delete("churn")
    assert removed.deployment == deployment("churn", candidate_weight=0)
    assert store.generations() == {"fraud": 1}
    with pytest.raises(NotFound, match="no deployment 'churn'"):
        store.get("churn")
    with pytest.raises(NotFound, match="no deployment 'churn'"):
        store.delete("churn")


def test_a_deleted_deployment_applied_again_starts_over(store: DeploymentStore) -> None:
    store.apply(deployment(), "a")
    store.apply(deployment(candidate_weight=20), "a")
    store.delete("fraud")
    assert store.apply(deployment(), "a").stored.generation == 1


def _apply_in_a_process(url: str, weight: float, barrier: Any, results: Any) -> None:
    with DeploymentStore(url, FakeClock()) as store:
        barrier.wait()
        try:
            applied = store.apply(deployment(candidate_weight=weight), f"p{weight:g}")
            results.put(("ok", applied.stored.generation))
        except Conflict:
            results.put(("conflict", 0))


def test_concurrent_writers_never_lose_a_change(backend_url: str, clock: FakeClock) -> None:
    with DeploymentStore(backend_url, clock) as store:
        store.apply(deployment(), "a")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_apply_in_a_process, args=(backend_url, w, barrier, results))
        for w in (20, 30, 40, 50)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    got = sorted(results.get(timeout=5) for _ in procs)
    assert all(outcome == "ok" for outcome, _ in got)  # the row exists: writers queue on it
    assert [generation for _, generation in got] == [2, 3, 4, 5]
    with DeploymentStore(backend_url, clock) as store:
        assert store.get("fraud").generation == 5


def test_migrated_schema_matches_the_table_definitions(backend_url: str, clock: FakeClock) -> None:
    DeploymentStore(backend_url, clock).close()
    assert schema_drift(backend_url, MIGRATIONS, metadata) == []


def test_it_shares_the_database_with_the_registry_and_security(
    backend_url: str, clock: FakeClock
) -> None:
    with MetadataStore(backend_url, clock), SecurityStore(backend_url, clock):
        pass
    with DeploymentStore(backend_url, clock) as store:
        store.apply(deployment(), "a")
    with MetadataStore(backend_url, clock), DeploymentStore(backend_url, clock) as store:
        assert store.get("fraud").generation == 1
