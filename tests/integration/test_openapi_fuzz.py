"""Schemathesis fuzzes a real ``modelport serve`` from the OpenAPI document the server publishes.

Every operation of ``/v2/openapi.json`` gets schema-valid (positive) requests, and those with a
body also schema-invalid (negative) ones. Every response must be documented (status, content
type, headers, body schema), no request may get a 5xx, and none may take more than the per-request
timeout. Requests carry an admin API key; schemathesis also checks that each secured route refuses
them without it. Examples are derandomized, so a failure replays on every run; the budget is
fixed, about 210 cases in all.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from modelport.server.rest.openapi import openapi_document
from modelport.server.rest.routes import ROUTES
from modelport.testing import ServerProcess
from tests.integration.conftest import MAX_BODY

pytestmark = pytest.mark.slow

MODEL = "iris"
"""The one model the fuzzed server hosts (its newest registered version)."""
REQUEST_TIMEOUT = 5.0
"""Seconds any single request may take before the test calls it a hang."""
EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 6}
"""Examples per operation and mode; inference gets three times as many."""
HEADER_LENGTH = "Inference-Header-Content-Length"

Api = tuple[str, dict[str, str]]

_DOCUMENT = openapi_document(ROUTES)
# Taken from the document in-process to name the tests; the fuzzing itself reads the served one.
# Negative cases need something to break that still reaches the route: a body (path parameters
# that break the schema, empty or holding "/", are not sent).
CASES = [
    (method.upper(), path, mode)
    for path, item in _DOCUMENT["paths"].items()
    for method, operation in item.items()
    for mode in EXAMPLES
    if mode is GenerationMode.POSITIVE or "requestBody" in operation
]
# Repository changes go last, so that a reload happens after the model has been fuzzed.
CASES.sort(key=lambda case: case[1].startswith("/v2/repository/models/"))


def _credentials(env: dict[str, str]) -> dict[str, str]:
    """The headers that authenticate every fuzzed request: an admin API key's bearer token."""
    created = subprocess.run(
        [sys.executable, "-m", "modelport.cli", "keys", "create", "--role", "admin"]
        + ["--name", "openapi fuzz", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return {"Authorization": f"Bearer {json.loads(created.stdout)['key']}"}


@pytest.fixture(scope="module")
def api(model_home: Path) -> Iterator[Api]:
    """A server of the fuzzer's own (it loads and reloads models), with authentication on, and
    the headers that every request sends."""
    env = {"MODELPORT_HOME": str(model_home), "MODELPORT_SERVER__MAX_BODY_BYTES": str(MAX_BODY)}
    headers = _credentials(env)
    with ServerProcess([MODEL, "--workers", "1", "--no-grpc"], env=env, auth=True) as server:
        yield server.url, headers


@pytest.fixture(scope="module")
def schema(api: Api) -> schemathesis.schemas.BaseSchema:
    url, headers = api
    # A copy: the loader adds its own headers (User-Agent) to the dict it is given.
    loaded = schemathesis.openapi.from_url(f"{url}/v2/openapi.json", headers=dict(headers))
    # Every request carries the fixture's credential instead of a drawn (or, in negative mode,
    # dropped) Authorization header; ignored_auth probes requests without it on its own.
    loaded.config.generation.update(with_security_parameters=False)
    return loaded


@pytest.fixture(scope="module")
def metadata(api: Api) -> dict[str, Any]:
    """The hosted model's metadata: its versions and inputs aim the fuzzer at it."""
    url, headers = api
    reply = httpx.get(f"{url}/v2/models/{MODEL}", headers=headers, timeout=REQUEST_TIMEOUT)
    reply.raise_for_status()
    found: dict[str, Any] = reply.json()
    return found


def test_served_document_is_the_published_one(api: Api) -> None:
    url, headers = api
    reply = httpx.get(f"{url}/v2/openapi.json", headers=headers, timeout=REQUEST_TIMEOUT)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == openapi_document(ROUTES)


# -- strategies ---------------------------------------------------------------------------------


_WILD = st.one_of(
    st.floats(), st.integers(-(2**70), 2**70), st.none(), st.booleans(), st.text(max_size=3)
)


def _values(datatype: str) -> st.SearchStrategy[Any]:
    """JSON values of ``datatype`` (FP: null reads as NaN), or anything for another one."""
    if datatype.startswith("FP"):
        return st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.none())
    if datatype.startswith(("INT", "UINT")):
        bits = int(datatype.removeprefix("U").removeprefix("INT"))
        low = 0 if datatype.startswith("U") else -(2 ** (bits - 1))
        return st.integers(low, low + 2**bits - 1)
    return {"BOOL": st.booleans(), "BYTES": st.text(max_size=8)}.get(datatype, _WILD)


def _fitting_bodies(inputs: list[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies naming the model's real inputs with fitting shapes, so that requests reach it.

    Two in three are clean (the declared datatype, values of that type, NaN included); the
    others take any datatype and values (huge, negative, non-numeric), which the decoder and
    the runtime must survive.
    """

    def tensor(spec: dict[str, Any], rows: int, clean: bool) -> st.SearchStrategy[dict[str, Any]]:
        shape = [rows if dim < 0 else dim for dim in spec["shape"]]
        declared = spec["datatype"]
        datatypes = [declared] if clean else [declared, "FP32", "INT64", "BOOL", "BYTES"]
        count = math.prod(shape)
        return st.fixed_dictionaries(
            {
                "name": st.just(spec["name"]),
                "datatype": st.sampled_from(datatypes),
                "shape": st.just(shape),
                "data": st.lists(
                    _values(declared) if clean else _WILD, min_size=count, max_size=count
                ),
            }
        )

    def request(rows: int, clean: bool) -> st.SearchStrategy[dict[str, Any]]:
        parameters = st.fixed_dictionaries(
            {}, optional={"binary_data_output": st.booleans(), "timeout": st.integers(0, 10**6)}
        )
        tensors = st.tuples(*(tensor(spec, rows, clean) for spec in inputs))
        return st.fixed_dictionaries(
            {"inputs": tensors.map(list)}, optional={"parameters": parameters}
        )

    kinds = st.tuples(st.integers(0, 3), st.sampled_from([True, True, False]))
    return kinds.flatmap(lambda kind: request(*kind))


def _strategy(
    operation: Any, mode: GenerationMode, metadata: dict[str, Any]
) -> st.SearchStrategy[Any]:
    """Cases for ``operation``: drawn from the schema alone and, in positive mode, also aimed
    at the hosted model (its name and version; for inference, also bodies that fit it)."""
    generated = operation.as_strategy(generation_mode=mode)
    path = operation.path
    # Unloading the hosted model would leave nothing to fuzz: that route gets drawn names only.
    if mode is GenerationMode.NEGATIVE or "{model_name}" not in path or path.endswith("/unload"):
        return generated
    target = {"model_name": MODEL}
    if "{model_version}" in path:
        target["model_version"] = metadata["versions"][0]
    aimed = operation.as_strategy(generation_mode=mode, path_parameters=target)
    if not path.endswith("/infer"):
        return st.one_of(generated, aimed)
    fitting = _fitting_bodies(metadata["inputs"]).flatmap(
        lambda body: operation.as_strategy(
            generation_mode=mode, path_parameters=target, body=body, media_type="application/json"
        )
    )
    # A drawn Inference-Header-Content-Length almost never fits the JSON drawn with it, and
    # would stop every aimed request at the header check: aimed requests go without it.
    return st.one_of(generated, *(s.map(_all_json) for s in (aimed, fitting, fitting)))


def _all_json(case: Any) -> Any:
    if case.headers:
        case.headers.pop(HEADER_LENGTH, None)
    return case


# -- the fuzz test ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES]
)
def test_fuzz(
    api: Api,
    schema: Any,
    metadata: dict[str, Any],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    url, headers = api
    operation = schema[path][method]
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    if mode is GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)
    if headers:
        checks.append(ignored_auth)
    examples = EXAMPLES[mode] * (3 if path.endswith("/infer") else 1)
    slowest = [0.0]

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the first failure as is
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=_strategy(operation, mode, metadata))
    def run(case: Any) -> None:
        started = time.monotonic()
        response = case.call(base_url=url, headers=dict(headers), timeout=REQUEST_TIMEOUT)
        slowest[0] = max(slowest[0], time.monotonic() - started)
        case.validate_response(response, checks=checks, headers=dict(headers))

    run()
    assert slowest[0] < REQUEST_TIMEOUT
