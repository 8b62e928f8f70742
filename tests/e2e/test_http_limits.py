"""HTTP limits before authentication, against a real ``modelport serve`` process.

Oversized and slow senders hold connections while ordinary requests keep being answered: the
oversized head gets 431, the slow head and the slow body get 408 within the timeouts, idle
connections are closed, and the server's memory stays flat.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from modelport.testing import ServerProcess
from tests.e2e.test_serve_ports import iris_onnx

pytestmark = pytest.mark.slow

TIMEOUT_S = 1.0
LIMIT = 16 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("limits")
    env = {
        "MODELPORT_HOME": str(work / "home"),
        "MODELPORT_SERVER__MAX_HEADER_BYTES": str(LIMIT),
        "MODELPORT_SERVER__HEADER_TIMEOUT_S": str(TIMEOUT_S),
        "MODELPORT_SERVER__BODY_TIMEOUT_S": str(TIMEOUT_S),
        "MODELPORT_SERVER__KEEP_ALIVE_TIMEOUT_S": str(TIMEOUT_S),
    }
    args = [str(iris_onnx(work)), "--name", "iris", "--workers", "1", "--no-grpc"]
    with ServerProcess(args, env=env) as process:
        yield process


def _port(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _endless_head(port: int, total: int) -> bytes:
    """Send a header that never ends (up to ``total`` bytes); return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\nX-Fill: ")
        chunk = b"a" * 65536
        sent = 0
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        try:
            return sock.recv(4096)
        except OSError as exc:
            return f"{type(exc).__name__}".encode()


def _slow(port: int, head: bytes, drip: bytes) -> tuple[float, bytes]:
    """Send ``head``, then ``drip`` a byte each 0.1 s; return (seconds until answered, answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        started = time.monotonic()
        sock.sendall(head)
        for byte in drip * 1000:
            if select.select([sock], [], [], 0.1)[0]:
                break
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
        try:
            answer = sock.recv(4096)
        except OSError:
            answer = b""
        return time.monotonic() - started, answer


def _idle(port: int, request: bytes = b"") -> tuple[float, bytes]:
    """Connect (and send ``request``), then wait: return (seconds until closed, what came)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        started = time.monotonic()
        received = b""
        if request:
            sock.sendall(request)
        while True:
            data = sock.recv(65536)
            if not data:
                return time.monotonic() - started, received
            received += data


def test_slow_and_oversized_senders_do_not_stop_other_requests(server: ServerProcess) -> None:
    port = _port(server)
    pid = server.pid
    assert pid is not None
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/v2/health/ready").status_code == 200
    rss_before = _rss_mb(pid)
    results: dict[str, list[object]] = {
        "endless": [],
        "slow_head": [],
        "slow_body": [],
        "idle": [],
        "keep_alive": [],
    }
    stop = threading.Event()
    latencies: list[float] = []
    statuses: list[int] = []
    rss_peak = [rss_before]

    def traffic() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                started = time.monotonic()
                reply = client.post(
                    "/v2/models/iris/infer",
                    json={
                        "inputs": [
                            {"name": "X", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}
                        ]
                    },
                )
                latencies.append(time.monotonic() - started)
                statuses.append(reply.status_code)
                rss_peak[0] = max(rss_peak[0], _rss_mb(pid))
                time.sleep(0.02)

    slow_head = b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n"
    slow_body = (
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    )
    attackers = (
        [lambda: results["endless"].append(_endless_head(port, 16 << 20)) for _ in range(8)]
        + [lambda: results["slow_head"].append(_slow(port, slow_head, b"X-a: b\r\n"))] * 4
        + [lambda: results["slow_body"].append(_slow(port, slow_body, b'{"a": 1} '))] * 4
        + [lambda: results["idle"].append(_idle(port))] * 2
        + [
            lambda: results["keep_alive"].append(
                _idle(port, b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n")
            )
        ]
        * 2
    )
    threads = [threading.Thread(target=attack, daemon=True) for attack in attackers]
    watcher = threading.Thread(target=traffic)
    watcher.start()
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stop.set()
    watcher.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), results

    for answer in results["endless"]:
        assert isinstance(answer, bytes) and answer.startswith(b"HTTP/1.1 431 "), answer
        assert f"larger than {LIMIT} bytes".encode() in answer
    for name in ("slow_head", "slow_body"):
        assert len(results[name]) == 4
        for took, answer in results[name]:  # type: ignore[misc]
            assert answer.startswith(b"HTTP/1.1 408 "), (name, answer)
            assert TIMEOUT_S * 0.9 <= took <= TIMEOUT_S + 1.5, (name, took)
    for took, answer in results["idle"]:  # type: ignore[misc]
        assert answer == b"" and TIMEOUT_S * 0.9 <= took <= TIMEOUT_S + 1.5
    for took, answer in results["keep_alive"]:  # type: ignore[misc]
        assert answer.startswith(b"HTTP/1.1 200 ") and TIMEOUT_S * 0.9 <= took <= TIMEOUT_S + 1.5

    assert len(statuses) >= 20 and set(statuses) == {200}
    assert max(latencies) < 0.5, sorted(latencies)[-5:]
    assert rss_peak[0] - rss_before < 48, (rss_before, rss_peak[0])


def test_a_large_head_within_the_limit_is_served(server: ServerProcess) -> None:
    # Many headers arriving in several reads, together just under the limit.
    headers = {f"x-pad-{i}": "v" * 100 for i in range(LIMIT // 130)}
    reply = httpx.get(f"{server.url}/v2/health/live", headers=headers, timeout=10)
    assert reply.status_code == 200
    headers = {f"x-pad-{i}": "v" * 100 for i in range(LIMIT // 100)}
    reply = httpx.get(f"{server.url}/v2/health/live", headers=headers, timeout=10)
    assert reply.status_code == 431
    assert reply.json() == {"error": f"the request head is larger than {LIMIT} bytes"}
