"""The HTTP replica probe against loopback servers: live, wrong status, refused, silent, DNS."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from modelport.core.settings import ControlPlaneSettings, GatewaySettings, Settings
from modelport.server.controlplane.probe import HttpReplicaProbe


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("authorization")))
        self.send_response(self.status)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(status: int) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"status": status, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def live() -> Iterator[str]:
    yield from _serve(200)


@pytest.fixture()
def failing() -> Iterator[str]:
    yield from _serve(503)


@pytest.fixture()
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def silent() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_live_replicas_pass_and_the_others_say_why(
    live: str, failing: str, closed_port: int
) -> None:
    refused = f"http://127.0.0.1:{closed_port}"
    probe = HttpReplicaProbe(timeout_s=2)
    found = probe.unreachable([live, live + "/", failing, refused], ["localhost:80"])
    assert set(found) == {failing, refused}
    assert found[failing] == f"GET {failing}/v2/health/live answered 503, expected 200"
    assert found[refused].startswith(f"GET {refused}/v2/health/live: cannot connect (")
    assert probe.unreachable([], []) == {}


def test_a_silent_replica_is_reported_within_about_the_timeout(silent: str) -> None:
    started = time.monotonic()
    found = HttpReplicaProbe(timeout_s=0.3).unreachable([silent], [])
    assert time.monotonic() - started < 2
    assert "no answer within 0.3 s" in found[silent]


def test_a_name_that_does_not_resolve() -> None:
    found = HttpReplicaProbe(timeout_s=2).unreachable([], ["no-such-host.invalid:8080"])
    assert found["no-such-host.invalid:8080"].startswith("'no-such-host.invalid' does not resolve")


def test_from_settings_presents_the_upstream_key() -> None:
    settings = Settings(
        controlplane=ControlPlaneSettings(replica_timeout_s=0.5),
        gateway=GatewaySettings(upstream_key=SecretStr("s3cret")),
    )
    handler_seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (_Handler,), {"status": 200, "seen": handler_seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert HttpReplicaProbe.from_settings(settings).unreachable([url], []) == {}
    finally:
        server.shutdown()
        server.server_close()
    assert handler_seen == [("/v2/health/live", "Bearer s3cret")]
