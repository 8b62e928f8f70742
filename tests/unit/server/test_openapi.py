"""The OpenAPI document: valid OpenAPI 3.0, one description per route the REST app serves, and
body schemas that accept what the codec accepts."""

from __future__ import annotations

import copy
import re
from typing import Any, cast

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
from modelport.security.rbac import Action
from modelport.server.rest.app import RestApp
from modelport.server.rest.errors import STATUS_BY_KIND
from modelport.server.rest.openapi import openapi_document
from tests.unit.protocol.samples import JSON_DATATYPES, tensor

DOC = openapi_document()
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
PROBES = ("/v2/health/live", "/v2/health/ready")


def _app() -> RestApp:
    # Routing (RestApp._match) reads no attribute: a bare instance routes like a built one.
    return RestApp.__new__(RestApp)


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
    first = openapi_document()
    first["components"]["schemas"]["Error"]["required"].append("changed")
    assert openapi_document() == DOC


# -- routes: what the document lists is what RestApp._match serves --------------------------------


class _Segment(str):
    """A path segment that records the literals the router compares it with."""

    __hash__ = str.__hash__

    def __new__(cls, value: str, index: int, seen: set[tuple[int, str]]) -> _Segment:
        segment = super().__new__(cls, value)
        segment.index, segment.seen = index, seen
        return segment

    index: int
    seen: set[tuple[int, str]]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str) and not isinstance(other, _Segment):
            self.seen.add((self.index, other))
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)


def _served_routes(max_segments: int = 9) -> set[tuple[str, str]]:
    """Explore ``RestApp._match`` by following the literals it compares each segment with.

    Starting from paths of free segments (``None``, sent as a name no literal equals), each run
    records which literal each free segment was compared with; each such literal gives a new path
    to try. The result is every route the router knows, as ``(method, path)`` with ``{}`` for a
    segment that takes any value.
    """
    app = _app()
    routes: set[tuple[str, str]] = set()
    for n in range(1, max_segments + 1):
        todo: list[tuple[str | None, ...]] = [("", *(None,) * (n - 1))]
        done: set[tuple[str | None, ...]] = set()
        while todo:
            values = todo.pop()
            if values in done:
                continue
            done.add(values)
            seen: set[tuple[int, str]] = set()
            parts = [_Segment("\x00" if v is None else v, i, seen) for i, v in enumerate(values)]
            match = app._match(cast(list[str], parts))
            if match is not None:
                routes.add((match[0], "/".join("{}" if v is None else v for v in values)))
            for index, literal in seen:
                if values[index] is None:
                    todo.append((*values[:index], literal, *values[index + 1 :]))
    return routes


def _template_match(template: str, path: str) -> int | None:
    """How many literal segments ``template`` matches ``path`` with; ``None`` if it does not."""
    t_parts, p_parts = template.split("/"), path.split("/")
    if len(t_parts) != len(p_parts):
        return None
    literals = 0
    for t, p in zip(t_parts, p_parts, strict=True):
        if re.fullmatch(r"\{\w+\}", t):
            continue
        if t != p:
            return None
        literals += 1
    return literals


def test_every_served_route_is_documented() -> None:
    served = _served_routes()
    assert ("POST", "/v2/models/{}/versions/{}/infer") in served  # the exploration works
    for method, path in served:
        # OpenAPI: a path with more literal segments wins over a templated one.
        scored = [(_template_match(t, path), t) for t in DOC["paths"]]
        candidates = [(score, t) for score, t in scored if score is not None]
        assert candidates, f"{method} {path} is served but not documented"
        template = max(candidates)[1]
        assert method.lower() in DOC["paths"][template], f"{method} {path} is not documented"


def test_every_documented_route_is_served() -> None:
    app = _app()
    for method, path, _ in _operations():
        concrete = re.sub(r"\{\w+\}", "some-name", path)
        match = app._match(concrete.split("/"))
        assert match is not None, f"{path} is documented but not served"
        assert match[0] == method, f"{method} {path}: the app serves {match[0]}"
        # The document's open routes are exactly those the server checks as health probes.
        open_route = Action.HEALTH in match
        assert open_route == (path in PROBES), path


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
