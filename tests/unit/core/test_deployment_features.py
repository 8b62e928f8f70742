"""``spec.features`` of a Deployment: where the keys are, which features, what if one is missing."""

from __future__ import annotations

from typing import Any

import pytest

from modelport.core.deployment import parse_deployment
from modelport.core.errors import InvalidInput


def document(**features: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "entities": [
            {"joinKey": "user_id", "input": "user_id"},
            {"joinKey": "merchant_id", "parameter": "merchant_id"},
        ],
        "features": ["user_stats:spend_7d", "user_stats:orders_7d"],
    }
    spec.update(features)
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "Deployment",
        "metadata": {"name": "fraud"},
        "spec": {
            "variants": [{"name": "current", "model": "fraud@1", "weight": 100}],
            "features": spec,
        },
    }


def test_a_features_spec_reads_in_camel_case_with_reject_by_default() -> None:
    features = parse_deployment(document(input="x")).spec.features
    assert features is not None
    assert [(e.join_key, e.input, e.parameter) for e in features.entities] == [
        ("user_id", "user_id", None),
        ("merchant_id", None, "merchant_id"),
    ]
    assert features.on_missing == "reject" and features.input == "x"
    document_again = parse_deployment(document()).document()["spec"]["features"]
    assert document_again["onMissing"] == "reject"
    assert document_again["entities"][0]["joinKey"] == "user_id"


def test_deployments_without_features_have_none() -> None:
    doc = document()
    del doc["spec"]["features"]
    assert parse_deployment(doc).spec.features is None


def test_defaults_by_name_or_by_reference() -> None:
    features = parse_deployment(
        document(onMissing="default", defaults={"spend_7d": 0.0, "user_stats:orders_7d": 0})
    ).spec.features
    assert features is not None
    assert features.default("user_stats:spend_7d") == 0.0
    assert features.default("user_stats:orders_7d") == 0
    assert features.default("other:spend_7d") == 0.0  # by name: any view's spend_7d


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ({"entities": []}, "spec.features.entities"),
        (
            {"entities": [{"joinKey": "user_id", "input": "a", "parameter": "b"}]},
            r"spec.features.entities\[0\]: .*exactly one of input or parameter",
        ),
        ({"entities": [{"joinKey": "user id", "input": "a"}]}, "is not a join key"),
        (
            {
                "entities": [
                    {"joinKey": "user_id", "input": "a"},
                    {"joinKey": "user_id", "parameter": "b"},
                ]
            },
            "declared more than once",
        ),
        ({"features": ["spend_7d"]}, "expected 'view:feature'"),
        ({"features": []}, "at least one feature"),
        ({"features": ["v:a", "v:a"]}, "appear more than once"),
        ({"service": "fraud_features"}, "exactly one of features"),
        ({"features": None}, "exactly one of features"),
        ({"onMissing": "drop"}, "spec.features.onMissing"),
        ({"onMissing": "default", "defaults": {"spend_7d": 0}}, "have no defaults"),
        (
            {"onMissing": "default", "defaults": {"spend_7d": 0, "orders_7d": 0, "x": 1}},
            r"defaults \['x'\] name no declared feature",
        ),
        ({"defaults": {"spend_7d": 0}}, "defaults are for onMissing: default"),
        ({"extra": 1}, "spec.features.extra"),
    ],
)
def test_bad_features_specs_name_the_path_and_what_was_expected(
    features: dict[str, Any], expected: str
) -> None:
    with pytest.raises(InvalidInput, match=expected):
        parse_deployment(document(**features))


def test_a_service_needs_its_defaults_checked_when_it_is_resolved() -> None:
    # The service's features are known to the feature store only: the gateway checks them.
    features = parse_deployment(
        document(features=None, service="fraud_features", onMissing="default")
    ).spec.features
    assert features is not None and features.service == "fraud_features"
