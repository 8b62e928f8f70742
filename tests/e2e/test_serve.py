"""``modelport serve`` as a real process: both transports, workers, batching, --original."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.core.settings import Settings
from modelport.service.registration import RegistrationRequest
from modelport.service.wiring import open_registrar
from modelport.testing import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    X, y = load_iris(return_X_y=True)
    work = tmp_path_factory.mktemp("work")
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), work / "iris.joblib")
    np.save(work / "sample.npy", X[:8])
    registrar = open_registrar(Settings(home=home))
    registrar.register(
        RegistrationRequest(
            name="iris",
            artifact=str(work / "iris.joblib"),
            registered_by="tests",
            sample=work / "sample.npy",
        )
    )
    registrar.store.close()
    return home


def test_grpc_and_rest_side_by_side_with_workers(home: Path) -> None:
    X, y = load_iris(return_X_y=True)
    with ServerProcess(["iris", "--workers", "2"], env={"MODELPORT_HOME": str(home)}) as server:
        assert server.grpc_address
        grpc = grpcclient.InferenceServerClient(server.grpc_address)
        assert grpc.is_server_ready()
        meta = grpc.get_model_metadata("iris", as_json=True)
        assert meta["platform"] == "onnxruntime_onnx"  # compiled at registration
        inp = grpcclient.InferInput("input", [3, 4], "FP64")
        inp.set_data_from_numpy(X[::50])
        result = grpc.infer("iris", [inp], outputs=[grpcclient.InferRequestedOutput("predict")])
        assert result.as_numpy("predict").tolist() == y[::50].tolist()
        assert result.as_numpy("predict_proba") is None
        rest = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        rinp = httpclient.InferInput("input", [3, 4], "FP64")
        rinp.set_data_from_numpy(X[::50])
        assert rest.infer("iris", [rinp]).as_numpy("predict").tolist() == y[::50].tolist()


def test_original_serves_the_registered_artifact(home: Path) -> None:
    with ServerProcess(
        ["iris", "--workers", "1", "--original"], env={"MODELPORT_HOME": str(home)}
    ) as server:
        assert httpx.get(f"{server.url}/v2/models/iris").json()["platform"] == "sklearn"


def test_batching_through_the_server(home: Path) -> None:
    X, y = load_iris(return_X_y=True)
    expected = LogisticRegression(max_iter=500).fit(X, y).predict(X)
    args = ["iris", "--workers", "1", "--batching", "iris:max_batch_rows=16,max_delay=2000"]
    with ServerProcess(args, env={"MODELPORT_HOME": str(home)}) as server:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                calls = [
                    client.post(
                        "/v2/models/iris/infer",
                        json={
                            "id": str(i),
                            "inputs": [
                                {
                                    "name": "input",
                                    "datatype": "FP64",
                                    "shape": [1, 4],
                                    "data": X[i].tolist(),
                                }
                            ],
                            "outputs": [{"name": "predict"}] if i % 2 else None,
                        },
                    )
                    for i in range(0, 150, 5)
                ]
                return await asyncio.gather(*calls)

        for reply in asyncio.run(burst()):
            body = reply.json()
            i = int(body["id"])
            names = [o["name"] for o in body["outputs"]]
            assert names == (["predict"] if i % 2 else ["predict", "predict_proba"])
            assert body["outputs"][0]["data"] == [int(expected[i])]
        stats = httpx.get(f"{server.url}/v2/models/iris/stats").json()["model_stats"][0]
        assert stats["inference_count"] == 30


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["iris", "--batching", "ghost:max_batch_rows=4"], "name no served model"),
        (["iris", "--batching", "max_batch_rows=0"], "max_batch_rows"),
        (["iris", "--batching", "nonsense"], "KEY=VALUE"),
        (["iris", "--workers", "0"], "workers"),
        (["iris", "--host", "0.0.0.0", "--no-auth"], "--insecure"),
        (["iris", "--tls-cert", "/nonexistent.pem"], "--tls-key"),
    ],
)
def test_serve_option_errors(home: Path, args: list[str], fragment: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelport.cli", "serve", *args, "--port", "0", "--grpc-port", "0"],
        env={**os.environ, "MODELPORT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert fragment in done.stderr


def test_sigterm_stops_every_worker(home: Path) -> None:
    server = ServerProcess(["iris", "--workers", "2"], env={"MODELPORT_HOME": str(home)})
    server.start()
    assert server.pid is not None
    children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True)
    pids = [int(p) for p in children.stdout.split()]
    assert len(pids) == 2
    assert server.stop() == 0  # SIGTERM; the parent waits for its workers
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_killed_worker_is_replaced(home: Path) -> None:
    with ServerProcess(["iris", "--workers", "2"], env={"MODELPORT_HOME": str(home)}) as server:
        parent = server.pid
        assert parent is not None
        first = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
        victim = int(first.stdout.split()[0])
        os.kill(victim, signal.SIGKILL)
        for _ in range(100):
            now = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
            pids = {int(p) for p in now.stdout.split()}
            if len(pids) == 2 and victim not in pids:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert len(pids) == 2 and victim not in pids
        for _ in range(20):
            assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code in (200, 503)
        assert (
            json.loads(httpx.get(f"{server.url}/v2/models/iris", timeout=10).text)["name"] == "iris"
        )


def _connections_held(pid: int, port: int) -> int:
    """Established TCP connections to local ``port`` among the sockets ``pid`` holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(fields[9])
    held = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            held += target.startswith("socket:[") and target[8:-1] in inodes
    return held


@pytest.mark.skipif(sys.platform != "linux", reason="connections are balanced on Linux only")
def test_new_connections_are_spread_over_the_workers(home: Path) -> None:
    # A burst of connections used to land on whichever worker woke first, leaving the other
    # idle; each worker now has a socket of its own and the kernel spreads connections.
    with ServerProcess(["iris", "--workers", "2"], env={"MODELPORT_HOME": str(home)}) as server:
        assert server.pid is not None
        port = int(server.url.rsplit(":", 1)[1])
        workers = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True)
        pids = [int(p) for p in workers.stdout.split()]
        # Connect all at once, as a load generator does, then use each connection.
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
        try:
            for client in clients:
                client.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n")
            for client in clients:
                assert client.recv(4096).startswith(b"HTTP/1.1 200")  # connection kept open
            held = [_connections_held(pid, port) for pid in pids]
        finally:
            for client in clients:
                client.close()
    assert sum(held) == 32
    assert min(held) >= 4, held  # fewer than 4 of 32 on either by chance: odds about 3e-6
