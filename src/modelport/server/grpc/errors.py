"""Maps error kinds to gRPC status codes; the details are the same messages REST sends.

=================== ===================== ==============================================
kind                gRPC status           why
=================== ===================== ==============================================
INVALID_INPUT       INVALID_ARGUMENT      bad request data
CONFIG              INVALID_ARGUMENT      bad arguments (REST: 400 too)
PAYLOAD_TOO_LARGE   RESOURCE_EXHAUSTED    what gRPC itself answers for an oversized message
NOT_FOUND           NOT_FOUND             unknown model or version
UNAVAILABLE         UNAVAILABLE           known model that is not loaded
OVERLOADED          RESOURCE_EXHAUSTED    queue full; ``grpc-retry-pushback-ms`` says when to retry
DEADLINE_EXCEEDED   DEADLINE_EXCEEDED     the request's deadline passed before it ran
CONFLICT            FAILED_PRECONDITION   the current state forbids the action
UNAUTHENTICATED     UNAUTHENTICATED       missing or bad credential
PERMISSION_DENIED   PERMISSION_DENIED     known identity without the right
RATE_LIMITED        RESOURCE_EXHAUSTED    per-identity rate limit; pushback says when
INTEGRITY           DATA_LOSS             a stored artifact is corrupt or tampered with:
                                          "unrecoverable data loss or corruption" is
                                          gRPC's own description of that, and retrying
                                          or changing the request cannot fix it
DEPENDENCY_MISSING  UNIMPLEMENTED         the server lacks an optional framework
INTERNAL            INTERNAL              the model failed, or a bug (logged)
=================== ===================== ==============================================

Unary methods are wrapped by :func:`handle_errors`, which aborts the call with the mapped status;
a stream reports a failed request with :func:`error_message` in that request's response instead.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, Final, NoReturn, Protocol, TypeVar, cast

import grpc

from modelport.core.errors import ErrorKind, ModelportError, Overloaded, RateLimited
from modelport.server.grpc.calls import CURRENT_CALL
from modelport.server.logs import AccessLog, AccessRecord

__all__ = ["STATUS_BY_KIND", "abort", "error_message", "handle_errors", "status_name"]

log = logging.getLogger("modelport.server")

STATUS_BY_KIND: Final[dict[ErrorKind, grpc.StatusCode]] = {
    ErrorKind.INVALID_INPUT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.CONFIG: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.PAYLOAD_TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorKind.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.INTEGRITY: grpc.StatusCode.DATA_LOSS,
    ErrorKind.DEPENDENCY_MISSING: grpc.StatusCode.UNIMPLEMENTED,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
}

_RETRY_PUSHBACK: Final = "grpc-retry-pushback-ms"

S = TypeVar("S")
Q = TypeVar("Q")
R = TypeVar("R")


def error_message(exc: BaseException, method: str) -> str:
    """Return the message a client sees for ``exc``; unexpected errors are logged.

    Args:
        exc: What went wrong.
        method: The RPC, for the log.
    """
    if isinstance(exc, ModelportError):
        if exc.kind is ErrorKind.INTERNAL:
            log.error("gRPC %s failed: %s", method, exc)
        return exc.message
    log.error("unexpected error in gRPC %s", method, exc_info=exc)
    return f"internal error: {type(exc).__name__}"


async def abort(context: Any, exc: BaseException, method: str) -> NoReturn:
    """End the call with the status for ``exc`` (``INTERNAL`` when it is not ours).

    Raises:
        Exception: Always; grpc.aio's abort raises to unwind the handler.
    """
    message = error_message(exc, method)
    if not isinstance(exc, ModelportError):
        await context.abort(grpc.StatusCode.INTERNAL, message)
    else:
        metadata: tuple[tuple[str, str], ...] = ()
        if isinstance(exc, Overloaded | RateLimited):
            # gRFC A6: clients with a retry policy wait this long before the next attempt.
            metadata = ((_RETRY_PUSHBACK, str(max(0, math.ceil(exc.retry_after * 1000)))),)
        await context.abort(STATUS_BY_KIND[exc.kind], message, trailing_metadata=metadata)
    raise AssertionError("unreachable: context.abort returned")  # pragma: no cover


class _Servicer(Protocol):
    access_log: AccessLog | None


def status_name(exc: BaseException) -> str:
    """The gRPC status code's name (``NOT_FOUND``) a call ending with ``exc`` gets."""
    code = STATUS_BY_KIND[exc.kind] if isinstance(exc, ModelportError) else None
    return str(code.name) if code is not None else "INTERNAL"


def handle_errors(
    method: Callable[[S, Q, Any], Awaitable[R]],
) -> Callable[[S, Q, Any], Awaitable[R]]:
    """Wrap a unary servicer method: any error ends the call with its status.

    With the servicer's access log on, each call is written to it with its status and duration.
    """

    @functools.wraps(method)
    async def wrapper(self: S, request: Q, context: Any) -> R:
        access_log = cast(_Servicer, self).access_log
        if access_log is None:
            try:
                return await method(self, request, context)
            except Exception as exc:  # every error becomes a status; nothing escapes to grpc
                await abort(context, exc, method.__name__)
        record = AccessRecord()
        token = CURRENT_CALL.set(record)
        started = perf_counter()
        status = "OK"
        try:
            return await method(self, request, context)
        except Exception as exc:
            status = status_name(exc)
            await abort(context, exc, method.__name__)
        finally:
            CURRENT_CALL.reset(token)
            access_log.rpc(method.__name__, status, perf_counter() - started, record)

    return wrapper
