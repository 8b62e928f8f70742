"""Optional OpenTelemetry tracing of requests: one tracer per serving process, off by default.

With ``tracing.enabled`` (``MODELPORT_TRACING__ENABLED=true``, and the ``tracing`` extra:
``pip install 'modelport[tracing]'``) every serving process exports spans over OTLP/HTTP to
``tracing.endpoint``, batched off the request path by the SDK's ``BatchSpanProcessor``:

================== ======== ===============================================================
span               kind     where, and what it carries
================== ======== ===============================================================
``POST {route}``   server   every REST request but the health probes and ``/metrics``:
                            ``http.request.method``, ``http.route``, ``url.path``,
                            ``http.response.status_code``; on a gateway
                            ``modelport.deployment``, ``modelport.variant``,
                            ``modelport.model_version``, ``modelport.request_id``; on a model
                            server ``modelport.model`` and ``modelport.model_version``
``.../ModelInfer`` server   gRPC inference (``rpc.*`` attributes and the same ``modelport.*``)
``forward``        client   a gateway's call to a ``modelport serve`` replica: the W3C
                            ``traceparent`` (and ``tracestate``) of this span goes with it
``parse``          internal reading and decoding the request body (model server, ``up``)
``queue``          internal waiting in the batcher (zero when the version does not batch)
``inference``      internal the model call (its batch's, when batched)
================== ======== ===============================================================

A server span continues the caller's trace when the request carries a ``traceparent`` header
(gRPC: metadata), so a replica's spans are children of the gateway's ``forward`` span, and a
gateway's of the caller's. Sampling is parent-based with ``tracing.sample_ratio`` for new traces.
The ``parse``, ``queue`` and ``inference`` spans are made after the fact from times the data
plane hands back (:class:`~modelport.batching.RunMarks`), so nothing below ``server/`` imports
OpenTelemetry.

**One per process.** The supervisor calls :func:`start_tracing` in each worker process before
the worker builds anything, and :func:`stop_tracing` after it returns; the parts that trace
(the REST and gRPC transports, the gateway's backends) read :func:`current` once, when they are
built, as OpenTelemetry's own API keeps one tracer provider per process. A graceful stop
exports what is queued (for at most 5 s) as soon as the app's shutdown hooks have run, before
uvicorn returns: a forked worker ends by re-raising the signal that stopped it.

**Off costs nothing measurable.** Off, :func:`current` is ``None``, no ``opentelemetry`` module
is imported, and a request pays one ``is None`` test per part (bench/notes/2026-12-08-tracing.md).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Final, Literal

from modelport.core.errors import ConfigError
from modelport.core.settings import TracingSettings

if TYPE_CHECKING:
    from modelport.server._otel import Tracing

__all__ = ["INSTALL_HINT", "Role", "check_tracing", "current", "start_tracing", "stop_tracing"]

Role = Literal["server", "gateway", "up"]
"""Which process traces: ``modelport serve``, ``modelport gateway`` or ``modelport up``."""

INSTALL_HINT: Final = "pip install 'modelport[tracing]'"
"""What installs the OpenTelemetry packages tracing needs."""

_active: Tracing | None = None
"""This process's tracing, while it is on."""


def _implementation() -> ModuleType:
    """Import the OpenTelemetry half (``modelport.server._otel``).

    Raises:
        ConfigError: The ``tracing`` extra is not installed.
    """
    try:
        return importlib.import_module("modelport.server._otel")
    except ImportError as exc:
        missing = exc.name or "opentelemetry"
        raise ConfigError(
            "tracing.enabled is on (MODELPORT_TRACING__ENABLED), but the OpenTelemetry "
            f"packages are not installed ({missing} is missing): {INSTALL_HINT}"
        ) from None


def check_tracing(settings: TracingSettings) -> None:
    """Fail now, before any worker starts, if tracing is on and cannot work.

    Raises:
        ConfigError: Tracing is on and the ``tracing`` extra is not installed.
    """
    if settings.enabled:
        _implementation()


def start_tracing(settings: TracingSettings, role: Role) -> Tracing | None:
    """Start this process's tracing when ``settings`` turn it on; return it (``None``: off).

    Args:
        settings: The ``tracing`` settings.
        role: The process's kind; its default ``service.name`` is ``modelport-{role}``
            (``modelport-server`` for ``serve``).

    Raises:
        ConfigError: Tracing is on and the ``tracing`` extra is not installed.
    """
    global _active
    if not settings.enabled:
        return None
    module = _implementation()
    stop_tracing()
    tracing: Tracing = module.Tracing(settings, role)
    _active = tracing
    return tracing


def current() -> Tracing | None:
    """This process's tracing, or ``None`` when it is off (the default)."""
    return _active


def stop_tracing(timeout_s: float = 5.0) -> None:
    """Export what is still queued (at most ``timeout_s`` seconds) and stop tracing."""
    global _active
    tracing, _active = _active, None
    if tracing is not None:
        tracing.shutdown(timeout_s)
