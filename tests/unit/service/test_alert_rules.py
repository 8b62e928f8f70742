"""The alert rule service: all documents checked first, authorised on the deployment, audited."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelport.core.deployment import parse_deployment
from modelport.core.errors import InvalidInput, NotFound, PermissionDenied, ServiceUnavailable
from modelport.experiments.store import DeploymentStore
from modelport.monitoring.alert_rules import AlertRuleStore
from modelport.security.identity import AuthMethod, Identity, parse_grants
from modelport.security.rbac import Action, authorize
from modelport.service.alert_rules import AlertRuleService, describe_rule, rule_changes
from modelport.testing import FakeClock

RULE: dict[str, Any] = {
    "apiVersion": "modelport.io/v1",
    "kind": "AlertRule",
    "metadata": {"name": "fraud-latency"},
    "spec": {
        "deployment": "fraud",
        "severity": "critical",
        "for": "2m",
        "condition": {"latencySlo": {"threshold": 0.25, "objective": 0.99}},
    },
}


def rule(name: str = "fraud-latency", deployment: str = "fraud", **spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(RULE)
    doc["metadata"]["name"] = name
    doc["spec"]["deployment"] = deployment
    doc["spec"].update(spec)
    return doc


@dataclass
class Audit:
    """An audit log in memory; ``broken`` makes every append fail."""

    broken: bool = False

    def __post_init__(self) -> None:
        self.entries: list[tuple[Any, ...]] = []

    def append_audit(self, *entry: Any) -> None:
        if self.broken:
            raise ServiceUnavailable("the audit log cannot be written")
        self.entries.append(entry)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[AlertRuleStore, DeploymentStore]]:
    url, clock = f"sqlite:///{tmp_path / 'm.db'}", FakeClock()
    with AlertRuleStore(url, clock) as rules, DeploymentStore(url, clock) as deployments:
        for name in ("fraud", "churn"):
            deployments.apply(
                parse_deployment(
                    {
                        "apiVersion": "modelport.io/v1",
                        "kind": "Deployment",
                        "metadata": {"name": name},
                        "spec": {"variants": [{"name": "v", "model": f"{name}@1", "weight": 100}]},
                    }
                ),
                "tests",
            )
        yield rules, deployments


@pytest.fixture
def audit() -> Audit:
    return Audit()


@pytest.fixture
def service(stores: tuple[AlertRuleStore, DeploymentStore], audit: Audit) -> AlertRuleService:
    return AlertRuleService(*stores, audit)


def caller(*grants: str, action: Action = Action.MANAGE) -> Any:
    identity = Identity("key:k1", parse_grants(list(grants)), AuthMethod.API_KEY)
    return lambda deployment: authorize(identity, action, deployment, what="deployment")


def test_apply_get_list_and_delete_are_audited_with_the_diff(
    service: AlertRuleService, audit: Audit
) -> None:
    created = service.apply([rule()], "alice", request_id="r1")[0]
    assert created.changed and created.previous is None and created.stored.generation == 1
    again = service.apply([rule()], "alice")[0]
    assert not again.changed and again.stored.generation == 1 and rule_changes(again) == []
    changed = service.apply([rule(severity="warning")], "bob")[0]
    assert changed.stored.generation == 2
    assert rule_changes(changed) == ['spec.severity: "critical" -> "warning"']
    shown = describe_rule(service.get("fraud-latency"))
    assert shown["deployment"] == "fraud" and shown["updatedBy"] == "bob"
    assert shown["document"]["spec"]["condition"]["latencySlo"]["windows"][0]["burnRate"] == 14.4
    assert [s.name for s in service.list("fraud")] == ["fraud-latency"] and not service.list("x")
    removed = service.delete("fraud-latency", "carol")
    assert removed.generation == 2 and service.list() == []
    actions = [(e[0], e[1], e[2], e[3]) for e in audit.entries]
    assert actions == [
        ("alice", "alertrule.apply", "fraud-latency", "started"),
        ("alice", "alertrule.apply", "fraud-latency", "ok"),
        ("alice", "alertrule.apply", "fraud-latency", "started"),
        ("alice", "alertrule.apply", "fraud-latency", "ok"),
        ("bob", "alertrule.apply", "fraud-latency", "started"),
        ("bob", "alertrule.apply", "fraud-latency", "ok"),
        ("carol", "alertrule.delete", "fraud-latency", "started"),
        ("carol", "alertrule.delete", "fraud-latency", "ok"),
    ]
    assert audit.entries[1][4] == "r1"
    assert audit.entries[5][5] == {
        "deployment": "fraud",
        "generation": 2,
        "changed": True,
        "changes": ['spec.severity: "critical" -> "warning"'],
    }
    assert audit.entries[7][5] == {"deployment": "fraud", "generation": 2}


def test_a_rule_of_a_deployment_that_does_not_exist_is_refused_naming_it(
    service: AlertRuleService, audit: Audit
) -> None:
    with pytest.raises(NotFound, match="spec.deployment: no deployment 'ghost'") as raised:
        service.apply([rule("fine"), rule("ghost-latency", "ghost")], "alice")
    assert "alert rule 'ghost-latency'" in raised.value.message
    assert service.list() == [] and audit.entries == []
    # ... unless the same file applies the deployment first
    applied = service.apply([rule("ghost-latency", "ghost")], "alice", pending={"ghost"})
    assert applied[0].stored.deployment == "ghost"


def test_every_document_is_checked_before_any_is_written(service: AlertRuleService) -> None:
    bad = rule("bad")
    bad["spec"]["condition"] = {"errorRate": {"above": 2}}
    with pytest.raises(InvalidInput, match=r"document 2: .*spec\.condition\.errorRate\.above"):
        service.apply([rule(), bad], "alice")
    with pytest.raises(InvalidInput, match="document 1 has no kind"):
        service.apply([{"metadata": {"name": "x"}}], "alice")
    with pytest.raises(InvalidInput, match="kind 'Deployment' is not one"):
        service.apply([rule(), {"kind": "Deployment"}], "alice")
    with pytest.raises(InvalidInput, match="'fraud-latency' is given more than once"):
        service.apply([rule(), rule()], "alice")
    two = rule()
    two["spec"]["condition"]["errorRate"] = {"above": 0.1}
    with pytest.raises(InvalidInput, match="give exactly one condition"):
        service.apply([two], "alice")
    assert service.list() == []


def test_an_apply_whose_audit_entry_cannot_be_written_is_not_performed(
    stores: tuple[AlertRuleStore, DeploymentStore],
) -> None:
    service = AlertRuleService(*stores, Audit(broken=True))
    with pytest.raises(ServiceUnavailable, match="audit log cannot be written"):
        service.apply([rule()], "alice")
    assert service.list() == []


def test_changes_are_authorised_on_the_deployment_the_rule_watches(
    service: AlertRuleService,
) -> None:
    fraud_deployer = caller("deployer:fraud")
    assert service.apply([rule()], "k1", authorize=fraud_deployer)[0].changed
    with pytest.raises(PermissionDenied, match="churn"):
        service.apply([rule("churn-latency", "churn")], "k1", authorize=fraud_deployer)
    with pytest.raises(PermissionDenied):
        service.apply([rule()], "k1", authorize=caller("viewer:fraud"))
    # Moving a rule to another deployment needs both: it is taken from the one it watched.
    churn_deployer = caller("deployer:churn")
    with pytest.raises(PermissionDenied, match="fraud"):
        service.apply([rule(deployment="churn")], "k1", authorize=churn_deployer)
    assert service.get("fraud-latency").deployment == "fraud"
    both = caller("deployer:fraud", "deployer:churn")
    assert service.apply([rule(deployment="churn")], "k1", authorize=both)[0].changed
    with pytest.raises(PermissionDenied):
        service.delete("fraud-latency", "k1", authorize=fraud_deployer)
    with pytest.raises(PermissionDenied):
        service.get("fraud-latency", authorize=caller("viewer:fraud", action=Action.METADATA))
    shown = service.get("fraud-latency", authorize=caller("viewer:churn", action=Action.METADATA))
    assert shown.deployment == "churn"
    assert service.delete("fraud-latency", "k1", authorize=churn_deployer).deployment == "churn"


def test_an_unauthorised_caller_learns_nothing_from_validation(service: AlertRuleService) -> None:
    bad = rule("bad", "churn")
    bad["spec"]["condition"] = {"errorRate": {"above": 2}}
    with pytest.raises(PermissionDenied):
        service.apply([bad], "k1", authorize=caller("deployer:fraud"))


def test_listing_shows_only_the_deployments_the_caller_may_see(service: AlertRuleService) -> None:
    service.apply([rule(), rule("churn-latency", "churn")], "alice")
    every = service.list()
    assert [s.name for s in every] == ["churn-latency", "fraud-latency"]
    seen = service.list(visible=lambda names: {n for n in names if n == "churn"})
    assert [s.name for s in seen] == ["churn-latency"]
    assert service.list("fraud", visible=lambda names: set()) == []
