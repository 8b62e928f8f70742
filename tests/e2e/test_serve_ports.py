"""A busy port is an error: only ``modelport serve``'s own workers may share its ports."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.testing import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return iris_onnx(tmp_path_factory.mktemp("work"))


def iris_onnx(folder: Path) -> Path:
    """An ONNX iris classifier (served straight from the file: no registration needed)."""
    from skl2onnx import to_onnx

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    path = folder / "iris.onnx"
    path.write_bytes(to_onnx(model, X[:1], options={"zipmap": False}).SerializeToString())
    return path


def _serve(artifact: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a second ``modelport serve`` that must fail to start (killed after 60 s if not)."""
    command = [sys.executable, "-m", "modelport.cli", "serve", str(artifact), "--name", "iris"]
    return subprocess.run(
        [*command, "--no-auth", *args],
        env={**os.environ, "MODELPORT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_server_on_busy_ports_fails_naming_the_port(
    artifact: Path, tmp_path: Path, workers: str
) -> None:
    # Both servers use SO_REUSEPORT with --workers 2: the second used to start and the kernel
    # split new connections between them.
    args = [str(artifact), "--name", "iris", "--workers", workers]
    with ServerProcess(args, env={"MODELPORT_HOME": str(tmp_path)}) as first:
        rest_port = first.url.rsplit(":", 1)[1]
        grpc_port = first.grpc_address.rsplit(":", 1)[1]
        same_rest = _serve(artifact, tmp_path, "--workers", workers, "--port", rest_port)
        assert same_rest.returncode == 2, same_rest
        assert same_rest.stderr.strip().splitlines() == [
            f"error: port {rest_port} on 127.0.0.1 is already in use"
        ]
        same_grpc = _serve(
            artifact, tmp_path, "--workers", workers, "--port", "0", "--grpc-port", grpc_port
        )
        assert same_grpc.returncode == 2, same_grpc
        assert same_grpc.stderr.strip().splitlines() == [
            f"error: port {grpc_port} on 127.0.0.1 is already in use"
        ]
        assert "serving on" not in same_rest.stdout + same_grpc.stdout


def test_a_port_another_program_listens_on_is_refused(artifact: Path, tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = str(other.getsockname()[1])
        done = _serve(artifact, tmp_path, "--workers", "2", "--port", port, "--no-grpc")
    assert done.returncode == 2, done
    assert done.stderr.strip() == f"error: port {port} on 127.0.0.1 is already in use"


@pytest.mark.skipif(sys.platform != "linux", reason="workers follow the supervisor on Linux")
def test_workers_stop_when_the_supervisor_is_killed(artifact: Path, tmp_path: Path) -> None:
    # They used to keep serving on the ports, so a new server there was refused as in use.
    import signal
    import time

    server = ServerProcess(
        [str(artifact), "--name", "iris", "--workers", "2"], env={"MODELPORT_HOME": str(tmp_path)}
    )
    server.start()
    assert server.pid is not None
    children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True)
    workers = [int(p) for p in children.stdout.split()]
    alive = workers
    try:
        assert len(workers) == 2
        os.kill(server.pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [pid for pid in workers if os.path.exists(f"/proc/{pid}")]
        assert not alive
    finally:
        for pid in alive:  # left serving (the failure): they hold the output pipe open
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.stop()
