"""A real grpc.aio server on a loopback port, run by an event loop in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from modelport.core.settings import Settings
from modelport.server.grpc import create_grpc_server
from modelport.service.access import AccessControl
from modelport.service.dataplane import DataPlane
from modelport.service.wiring import ServeTarget, build_dataplane, open_registrar, resolve_sources

T = TypeVar("T")

MODELS = ("iris@1", "iris@2", "iris-onnx", "echo-json", "echo-binary")
MAX_MESSAGE = 4 * 1024 * 1024


class LoopThread:
    """An asyncio event loop running in a daemon thread; :meth:`call` runs a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextmanager
def serve_grpc(
    dataplane: DataPlane, port: int = 0, access: AccessControl | None = None
) -> Iterator[str]:
    """Serve ``dataplane`` over gRPC on 127.0.0.1 (``port`` 0: a free one); yields ``host:port``.

    The server is built, started and stopped on the loop thread, as ``modelport serve`` does on
    the loop that also runs the REST server.
    """
    thread = LoopThread()
    try:

        async def start() -> tuple[Any, int]:
            server, bound = create_grpc_server(
                dataplane, access or AccessControl(None), "127.0.0.1", port, MAX_MESSAGE
            )
            await server.start()
            return server, bound

        server, bound = thread.call(start())
        try:
            yield f"127.0.0.1:{bound}"
        finally:
            thread.call(server.stop(0))
    finally:
        thread.close()


@contextmanager
def hosted_dataplane(home: Path) -> Iterator[DataPlane]:
    """A data plane hosting :data:`MODELS` from the registry at ``home``, loaded."""
    settings = Settings(home=home)
    registrar = open_registrar(settings)
    try:
        sources = resolve_sources([ServeTarget(spec) for spec in MODELS], registrar)
        dataplane = build_dataplane(settings, sources, registrar)
        dataplane.repository.load_all()
        try:
            yield dataplane
        finally:
            asyncio.run(dataplane.close())
    finally:
        registrar.store.close()
