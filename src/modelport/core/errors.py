"""The transport-neutral error tree.

Every error modelport raises on purpose derives from :class:`ModelportError` and carries an
:class:`ErrorKind`. Transports choose their own codes from the kind: ``server/rest`` maps kinds to
HTTP statuses, ``server/grpc`` to gRPC status codes and ``cli`` to exit codes. Nothing here knows
about any transport.

::

    ModelportError
    ├── InvalidInput          kind=INVALID_INPUT       bad request data (shape, datatype, JSON)
    │   └── PayloadTooLarge   kind=PAYLOAD_TOO_LARGE   body over the configured limit
    ├── NotFound              kind=NOT_FOUND           unknown model, version, alias or artifact
    ├── ModelNotReady         kind=UNAVAILABLE         known model that cannot serve now
    ├── ServiceUnavailable    kind=UNAVAILABLE         a part the call needs is down (audit log)
    ├── Overloaded            kind=OVERLOADED          queue full; retry after ``retry_after`` s
    ├── DeadlineExceeded      kind=DEADLINE_EXCEEDED   the request's deadline passed before it ran
    ├── Conflict              kind=CONFLICT            state forbids the action
    ├── Unauthenticated       kind=UNAUTHENTICATED     missing, bad, expired or revoked key
    ├── PermissionDenied      kind=PERMISSION_DENIED   a known identity without the right
    ├── RateLimited           kind=RATE_LIMITED        over the caller's rate limit
    ├── IntegrityError        kind=INTEGRITY           digest mismatch, corrupt artifact
    ├── DependencyMissing     kind=DEPENDENCY_MISSING  optional framework/provider missing
    ├── ConfigError           kind=CONFIG              invalid settings or arguments
    └── InferenceFailed       kind=INTERNAL            the model itself failed on valid input
"""

from __future__ import annotations

import enum

__all__ = [
    "Conflict",
    "DeadlineExceeded",
    "ConfigError",
    "DependencyMissing",
    "ErrorKind",
    "InferenceFailed",
    "IntegrityError",
    "InvalidInput",
    "ModelNotReady",
    "ModelportError",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthenticated",
    "error_for_kind",
]


class ErrorKind(enum.Enum):
    """What went wrong, independent of how it is reported."""

    INVALID_INPUT = "invalid_input"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    OVERLOADED = "overloaded"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    CONFLICT = "conflict"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    RATE_LIMITED = "rate_limited"
    INTEGRITY = "integrity"
    DEPENDENCY_MISSING = "dependency_missing"
    CONFIG = "config"
    INTERNAL = "internal"


class ModelportError(Exception):
    """Root of every error modelport raises on purpose.

    Args:
        message: What was wrong and, where it applies, what was expected instead.
    """

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(ModelportError):
    """The caller sent data that does not match what was expected."""

    kind = ErrorKind.INVALID_INPUT


class PayloadTooLarge(InvalidInput):
    """The request body is larger than the configured limit."""

    kind = ErrorKind.PAYLOAD_TOO_LARGE


class NotFound(ModelportError):
    """A model, version, alias or artifact does not exist."""

    kind = ErrorKind.NOT_FOUND


class ModelNotReady(ModelportError):
    """The model exists but cannot serve requests now (loading, unloaded or failed)."""

    kind = ErrorKind.UNAVAILABLE


class ServiceUnavailable(ModelportError):
    """A part the call needs is down (the audit log cannot be written); retry later."""

    kind = ErrorKind.UNAVAILABLE


class Overloaded(ModelportError):
    """Too much queued work; the caller should retry after :attr:`retry_after` seconds.

    Args:
        message: What is full.
        retry_after: Suggested wait in seconds before retrying.
    """

    kind = ErrorKind.OVERLOADED

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(ModelportError):
    """The request's deadline passed before it could run; it was not run."""

    kind = ErrorKind.DEADLINE_EXCEEDED


class Conflict(ModelportError):
    """The current state forbids the action (for example archiving a version behind an alias)."""

    kind = ErrorKind.CONFLICT


class Unauthenticated(ModelportError):
    """No credential, or one that is malformed, unknown, expired or revoked."""

    kind = ErrorKind.UNAUTHENTICATED


class PermissionDenied(ModelportError):
    """The caller is known but lacks the role or scope for the action."""

    kind = ErrorKind.PERMISSION_DENIED


class RateLimited(ModelportError):
    """The caller sent more requests than its rate limit allows.

    Args:
        message: Which limit was hit.
        retry_after: Seconds until the next request would be accepted.
    """

    kind = ErrorKind.RATE_LIMITED

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IntegrityError(ModelportError):
    """Stored content does not match its recorded digest or is otherwise corrupt."""

    kind = ErrorKind.INTEGRITY


class DependencyMissing(ModelportError):
    """An optional framework, extra or execution provider is not installed."""

    kind = ErrorKind.DEPENDENCY_MISSING


class ConfigError(ModelportError):
    """Settings or arguments are invalid."""

    kind = ErrorKind.CONFIG


class InferenceFailed(ModelportError):
    """The model raised on input that passed validation."""

    kind = ErrorKind.INTERNAL


_BY_KIND: dict[ErrorKind, type[ModelportError]] = {
    ErrorKind.INVALID_INPUT: InvalidInput,
    ErrorKind.PAYLOAD_TOO_LARGE: PayloadTooLarge,
    ErrorKind.NOT_FOUND: NotFound,
    ErrorKind.UNAVAILABLE: ModelNotReady,
    ErrorKind.OVERLOADED: Overloaded,
    ErrorKind.DEADLINE_EXCEEDED: DeadlineExceeded,
    ErrorKind.CONFLICT: Conflict,
    ErrorKind.UNAUTHENTICATED: Unauthenticated,
    ErrorKind.PERMISSION_DENIED: PermissionDenied,
    ErrorKind.RATE_LIMITED: RateLimited,
    ErrorKind.INTEGRITY: IntegrityError,
    ErrorKind.DEPENDENCY_MISSING: DependencyMissing,
    ErrorKind.CONFIG: ConfigError,
    ErrorKind.INTERNAL: InferenceFailed,
}


def error_for_kind(kind: ErrorKind, message: str) -> ModelportError:
    """Rebuild an error from its kind and message (for errors reported across processes)."""
    return _BY_KIND[kind](message)
