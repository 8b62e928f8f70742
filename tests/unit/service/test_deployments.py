"""The deployment service: all documents checked before any write, and an audit that must work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelport.core.errors import InvalidInput, NotFound, ServiceUnavailable
from modelport.experiments.store import DeploymentStore
from modelport.registry import MetadataStore
from modelport.service.deployments import DeploymentService
from modelport.testing import FakeClock
from tests.contract.registry._support import new_version


class BrokenAudit:
    """An audit log that cannot be written."""

    def __init__(self) -> None:
        self.calls = 0

    def append_audit(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        raise ServiceUnavailable("the audit log cannot be written")


def doc(model: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "Deployment",
        "metadata": {"name": "fraud"},
        "spec": {"variants": [{"name": "only", "model": model, "weight": 100}]},
    }


def test_an_apply_whose_audit_entry_cannot_be_written_is_not_performed(tmp_path: Path) -> None:
    url, clock = f"sqlite:///{tmp_path / 'm.db'}", FakeClock()
    audit = BrokenAudit()
    with DeploymentStore(url, clock) as store, MetadataStore(url, clock) as registry:
        registry.create_version(new_version("fraud"))
        service = DeploymentService(store, registry, audit)
        with pytest.raises(ServiceUnavailable, match="audit log cannot be written"):
            service.apply([doc("fraud@1")], "alice")
        assert audit.calls == 1 and store.list() == []
        with pytest.raises(NotFound, match="spec.variants\\[0\\] \\(only\\)"):
            service.apply([doc("fraud@2")], "alice")  # refused before the audit is even tried
        assert audit.calls == 1


def test_documents_are_all_checked_before_any_is_written(tmp_path: Path) -> None:
    url, clock = f"sqlite:///{tmp_path / 'm.db'}", FakeClock()
    with DeploymentStore(url, clock) as store, MetadataStore(url, clock) as registry:
        service = DeploymentService(store, registry, None)
        good = doc("fraud@1") | {"metadata": {"name": "good"}}
        with pytest.raises(Exception, match="document 2"):
            service.apply([good, {"kind": "Deployment"}], "alice")
        assert store.list() == []


class Probe:
    """Replicas that answer unless listed in ``down``."""

    def __init__(self, down: dict[str, str]) -> None:
        self.down = down
        self.asked: list[tuple[list[str], list[str]]] = []

    def unreachable(self, urls: Any, dns: Any) -> dict[str, str]:
        self.asked.append((list(urls), list(dns)))
        return {t: why for t, why in self.down.items() if t in urls or t in dns}


def test_replicas_must_answer_before_anything_is_written(tmp_path: Path) -> None:
    url, clock = f"sqlite:///{tmp_path / 'm.db'}", FakeClock()
    with DeploymentStore(url, clock) as store, MetadataStore(url, clock) as registry:
        registry.create_version(new_version("fraud"))
        service = DeploymentService(store, registry, None)
        fine = doc("fraud@1") | {"metadata": {"name": "fine"}}
        remote = doc("fraud@1")
        remote["spec"]["replicas"] = {"urls": ["http://a:8080", "http://b:8080"]}
        named = doc("fraud@1") | {"metadata": {"name": "named"}}
        named["spec"] = {**named["spec"], "replicas": {"dns": "fraud.svc:8080"}}
        probe = Probe({"http://b:8080": "cannot connect", "fraud.svc:8080": "does not resolve"})
        with pytest.raises(InvalidInput) as refused:
            service.apply([fine, remote, named], "alice", probe=probe)
        assert refused.value.message == (
            "replicas must answer before a deployment points at them; nothing was applied: "
            "deployment 'fraud', spec.replicas.urls[1] http://b:8080: cannot connect; "
            "deployment 'named', spec.replicas.dns fraud.svc:8080: does not resolve"
        )
        assert probe.asked == [(["http://a:8080", "http://b:8080"], ["fraud.svc:8080"])]
        assert store.list() == []
        applied = service.apply([fine, remote, named], "alice")  # no probe: not checked
        assert [a.stored.name for a in applied] == ["fine", "fraud", "named"]
