"""Maps error kinds to HTTP statuses and the protocol's error body ``{"error": "..."}``."""

from __future__ import annotations

import math
from typing import Final

import orjson

from modelport.core.errors import (
    ErrorKind,
    ModelportError,
    Overloaded,
    RateLimited,
    Unauthenticated,
)
from modelport.server.rest.asgi import Reply

__all__ = ["STATUS_BY_KIND", "error_reply", "reply_for"]

STATUS_BY_KIND: Final[dict[ErrorKind, int]] = {
    ErrorKind.INVALID_INPUT: 400,
    ErrorKind.CONFIG: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.PERMISSION_DENIED: 403,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.PAYLOAD_TOO_LARGE: 413,
    # The request was fine but the artifact it names fails verification or parsing.
    ErrorKind.INTEGRITY: 422,
    ErrorKind.DEPENDENCY_MISSING: 501,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.OVERLOADED: 503,
    # The request's own deadline passed while it waited; it was never run.
    ErrorKind.DEADLINE_EXCEEDED: 504,
    ErrorKind.INTERNAL: 500,
}


def error_reply(status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Reply:
    """Return ``{"error": message}`` with ``status``."""
    return Reply(status, orjson.dumps({"error": message}), headers=headers)


def reply_for(exc: ModelportError) -> Reply:
    """Return the reply for a modelport error (with ``Retry-After`` when overloaded)."""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if isinstance(exc, Overloaded | RateLimited):
        headers = ((b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode()),)
    elif isinstance(exc, Unauthenticated):
        # RFC 6750: a 401 names the scheme the server expects.
        headers = ((b"www-authenticate", b'Bearer realm="modelport"'),)
    return error_reply(STATUS_BY_KIND[exc.kind], exc.message, headers)
