"""The gateway's OpenAPI document: valid, with ``POST /v2/feedback`` and body schemas that agree
with the feedback parser."""

from __future__ import annotations

from typing import Any

import jsonschema_rs  # comes with schemathesis
import orjson
import pytest
import schemathesis

from modelport.core.errors import InvalidInput
from modelport.server.gateway.app import GATEWAY_ROUTES, gateway_openapi_document
from modelport.server.rest.routes import Router
from modelport.service.feedback_forms import parse_feedback_json

DOC = gateway_openapi_document()


def test_document_is_valid_openapi_3_0() -> None:
    schemathesis.openapi.from_dict(DOC).validate()


def test_feedback_is_a_gateway_route_and_documented() -> None:
    match = Router(GATEWAY_ROUTES).match("/v2/feedback")
    assert match is not None and match.routes["POST"].endpoint == "feedback"
    operation = DOC["paths"]["/v2/feedback"]["post"]
    assert operation["operationId"] == "feedback"
    assert set(operation["responses"]) >= {"200", "400", "401", "403", "404", "413"}
    assert {"name": "feedback"} in DOC["tags"]


def _validator(name: str) -> Any:
    schema = {"$ref": f"#/components/schemas/{name}", "components": DOC["components"]}
    return jsonschema_rs.validator_for(schema)


ACCEPTED = [
    {"deployment": "fraud", "request_id": "a", "label": 1},
    {"deployment": "fraud", "request_id": "a", "label": "fraud"},
    {"deployment": "fraud", "request_id": "a", "label": [True, False]},
    {"deployment": "fraud", "request_id": "a", "value": 2.5},
    {"deployment": "fraud", "feedback": [{"request_id": "a", "value": [1, 2.5]}]},
]
REFUSED = [
    {"deployment": "fraud", "request_id": "a"},
    {"deployment": "fraud", "request_id": "a", "label": 1, "value": 1},
    {"deployment": "fraud", "request_id": "", "label": 1},
    {"deployment": "fraud", "request_id": "a", "label": []},
    {"deployment": "fraud", "request_id": "a", "label": 1, "colour": "red"},
    {"request_id": "a", "label": 1},
    {"deployment": "fraud", "feedback": []},
    {"deployment": "fraud", "feedback": [{"request_id": "a", "label": 1, "deployment": "x"}]},
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_what_the_schema_accepts_the_parser_accepts(body: dict[str, Any]) -> None:
    assert _validator("Feedback").is_valid(body)
    assert parse_feedback_json(orjson.dumps(body))


@pytest.mark.parametrize("body", REFUSED)
def test_what_the_schema_refuses_the_parser_refuses(body: dict[str, Any]) -> None:
    assert not _validator("Feedback").is_valid(body)
    with pytest.raises(InvalidInput):
        parse_feedback_json(orjson.dumps(body))


def test_the_receipt_schema() -> None:
    assert _validator("FeedbackReceipt").is_valid({"accepted": 3, "replaced": 1})
    assert not _validator("FeedbackReceipt").is_valid({"accepted": -1, "replaced": 0})
