"""The alert rule store, against SQLite and PostgreSQL: idempotent apply, generations, delete.

Also the whole monitoring state schema (drift windows and results, alert rules): the migrated
database matches the table definitions of ``_state_schema.py``.
"""

from __future__ import annotations

import copy
import multiprocessing
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from modelport.core.alert import AlertRule, parse_alert_rule
from modelport.core.errors import Conflict, NotFound
from modelport.experiments.store import DeploymentStore
from modelport.monitoring._state_schema import MIGRATIONS, metadata
from modelport.monitoring.alert_rules import AlertRuleStore
from modelport.security.store import SecurityStore
from modelport.testing import FakeClock
from tests.contract._schema import schema_drift

DOC: dict[str, Any] = {
    "apiVersion": "modelport.io/v1",
    "kind": "AlertRule",
    "metadata": {"name": "fraud-errors"},
    "spec": {
        "deployment": "fraud",
        "for": "2m",
        "condition": {"errorRate": {"above": 0.05, "window": "5m"}},
        "labels": {"team": "risk"},
    },
}


def rule(name: str = "fraud-errors", deployment: str = "fraud", above: float = 0.05) -> AlertRule:
    doc = copy.deepcopy(DOC)
    doc["metadata"]["name"] = name
    doc["spec"]["deployment"] = deployment
    doc["spec"]["condition"]["errorRate"]["above"] = above
    return parse_alert_rule(doc)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(backend_url: str, clock: FakeClock) -> Iterator[AlertRuleStore]:
    with AlertRuleStore(backend_url, clock) as opened:
        yield opened


def test_a_new_rule_starts_at_generation_one(store: AlertRuleStore, clock: FakeClock) -> None:
    applied = store.apply(rule(), "key:alice")
    assert applied.changed and applied.previous is None
    stored = applied.stored
    assert stored.generation == 1 and stored.rule == rule()
    assert (stored.name, stored.deployment) == ("fraud-errors", "fraud")
    assert stored.created_by == stored.updated_by == "key:alice"
    assert stored.created_at == stored.updated_at == clock.now()
    assert store.get("fraud-errors") == stored == store.find("fraud-errors")
    assert store.find("nothing") is None


def test_applying_the_same_document_again_changes_nothing(
    store: AlertRuleStore, clock: FakeClock
) -> None:
    first = store.apply(rule(), "key:alice").stored
    clock.advance(300)
    again = store.apply(rule(), "key:bob")
    assert not again.changed and again.stored == first and again.previous == rule()


def test_a_change_raises_the_generation_and_returns_what_it_replaced(
    store: AlertRuleStore, clock: FakeClock
) -> None:
    store.apply(rule(), "key:alice")
    clock.advance(300)
    applied = store.apply(rule(above=0.1), "key:bob")
    assert applied.changed and applied.previous == rule()
    stored = applied.stored
    assert stored.generation == 2 and stored.rule == rule(above=0.1)
    assert (stored.created_by, stored.updated_by) == ("key:alice", "key:bob")
    assert stored.updated_at - stored.created_at == timedelta(minutes=5)


def test_a_rule_moved_to_another_deployment_is_listed_under_it(store: AlertRuleStore) -> None:
    store.apply(rule(), "a")
    store.apply(rule(deployment="churn"), "a")
    assert store.list("fraud") == []
    assert [s.name for s in store.list("churn")] == ["fraud-errors"]


def test_list_by_deployment_generations_and_delete(store: AlertRuleStore) -> None:
    store.apply(rule("fraud-errors"), "a")
    store.apply(rule("churn-errors", "churn"), "a")
    store.apply(rule("churn-errors", "churn", above=0.2), "a")
    store.apply(rule("a-fraud-rule"), "a")
    assert [s.name for s in store.list()] == ["a-fraud-rule", "churn-errors", "fraud-errors"]
    assert [s.name for s in store.list("fraud")] == ["a-fraud-rule", "fraud-errors"]
    assert store.list("nothing") == []
    assert store.generations() == {"a-fraud-rule": 1, "churn-errors": 2, "fraud-errors": 1}
    removed = store.delete("churn-errors")
    assert removed.rule == rule("churn-errors", "churn", above=0.2)
    assert store.generations() == {"a-fraud-rule": 1, "fraud-errors": 1}
    with pytest.raises(NotFound, match="no alert rule 'churn-errors'"):
        store.get("churn-errors")
    with pytest.raises(NotFound, match="no alert rule 'churn-errors'"):
        store.delete("churn-errors")


def test_a_deleted_rule_applied_again_starts_over(store: AlertRuleStore) -> None:
    store.apply(rule(), "a")
    store.apply(rule(above=0.2), "a")
    store.delete("fraud-errors")
    assert store.apply(rule(), "a").stored.generation == 1


def _apply_in_a_process(url: str, above: float, barrier: Any, results: Any) -> None:
    with AlertRuleStore(url, FakeClock()) as store:
        barrier.wait()
        try:
            applied = store.apply(rule(above=above), f"p{above:g}")
            results.put(("ok", applied.stored.generation))
        except Conflict:
            results.put(("conflict", 0))


def test_concurrent_writers_never_lose_a_change(backend_url: str, clock: FakeClock) -> None:
    with AlertRuleStore(backend_url, clock) as store:
        store.apply(rule(), "a")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_apply_in_a_process, args=(backend_url, a, barrier, results))
        for a in (0.1, 0.2, 0.3, 0.4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    got = sorted(results.get(timeout=5) for _ in procs)
    assert all(outcome == "ok" for outcome, _ in got)  # the row exists: writers queue on it
    assert [generation for _, generation in got] == [2, 3, 4, 5]
    with AlertRuleStore(backend_url, clock) as store:
        assert store.get("fraud-errors").generation == 5


def test_migrated_schema_matches_the_table_definitions(backend_url: str, clock: FakeClock) -> None:
    """The whole monitoring state schema: drift windows and results, alert rules."""
    AlertRuleStore(backend_url, clock).close()
    assert schema_drift(backend_url, MIGRATIONS, metadata) == []


def test_it_shares_the_database_with_deployments_and_security(
    backend_url: str, clock: FakeClock
) -> None:
    with DeploymentStore(backend_url, clock), SecurityStore(backend_url, clock):
        pass
    with AlertRuleStore(backend_url, clock) as store:
        store.apply(rule(), "a")
    with DeploymentStore(backend_url, clock), AlertRuleStore(backend_url, clock) as store:
        assert store.get("fraud-errors").generation == 1
