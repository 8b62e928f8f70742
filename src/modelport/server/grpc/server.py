"""Builds the grpc.aio server that serves the Open Inference Protocol beside the REST app.

The caller owns the lifecycle on the event loop that runs the REST server::

    server, port = create_grpc_server(dataplane, access, "0.0.0.0", 8081, max_body_bytes)
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
from modelport.core.settings import TlsSettings
from modelport.protocol.grpc_gen import inference_pb2_grpc as pb_grpc
from modelport.server.grpc.servicer import InferenceServicer
from modelport.server.logs import AccessLog
from modelport.server.tls import tls_files
from modelport.service.access import AccessControl
from modelport.service.dataplane import DataPlane

__all__ = ["create_grpc_server", "listen_address", "server_credentials"]


def listen_address(host: str, port: int) -> str:
    """Return ``host:port`` for gRPC, with an IPv6 host in brackets."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials | None:
    """Return TLS credentials for ``tls`` (mutual TLS when it names a CA), or ``None``.

    gRPC's TLS stack negotiates TLS 1.2 or newer only.

    Raises:
        ConfigError: A file cannot be read, or only one of cert and key is set.
    """
    files = tls_files(tls)
    if files is None:
        return None
    try:
        pair = (files.key.read_bytes(), files.cert.read_bytes())
        ca = files.ca.read_bytes() if files.ca is not None else None
    except OSError as exc:
        raise ConfigError(f"cannot read a TLS file: {exc}") from None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=ca, require_client_auth=ca is not None
    )


def create_grpc_server(
    dataplane: DataPlane | None,
    access: AccessControl,
    host: str,
    port: int,
    max_message_bytes: int,
    *,
    tls: TlsSettings | None = None,
    clock: Clock | None = None,
    access_log: AccessLog | None = None,
    servicer: InferenceServicer | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Build a grpc.aio server for ``dataplane`` and bind it; it is not started.

    grpc.aio ties a server to the event loop running when it is built, so call this from a
    coroutine on the loop that will start it (built outside a loop, ``start()`` fails with
    "attached to a different loop").

    Args:
        dataplane: The use cases behind the service.
        access: Authentication, authorisation and audit of every call.
        host: Address to listen on (``0.0.0.0``, ``::``, ``127.0.0.1``...).
        port: Port; 0 picks a free one.
        max_message_bytes: Largest message received or sent; larger ones fail with
            ``RESOURCE_EXHAUSTED``.
        tls: Certificate, key and client CA; plaintext when unset.
        clock: Time source for deadlines (the system clock when ``None``).
        access_log: Where each call is recorded; ``None`` keeps no access log.
        servicer: The service to serve (a gateway's); ``None`` serves ``dataplane``.

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
    if servicer is None:
        if dataplane is None:
            raise ValueError("create_grpc_server needs a data plane or a servicer")
        servicer = InferenceServicer(dataplane, access, clock, access_log)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    address = listen_address(host, port)
    credentials = server_credentials(tls) if tls is not None else None
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen for gRPC on {address}: {exc}") from None
    if not bound:
        raise ConfigError(f"cannot listen for gRPC on {address}; is the address valid and free?")
    return server, int(bound)
