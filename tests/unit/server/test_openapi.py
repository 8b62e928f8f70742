"""The OpenAPI document: valid OpenAPI 3.0, one description per route the REST app serves, and
body schemas that accept what the codec accepts."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema_rs  # comes with schemathesis
import numpy as np
import orjson
import pytest
import schemathesis

from modelport.core.datatypes import Datatype
from modelport.core.inference import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelport.protocol.rest import (
    decode_infer_request,
    encode_infer_request,
    encode_infer_response,
)
from modelport.server.rest.app import RestApp
from modelport.server.rest.errors import STATUS_BY_KIND
from modelport.server.rest.openapi import openapi_document
from modelport.server.rest.routes import ROUTES, Router
from tests.unit.protocol.samples import JSON_DATATYPES, tensor

DOC = openapi_document(ROUTES)
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
PROBES = ("/v2/health/live", "/v2/health/ready")


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, item[method])
        for path, item in DOC["paths"].items()
        for method in METHODS
        if method in item
    ]


# -- validity ----------------------------------------------------------------------------------


def test_document_is_valid_openapi_3_0() -> None:
    assert DOC["openapi"] == "3.0.3"
    schemathesis.openapi.from_dict(DOC).validate()


def test_the_validator_does_reject_a_broken_document() -> None:
    broken = copy.deepcopy(DOC)
    broken["paths"]["/v2"]["get"]["responses"]["200"] = {"content": {}}  # no description
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(broken).validate()


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def test_every_reference_resolves_and_every_schema_is_used() -> None:
    refs = _refs(DOC)
    names = set(DOC["components"]["schemas"])
    assert {r.removeprefix("#/components/schemas/") for r in refs} == names


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for _, _, op in _operations()]
    assert len(ids) == len(set(ids))


def test_document_is_fresh_on_every_call() -> None:
    first = openapi_document(ROUTES)
    first["components"]["schemas"]["Error"]["required"].append("changed")
    assert openapi_document(ROUTES) == DOC


# -- routes: the document, the router and the app's endpoints come from one table --------------


def test_the_document_lists_every_route_of_the_table_and_nothing_else() -> None:
    documented = {(method, path) for method, path, _ in _operations()}
    assert documented == {(route.method, route.path) for route in ROUTES}


def test_every_route_is_routed_to_itself_and_has_an_endpoint() -> None:
    router = Router(ROUTES)
    for route in ROUTES:
        assert callable(getattr(RestApp, route.endpoint, None)), route.endpoint
        concrete = re.sub(r"\{\w+\}", "some-name", route.path)
        match = router.match(concrete)
        assert match is not None, f"{route.path} is in the table but not routed"
        assert match.routes[route.method] is route
        if route.has_model:
            assert match.args[0] == "some-name"


def test_open_routes_are_the_health_probes() -> None:
    assert {r.path for r in ROUTES if not r.needs_credential} == set(PROBES)


# -- security and statuses -----------------------------------------------------------------------


def test_bearer_auth_everywhere_except_health_probes() -> None:
    assert DOC["security"] == [{"bearerAuth": []}]
    scheme = DOC["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for _, path, op in _operations():
        if path in PROBES:
            assert op["security"] == [], path
            assert "401" not in op["responses"]
        else:
            assert "security" not in op, path
            assert {"401", "403", "429"} <= set(op["responses"]), path


def test_documented_statuses_are_ones_the_server_uses() -> None:
    possible = {200} | set(STATUS_BY_KIND.values())
    for method, path, op in _operations():
        statuses = {int(s) for s in op["responses"]}
        assert statuses <= possible, (method, path, statuses - possible)
        assert 200 in statuses


def test_body_routes_document_bad_input_and_size_limit() -> None:
    for method, path, op in _operations():
        if method == "POST":
            assert {"400", "413"} <= set(op["responses"]), path
            assert op["responses"]["400"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }


def test_datatype_enum_is_every_datatype() -> None:
    assert DOC["components"]["schemas"]["Datatype"]["enum"] == [d.value for d in Datatype]


# -- body schemas accept what the codec accepts ----------------------------------------------------


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema draft 4: ``nullable`` becomes a union with null."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _validator(name: str) -> jsonschema_rs.Validator:
    schema = {
        "$ref": f"#/components/schemas/{name}",
        "components": _json_schema(DOC["components"]),
    }
    return jsonschema_rs.Draft4Validator(schema)


def _header(body: bytes, length: int | None) -> Any:
    return orjson.loads(body if length is None else body[:length])


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", JSON_DATATYPES, ids=str)
def test_request_schema_accepts_encoded_requests(datatype: Datatype, binary: bool) -> None:
    request = InferenceRequest(
        [tensor("x", datatype), tensor("y", datatype, ())],
        id="r1",
        parameters={"binary_data_output": True, "timeout": 5, "note": "n"},
        outputs=[RequestedOutput("out", {"binary_data": False})],
    )
    body, length = encode_infer_request(request, binary_inputs=binary)
    decode_infer_request(body, length)  # the server accepts it...
    _validator("InferenceRequest").validate(_header(body, length))  # ...and so does the schema


@pytest.mark.parametrize(
    "doc",
    [
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]},
        {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [None, 1.5]}]},
        {"inputs": [{"name": "x", "datatype": "INT8", "shape": [], "data": 3}]},
        {"inputs": [{"name": "x", "datatype": "BOOL", "shape": [1, 1, 1], "data": [[[True]]]}]},
        {
            "id": None,
            "parameters": None,
            "outputs": [],
            "extra": "ignored",
            "inputs": [
                {"name": "x", "datatype": "BYTES", "shape": [0], "data": [], "parameters": None}
            ],
        },
        {"outputs": None, "inputs": [{"name": "x", "datatype": "UINT8", "shape": [0], "data": []}]},
    ],
    ids=["nested", "null-as-nan", "scalar", "deep", "nulls-and-extras", "null-outputs"],
)
def test_request_schema_accepts_lenient_bodies(doc: dict[str, Any]) -> None:
    body = orjson.dumps(doc)
    decode_infer_request(body, None)
    _validator("InferenceRequest").validate(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"inputs": []},
        {"inputs": [{"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}]},
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]},
        {"inputs": [{"name": "", "datatype": "FP32", "shape": [1], "data": [1]}]},
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]},
        {"id": 3, "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]},
        {
            "parameters": {"binary_data_output": "yes"},
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
        },
    ],
    ids=[
        "no-inputs",
        "empty-inputs",
        "datatype",
        "negative-dim",
        "nameless",
        "no-data",
        "id",
        "flag",
    ],
)
def test_request_schema_rejects_what_the_server_rejects(doc: dict[str, Any]) -> None:
    assert not _validator("InferenceRequest").is_valid(doc)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_response_schema_accepts_encoded_responses(binary: bool) -> None:
    outputs = [tensor(f"o{dt}", dt) for dt in JSON_DATATYPES]
    nan = Tensor("nan", Datatype.FP32, (2,), np.array([np.nan, np.inf], dtype=np.float32))
    response = InferenceResponse("m", [*outputs, nan], model_version="1", id="r")
    request = InferenceRequest([], parameters={"binary_data_output": binary})
    body, length = encode_infer_response(response, request)
    _validator("InferenceResponse").validate(_header(body, length))
