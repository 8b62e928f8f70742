"""``modelport serve NAME@ALIAS`` follows the alias in every worker, under load, without errors.

A real server with two workers; clients open a new connection per request (so both workers
answer) and keep sending while ``modelport alias set`` moves the alias.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from modelport.core.settings import Settings
from modelport.service.registration import RegistrationRequest
from modelport.service.wiring import open_registrar
from modelport.testing import ServerProcess
from tests.e2e._cli import modelport
from tests.scale_model import SCALE_MODEL

pytestmark = pytest.mark.slow

MODEL = SCALE_MODEL
POLL_S = 0.5
BODY = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("work")
    registrar = open_registrar(Settings(home=home))
    try:
        for factor in (1, 2):
            path = work / f"scale{factor}.py"
            path.write_text(f"FACTOR = {factor}\n{MODEL}")
            registrar.register(RegistrationRequest("scale", f"{path}:Scale", "tests"))
        registrar.set_alias("scale", "champion", 1, "tests")
    finally:
        registrar.store.close()
    return home


def test_an_alias_move_reaches_every_worker_with_no_failed_request(home: Path) -> None:
    env = {"MODELPORT_HOME": str(home), "MODELPORT_SERVER__ALIAS_POLL_S": str(POLL_S)}
    env_cli = {"MODELPORT_DATABASE_URL": f"sqlite:///{home / 'modelport.db'}"}
    with ServerProcess(["scale@champion", "--workers", "2"], env=env) as server:
        url = f"{server.url}/v2/models/scale/infer"
        answers: list[tuple[float, str]] = []
        failures: list[str] = []
        stop = threading.Event()

        def client() -> None:
            # No keep-alive: every request is a new connection, spread over both workers.
            limits = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(limits=limits, timeout=10) as http:
                while not stop.is_set():
                    try:
                        reply = http.post(url, json=BODY)
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if reply.status_code != 200:
                        failures.append(f"{reply.status_code} {reply.text}")
                        continue
                    body = reply.json()
                    assert body["outputs"][0]["data"] == [float(body["model_version"])]
                    answers.append((time.monotonic(), body["model_version"]))

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        try:
            time.sleep(1.0)
            asked_at = time.monotonic()
            moved = modelport(home, "alias", "set", "scale", "champion", "2", env=env_cli)
            assert moved.returncode == 0, moved.stderr
            moved_at = time.monotonic()
            time.sleep(POLL_S + 3.0)
        finally:
            stop.set()
            for thread in clients:
                thread.join()
        assert failures == []
        before = [version for at, version in answers if at < asked_at]
        assert before and set(before) == {"1"}
        last_old = max(at for at, version in answers if version == "1")
        assert last_old - moved_at < POLL_S + 1.5, "a worker kept the old version too long"
        settled = [version for at, version in answers if at > moved_at + POLL_S + 1.5]
        assert len(settled) >= 20 and set(settled) == {"2"}


@pytest.mark.parametrize("batching", [False, True], ids=["alone", "batched"])
def test_non_finite_and_empty_input_through_the_server(home: Path, batching: bool) -> None:
    args = ["scale@1", *(["--batching", "max_delay=500"] if batching else [])]
    with ServerProcess(args, env={"MODELPORT_HOME": str(home)}) as server:
        url = f"{server.url}/v2/models/scale/infer"
        nan = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [1.0, None]}]}
        reply = httpx.post(url, json=nan)
        assert reply.status_code == 400
        assert reply.json()["error"] == (
            "input 'x' contains NaN; the model does not accept non-finite values (NaN, inf): "
            "send finite numbers, or impute missing values before sending"
        )
        empty = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [0], "data": []}]}
        for _ in range(3):  # the same answer every time, batched or not
            reply = httpx.post(url, json=empty)
            assert reply.status_code == 200, reply.text
            (output,) = reply.json()["outputs"]
            assert (output["name"], output["shape"], output["data"]) == ("y", [0], [])
