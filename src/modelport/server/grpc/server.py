"""Builds the grpc.aio server that serves the Open Inference Protocol beside the REST app.

The caller owns the lifecycle on the event loop that runs the REST server::

    server, port = create_grpc_server(dataplane, "0.0.0.0", 8081, settings.max_body_bytes)
    await server.start()
    ...
    await server.stop(grace)

``grpc.so_reuseport`` is on, so several worker processes can listen on the same port and the
kernel spreads connections over them.
"""

from __future__ import annotations

import grpc

from modelport.core.clock import Clock
from modelport.core.errors import ConfigError
from modelport.protocol.grpc_gen import inference_pb2_grpc as pb_grpc
from modelport.server.grpc.servicer import InferenceServicer
from modelport.service.dataplane import DataPlane

__all__ = ["create_grpc_server", "listen_address"]


def listen_address(host: str, port: int) -> str:
    """Return ``host:port`` for gRPC, with an IPv6 host in brackets."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def create_grpc_server(
    dataplane: DataPlane,
    host: str,
    port: int,
    max_message_bytes: int,
    *,
    clock: Clock | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Build a grpc.aio server for ``dataplane`` and bind it; it is not started.

    grpc.aio ties a server to the event loop running when it is built, so call this from a
    coroutine on the loop that will start it (built outside a loop, ``start()`` fails with
    "attached to a different loop").

    Args:
        dataplane: The use cases behind the service.
        host: Address to listen on (``0.0.0.0``, ``::``, ``127.0.0.1``...).
        port: Port; 0 picks a free one.
        max_message_bytes: Largest message received or sent; larger ones fail with
            ``RESOURCE_EXHAUSTED``.
        clock: Time source for deadlines (the system clock when ``None``).

    Returns:
        The server and the port it is bound to.

    Raises:
        ConfigError: The address cannot be bound.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", 1),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(dataplane, clock), server)
    address = listen_address(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen for gRPC on {address}: {exc}") from None
    if not bound:
        raise ConfigError(f"cannot listen for gRPC on {address}; is the address valid and free?")
    return server, int(bound)
