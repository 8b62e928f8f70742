"""A data plane serving ``NAME@ALIAS`` follows the alias: in process, real registry and thread.

Requests sent while the alias moves (batched, so the old version's queue is drained rather than
failed) all succeed; the served version changes within the poll interval; pinned versions stay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import ModelNotReady, NotFound
from modelport.core.inference import InferenceRequest, Tensor
from modelport.core.settings import BatchingSettings, ServerSettings, Settings
from modelport.service.dataplane import DataPlane
from modelport.service.registration import Registrar, RegistrationRequest
from modelport.service.wiring import ServeTarget, build_dataplane, open_registrar, resolve_sources
from tests.scale_model import SCALE_MODEL

MODEL = SCALE_MODEL
POLL_S = 0.2


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[Settings, Registrar]]:
    settings = Settings(home=tmp_path / "home", server=ServerSettings(alias_poll_s=POLL_S))
    registrar = open_registrar(settings)
    try:
        for factor in (1, 2, 3):
            path = tmp_path / f"scale{factor}.py"
            path.write_text(f"FACTOR = {factor}\n{MODEL}")
            registrar.register(RegistrationRequest("scale", f"{path}:Scale", "alice"))
        registrar.set_alias("scale", "champion", 1, "alice")
        yield settings, registrar
    finally:
        registrar.store.close()


def serve(
    settings: Settings, registrar: Registrar, *specs: str, batching: bool = False
) -> DataPlane:
    every = BatchingSettings(enabled=True, max_delay=2000) if batching else None
    sources = resolve_sources([ServeTarget(s) for s in specs], registrar, default_batching=every)
    plane = build_dataplane(settings, sources, registrar)
    plane.repository.load_all()
    return plane


async def ask(
    plane: DataPlane, name: str = "scale", version: str | None = None
) -> tuple[str, float]:
    x = np.ones(1)
    request = InferenceRequest(inputs=[Tensor("x", Datatype.FP64, x.shape, x)])
    response = await plane.infer(name, version, request)
    return response.model_version, float(response.outputs[0].data[0])


def test_requests_during_a_move_see_no_error_and_reach_the_new_version(
    registry: tuple[Settings, Registrar],
) -> None:
    settings, registrar = registry
    plane = serve(settings, registrar, "scale@champion", batching=True)

    async def traffic() -> tuple[list[tuple[str, float]], float, float]:
        answers: list[tuple[str, float]] = []
        errors: list[BaseException] = []
        done = asyncio.Event()

        async def client() -> None:
            while not done.is_set():
                try:
                    answers.append(await ask(plane))
                except Exception as exc:  # noqa: BLE001 - every error is a failure here
                    errors.append(exc)
                await asyncio.sleep(0)

        clients = [asyncio.create_task(client()) for _ in range(8)]
        await asyncio.sleep(0.3)
        moved_at = time.monotonic()
        await asyncio.to_thread(registrar.set_alias, "scale", "champion", 2, "alice")
        while answers[-1][0] != "2" and time.monotonic() - moved_at < 10:
            await asyncio.sleep(0.01)
        switched_at = time.monotonic()
        await asyncio.sleep(0.5)  # the old version is retired meanwhile
        served = [(r["version"], r["state"]) for r in plane.repository_index(ready_only=False)]
        assert served == [("2", "READY")]
        done.set()
        await asyncio.gather(*clients)
        await plane.close()
        assert errors == []
        return answers, moved_at, switched_at

    answers, moved_at, switched_at = asyncio.run(traffic())
    assert switched_at - moved_at < POLL_S + 2.0
    versions = [version for version, _ in answers]
    first_new = versions.index("2")
    assert set(versions[:first_new]) == {"1"} and set(versions[first_new:]) == {"2"}
    assert all(value == float(version) for version, value in answers)


def test_the_old_version_is_retired_and_a_pinned_version_stays(
    registry: tuple[Settings, Registrar],
) -> None:
    settings, registrar = registry
    plane = serve(settings, registrar, "scale@1", "champ=scale@champion")
    try:
        registrar.set_alias("scale", "champion", 3, "alice")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            index = {(r["name"], r["version"]) for r in plane.repository_index(ready_only=True)}
            if index == {("scale", "1"), ("champ", "3")}:
                break
            time.sleep(0.05)
        assert index == {("scale", "1"), ("champ", "3")}
        assert asyncio.run(ask(plane, "champ")) == ("3", 3.0)
        assert asyncio.run(ask(plane, "scale")) == ("1", 1.0)
        with pytest.raises(NotFound, match="no version '1'"):
            asyncio.run(ask(plane, "champ", "1"))
    finally:
        asyncio.run(plane.close())


def test_a_removed_alias_leaves_the_version_it_named(
    registry: tuple[Settings, Registrar],
) -> None:
    settings, registrar = registry
    plane = serve(settings, registrar, "scale@champion")
    try:
        registrar.remove_alias("scale", "champion", "alice")
        time.sleep(POLL_S * 3)
        assert asyncio.run(ask(plane)) == ("1", 1.0)
        registrar.set_alias("scale", "champion", 2, "alice")  # back: followed again
        deadline = time.monotonic() + 10
        while asyncio.run(ask(plane))[0] != "2" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert asyncio.run(ask(plane)) == ("2", 2.0)
    finally:
        asyncio.run(plane.close())


def test_a_pinned_version_archived_while_served_is_unloaded(
    registry: tuple[Settings, Registrar],
) -> None:
    settings, registrar = registry
    plane = serve(settings, registrar, "scale@2", "scale@3")
    try:
        registrar.archive("scale", 2, "alice")
        deadline = time.monotonic() + 10
        while plane.model_ready("scale", "2") and time.monotonic() < deadline:
            time.sleep(0.05)
        states = {(r["version"], r["state"], r["reason"]) for r in plane.repository_index(False)}
        assert states == {("2", "UNAVAILABLE", "archived"), ("3", "READY", "")}
        with pytest.raises(ModelNotReady, match="version 2 is not ready: archived"):
            asyncio.run(ask(plane, version="2"))
        assert asyncio.run(ask(plane, version="3")) == ("3", 3.0)
    finally:
        asyncio.run(plane.close())


def test_a_server_serving_only_files_starts_no_watch(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "scale.py"
    path.write_text(f"FACTOR = 1\n{MODEL}")
    settings = Settings(home=tmp_path / "home", server=ServerSettings(alias_poll_s=POLL_S))
    sources = resolve_sources([ServeTarget(f"scale={path}:Scale")], None)

    def watches() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "alias-watch" and t.is_alive()}

    # Another test's watch may still be finishing its last look (stop() does not wait for it):
    # what counts is that this server starts none.
    before = watches()
    plane = build_dataplane(settings, sources, None)
    plane.repository.load_all()
    try:
        assert not watches() - before
        assert asyncio.run(ask(plane)) == ("1", 1.0)
    finally:
        asyncio.run(plane.close())


def test_an_alias_moving_onto_a_pinned_version_leaves_one_copy_of_it(
    registry: tuple[Settings, Registrar],
) -> None:
    settings, registrar = registry
    plane = serve(settings, registrar, "scale@2", "scale@champion", batching=True)
    try:
        assert {r["version"] for r in plane.repository_index(True)} == {"1", "2"}
        registrar.set_alias("scale", "champion", 2, "alice")
        deadline = time.monotonic() + 10
        while len(plane.repository_index(False)) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [(r["version"], r["state"]) for r in plane.repository_index(False)] == [
            ("2", "READY")
        ]
        assert asyncio.run(ask(plane)) == ("2", 2.0)
    finally:
        asyncio.run(plane.close())
