"""Exit codes for the ``modelport`` command, chosen from error kinds.

=====  =============================================
code   meaning
=====  =============================================
0      success
1      internal error or model failure
2      bad input, bad argument or bad configuration
3      not found (model, version, alias, file)
4      conflict (state forbids the action)
5      unavailable (server unreachable, model not ready)
6      integrity (artifact corrupt or not loadable)
7      optional dependency missing
8      not authenticated or not permitted (401, 403)
9      rate limited (429)
=====  =============================================
"""

from __future__ import annotations

from typing import Final

from modelport.core.errors import ErrorKind

__all__ = ["EXIT_BY_KIND", "EXIT_BY_STATUS"]

EXIT_BY_KIND: Final[dict[ErrorKind, int]] = {
    ErrorKind.INTERNAL: 1,
    ErrorKind.INVALID_INPUT: 2,
    ErrorKind.PAYLOAD_TOO_LARGE: 2,
    ErrorKind.CONFIG: 2,
    ErrorKind.NOT_FOUND: 3,
    ErrorKind.CONFLICT: 4,
    ErrorKind.UNAVAILABLE: 5,
    ErrorKind.OVERLOADED: 5,
    ErrorKind.DEADLINE_EXCEEDED: 5,
    ErrorKind.INTEGRITY: 6,
    ErrorKind.DEPENDENCY_MISSING: 7,
    ErrorKind.UNAUTHENTICATED: 8,
    ErrorKind.PERMISSION_DENIED: 8,
    ErrorKind.RATE_LIMITED: 9,
}

EXIT_BY_STATUS: Final[dict[int, int]] = {
    400: 2,
    401: 8,
    403: 8,
    404: 3,
    409: 4,
    413: 2,
    422: 6,
    429: 9,
    501: 7,
    503: 5,
    504: 5,
}
"""Exit codes for HTTP error statuses a server returns to ``modelport predict``."""
