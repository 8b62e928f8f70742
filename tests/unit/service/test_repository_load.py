"""Repository ``load``: its parameters, loading exactly one version, and archived versions.

Real registry (SQLite, sealed and signed artifacts) and real Python models; nothing is faked.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import Conflict, InvalidInput, ModelNotReady
from modelport.core.inference import InferenceRequest, Tensor
from modelport.core.settings import RuntimeSettings, Settings
from modelport.service.dataplane import DataPlane
from modelport.service.models import (
    ModelRepository,
    ModelSource,
    ModelState,
    validate_load_parameters,
    validate_load_request,
    validate_unload_request,
)
from modelport.service.registration import Registrar, RegistrationRequest
from modelport.service.wiring import (
    ServeTarget,
    build_dataplane,
    open_registrar,
    resolve_sources,
)
from tests.scale_model import SCALE_MODEL

MODEL = SCALE_MODEL


def register_versions(registrar: Registrar, folder: Path, name: str, count: int) -> None:
    """Register versions 1..count of ``name``; version N multiplies by N."""
    for factor in range(1, count + 1):
        path = folder / f"scale{factor}.py"
        path.write_text(f"FACTOR = {factor}\n{MODEL}")
        registrar.register(RegistrationRequest(name, f"{path}:Scale", "alice"))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[Settings, Registrar]]:
    settings = Settings(home=tmp_path / "home")
    registrar = open_registrar(settings)
    try:
        register_versions(registrar, tmp_path, "scale", 3)
        yield settings, registrar
    finally:
        registrar.store.close()


def serve(settings: Settings, registrar: Registrar, *specs: str) -> DataPlane:
    sources = resolve_sources([ServeTarget(spec) for spec in specs], registrar)
    plane = build_dataplane(settings, sources, registrar)
    plane.repository.load_all()
    return plane


def factor(plane: DataPlane, name: str = "scale", version: str | None = None) -> float:
    x = np.ones(1)
    request = InferenceRequest(inputs=[Tensor("x", Datatype.FP64, x.shape, x)])
    response = asyncio.run(plane.infer(name, version, request))
    return float(response.outputs[0].data[0])


def states(plane: DataPlane) -> dict[str, str]:
    return {row["version"]: row["state"] for row in plane.repository_index(ready_only=False)}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"alias": "champion"},
            "repository load request: unknown key 'alias'; the body is "
            '{"parameters": {"version": "3"}} or {"parameters": {"alias": "champion"}} (or {})',
        ),
        ({"parameters": {"alias": "champion"}, "version": 2}, "unknown key 'version'"),
        ({"parameters": ["version", 2]}, "'parameters' must be an object"),
        (
            {"parameters": {"versoin": "2"}},
            "unknown load parameter 'versoin'; expected 'version' (a registered version number) "
            "or 'alias' (a registered alias), or none to reload what is served",
        ),
        ({"parameters": {"version": "2", "alias": "a"}}, "exclude each other"),
        ({"parameters": {"version": "two"}}, "must be a version number (1, 2, ...), got 'two'"),
        ({"parameters": {"version": 0}}, "must be a version number"),
        ({"parameters": {"version": True}}, "must be a version number"),
        ({"parameters": {"version": "²"}}, "must be a version number"),
        ({"parameters": {"alias": 3}}, "'alias' must be a string, got 3"),
        ({"parameters": {"alias": "Bad Alias"}}, "invalid alias 'Bad Alias'"),
    ],
)
def test_bad_load_requests_say_what_is_expected(payload: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_load_request(payload)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"parameters": {}},
        {"parameters": {"version": "3"}},
        {"parameters": {"version": 3}},
        {"parameters": {"alias": "champion"}},
    ],
)
def test_good_load_requests_pass(payload: dict[str, object]) -> None:
    assert validate_load_request(payload) == payload.get("parameters", {})


def test_the_data_plane_refuses_unknown_parameters_before_touching_anything(
    registry: tuple[Settings, Registrar],
) -> None:
    plane = serve(*registry, "scale@2")
    with pytest.raises(InvalidInput, match="unknown load parameter 'alias_'"):
        asyncio.run(plane.load("scale", {"alias_": "champion"}))
    assert states(plane) == {"2": "READY"}
    assert factor(plane) == 2.0


def test_loading_one_version_restores_only_that_version(
    registry: tuple[Settings, Registrar],
) -> None:
    plane = serve(*registry, "scale@1", "scale@2")
    asyncio.run(plane.unload("scale"))
    assert states(plane) == {"1": "UNAVAILABLE", "2": "UNAVAILABLE"}
    asyncio.run(plane.load("scale", {"version": "2"}))
    assert states(plane) == {"1": "UNAVAILABLE", "2": "READY"}
    assert factor(plane, version="2") == 2.0
    with pytest.raises(ModelNotReady):
        factor(plane, version="1")
    asyncio.run(plane.load("scale", {}))  # no parameter: every hosted version
    assert states(plane) == {"1": "READY", "2": "READY"}


def test_loading_a_version_not_served_yet_adds_it_alone(
    registry: tuple[Settings, Registrar],
) -> None:
    plane = serve(*registry, "scale@1")
    asyncio.run(plane.load("scale", {"version": 3}))
    assert states(plane) == {"1": "READY", "3": "READY"}
    assert factor(plane, version="3") == 3.0
    assert factor(plane) == 1.0  # the default stays the version served first


def test_a_version_archived_while_served_is_refused_at_its_next_load(
    registry: tuple[Settings, Registrar],
) -> None:
    settings, registrar = registry
    plane = serve(settings, registrar, "scale@1", "scale@2")
    registrar.archive("scale", 1, "alice")
    with pytest.raises(Conflict, match="version 1 of 'scale' was archived"):
        asyncio.run(plane.load("scale", {}))
    with pytest.raises(ModelNotReady, match="was archived; archived versions cannot be served"):
        factor(plane, version="1")
    with pytest.raises(Conflict, match="archived"):
        asyncio.run(plane.load("scale", {"version": "1"}))
    assert factor(plane, version="2") == 2.0


def test_without_a_registry_a_version_parameter_names_a_hosted_version(tmp_path: Path) -> None:
    path = tmp_path / "scale.py"
    path.write_text(f"FACTOR = 5\n{MODEL}")
    repository = ModelRepository(RuntimeSettings())
    for version in ("1", "2"):
        repository.add(ModelSource("scale", version, "python", path, entrypoint="Scale"))
    plane = DataPlane(repository)
    asyncio.run(plane.load("scale", {"version": "2"}))
    assert states(plane) == {"1": "UNAVAILABLE", "2": "READY"}
    with pytest.raises(InvalidInput, match="'alias' needs the model registry"):
        asyncio.run(plane.load("scale", {"alias": "champion"}))
    assert repository.get("scale", "1").state is ModelState.UNAVAILABLE
    assert validate_load_parameters({}) == {}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"version": "1"}, "repository unload request: unknown key 'version'"),
        ({"parameters": 1}, "'parameters' must be an object"),
        ({"parameters": {"alias": "a"}}, "unknown unload parameter 'alias'"),
        ({"parameters": {"unload_dependents": "yes"}}, "must be a boolean, got 'yes'"),
    ],
)
def test_bad_unload_requests_say_what_is_expected(payload: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        validate_unload_request(payload)
    assert validate_unload_request({"parameters": {"unload_dependents": True}}) == {
        "unload_dependents": True
    }
    assert validate_unload_request({}) == {}
