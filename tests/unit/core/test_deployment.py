"""The Deployment resource: what a valid document is, and errors that name the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelport.core.deployment import parse_deployment
from modelport.core.errors import InvalidInput

DOC: dict[str, Any] = {
    "apiVersion": "modelport.io/v1",
    "kind": "Deployment",
    "metadata": {"name": "fraud", "labels": {"team": "risk"}},
    "spec": {
        "variants": [
            {"name": "current", "model": "fraud@3", "weight": 90, "role": "control"},
            {"name": "candidate", "model": "fraud@candidate", "weight": 10, "role": "treatment"},
            {"name": "next", "model": "fraud@5", "role": "shadow", "mirror": 25},
        ],
        "traffic": {"stickyKey": {"header": "X-User-Id"}, "salt": "fraud-2026"},
        "replicas": {"urls": ["http://10.0.0.5:8080", "https://replica.internal:8443/"]},
        "cache": {"enabled": True, "ttlSeconds": 30},
        "predictionLog": {"sampleRate": 0.5, "redact": ["ssn"], "hash": ["email"]},
    },
}


def changed(path: str, value: Any) -> dict[str, Any]:
    """DOC with the field at ``path`` (dots; digits index lists) set to ``value``, or removed."""
    doc = copy.deepcopy(DOC)
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is _REMOVE:
        del node[key]
    else:
        node[key] = value
    return doc


_REMOVE = object()


def test_a_full_document_round_trips() -> None:
    deployment = parse_deployment(DOC)
    assert deployment.name == "fraud" and deployment.salt == "fraud-2026"
    variants = deployment.spec.variants
    assert [(v.name, v.role, v.weight, v.mirror) for v in variants] == [
        ("current", "control", 90, 0),
        ("candidate", "treatment", 10, 0),
        ("next", "shadow", 0, 25),
    ]
    assert str(variants[1].ref) == "fraud@candidate"
    assert deployment.spec.cache.ttl_seconds == 30 and deployment.spec.cache.backend == "memory"
    assert parse_deployment(deployment.document()) == deployment


def test_defaults_make_a_minimal_document() -> None:
    minimal = {
        "apiVersion": "modelport.io/v1",
        "kind": "Deployment",
        "metadata": {"name": "iris"},
        "spec": {"variants": [{"name": "only", "model": "iris@production", "weight": 100}]},
    }
    deployment = parse_deployment(minimal)
    assert deployment.salt == "iris"
    assert deployment.spec.replicas is None and not deployment.spec.cache.enabled
    assert deployment.spec.prediction_log.sample_rate == 1.0
    assert deployment.document()["spec"]["predictionLog"]["sampleRate"] == 1.0


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("apiVersion", "v1", "apiVersion: expected 'modelport.io/v1' (got 'v1')"),
        ("kind", "Service", "kind: expected 'Deployment' (got 'Service')"),
        ("metadata.name", "Fraud!", "metadata.name: invalid model name 'Fraud!'"),
        ("metadata", _REMOVE, "metadata: Field required"),
        (
            "spec.variants.0.weight",
            "ten",
            "spec.variants[0].weight: Input should be a valid number",
        ),
        ("spec.variants.0.weight", 80, "the weights of the variants must add up to 100, got 90"),
        ("spec.variants.1.weight", -10, "spec.variants[1].weight: Input should be greater than"),
        ("spec.variants.0.model", "fraud", "expected NAME@VERSION or NAME@ALIAS, got 'fraud'"),
        ("spec.variants.0.model", "fraud@0", "versions start at 1"),
        ("spec.variants.0.role", "primary", "spec.variants[0].role: Input should be 'control'"),
        ("spec.variants.0.colour", "red", "spec.variants[0].colour: unknown field"),
        ("spec.variants.1.name", "current", "['current'] appear more than once"),
        ("spec.variants", [], "spec.variants: List should have at least 1 item"),
        ("spec.variants.2.weight", 5, "a shadow variant answers no caller: give it mirror"),
        ("spec.variants.0.mirror", 5, "mirror is for shadow variants"),
        ("spec.traffic.stickyKey", {}, "spec.traffic.stickyKey: give exactly one of header or"),
        ("spec.traffic.stickyKey", {"header": "X User"}, "'X User' is not an HTTP header name"),
        ("spec.replicas", {"urls": ["ftp://x"]}, "expected http:// or https:// and a host"),
        ("spec.replicas", {"urls": ["http://x/v2"]}, "expected a base URL without a path"),
        ("spec.replicas", {"dns": "svc"}, "spec.replicas.dns: expected HOST:PORT, got 'svc'"),
        ("spec.replicas", {}, "spec.replicas: give urls or dns (one of them)"),
        ("spec.cache.backend", "disk", "spec.cache.backend: Input should be 'memory' or 'redis'"),
        ("spec.predictionLog.hash", ["ssn"], "['ssn'] are both redacted and hashed"),
        ("spec.predictionLog.sampleRate", 2, "less than or equal to 1"),
    ],
)
def test_a_bad_field_is_named_with_what_was_expected(path: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_deployment(changed(path, value))
    assert caught.value.message.startswith("invalid Deployment: ")
    assert message in caught.value.message


def test_only_control_and_treatment_carry_traffic() -> None:
    doc = changed("spec.variants", [{"name": "s", "model": "m@1", "role": "shadow", "mirror": 5}])
    with pytest.raises(InvalidInput, match="at least one variant must be a control or treatment"):
        parse_deployment(doc)


def test_every_problem_is_reported_at_once() -> None:
    doc = changed("kind", "Service")
    doc["spec"]["variants"][0]["weight"] = "ten"
    with pytest.raises(InvalidInput) as caught:
        parse_deployment(doc)
    assert "kind: expected 'Deployment'" in caught.value.message
    assert "spec.variants[0].weight" in caught.value.message


@pytest.mark.parametrize("document", [None, [], "fraud", 3])
def test_a_document_must_be_a_mapping(document: object) -> None:
    with pytest.raises(InvalidInput, match="a Deployment document is a mapping"):
        parse_deployment(document)
