"""Runs the REST app under uvicorn on a socket bound before start (so ``--port 0`` works)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

from modelport.core.errors import ConfigError
from modelport.core.settings import ServerSettings
from modelport.server.rest.app import create_app
from modelport.service.dataplane import DataPlane

__all__ = ["bind", "run_server"]


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket; port 0 picks a free one.

    Raises:
        ConfigError: The address cannot be bound (in use, not local, bad host).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_server(
    settings: ServerSettings,
    dataplane: DataPlane,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve ``dataplane`` over REST until interrupted.

    Args:
        settings: Host, port and limits.
        dataplane: Loaded models and their use cases.
        on_listening: Called with the base URL once the socket is bound.
    """
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if on_listening is not None:
        on_listening(f"http://{shown}:{port}")
    config = uvicorn.Config(
        create_app(settings, dataplane),
        log_level="warning",
        access_log=False,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])
