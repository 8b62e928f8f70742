"""Maps error kinds to HTTP statuses and the protocol's error body ``{"error": "..."}``."""

from __future__ import annotations

import logging
import math
from typing import Final

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from modelport.core.errors import ErrorKind, ModelportError, Overloaded

__all__ = ["STATUS_BY_KIND", "error_response", "handle_http_exception", "handle_modelport_error"]

log = logging.getLogger("modelport.server")

STATUS_BY_KIND: Final[dict[ErrorKind, int]] = {
    ErrorKind.INVALID_INPUT: 400,
    ErrorKind.CONFIG: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.PAYLOAD_TOO_LARGE: 413,
    # The request was fine but the artifact it names fails verification or parsing.
    ErrorKind.INTEGRITY: 422,
    ErrorKind.DEPENDENCY_MISSING: 501,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.OVERLOADED: 503,
    ErrorKind.DEADLINE_EXCEEDED: 504,
    ErrorKind.INTERNAL: 500,
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Return ``{"error": message}`` with ``status``."""
    return Response(
        orjson.dumps({"error": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def handle_modelport_error(request: Request, exc: Exception) -> Response:
    """Turn a :class:`ModelportError` into its status and message."""
    if not isinstance(exc, ModelportError):  # pragma: no cover - registered for that type only
        raise exc
    status = STATUS_BY_KIND[exc.kind]
    if exc.kind is ErrorKind.INTERNAL:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    headers = None
    if isinstance(exc, Overloaded):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return error_response(status, exc.message, headers)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Give routing errors (unknown path, wrong method) the protocol's error body."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for that type only
        raise exc
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, dict(exc.headers or {}))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Last resort: log the bug and answer 500 without leaking a traceback."""
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, f"internal error: {type(exc).__name__}")
