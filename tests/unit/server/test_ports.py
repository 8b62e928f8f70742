"""Binding the server's ports: only its own sockets may share a port (real sockets, loopback)."""

from __future__ import annotations

import socket
import sys

import pytest

from modelport.core.errors import ConfigError
from modelport.server.supervisor import bind, bind_shared, bind_workers, claim_grpc_port

linux = pytest.mark.skipif(sys.platform != "linux", reason="ports are shared on Linux only")


@linux
def test_shared_sockets_share_one_port_and_nobody_else_joins() -> None:
    ours = bind_shared("127.0.0.1", 0, 3)
    try:
        port = ours[0].getsockname()[1]
        assert {s.getsockname()[1] for s in ours} == {port}
        # Another server doing the same (SO_REUSEPORT, same user) used to join and take traffic.
        with pytest.raises(ConfigError, match=f"^port {port} on 127.0.0.1 is already in use$"):
            bind_shared("127.0.0.1", port, 2)
        with pytest.raises(ConfigError, match="already in use"):
            bind("127.0.0.1", port)
    finally:
        for sock in ours:
            sock.close()


@linux
def test_a_foreign_listener_blocks_workers_and_the_grpc_claim() -> None:
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        for attempt in (
            lambda: bind_workers("127.0.0.1", port, 2),
            lambda: claim_grpc_port("127.0.0.1", port),
        ):
            with pytest.raises(ConfigError, match=f"^port {port} on 127.0.0.1 is already in use$"):
                attempt()


@linux
def test_the_grpc_claim_lets_the_workers_bind_with_reuseport() -> None:
    claim = claim_grpc_port("127.0.0.1", 0)
    try:
        port = claim.getsockname()[1]
        with socket.socket() as worker:  # as grpc binds with grpc.so_reuseport
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            worker.bind(("127.0.0.1", port))
            worker.listen()
    finally:
        claim.close()


def test_a_port_freed_by_closing_can_be_bound_again() -> None:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    bind("127.0.0.1", port).close()
