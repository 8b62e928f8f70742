"""What the access log records of a gRPC call, and the record of the call in progress.

:func:`~modelport.server.grpc.errors.handle_errors` opens a :class:`CallRecord` for each unary
call (a context variable: every call runs in a task of its own), the servicer fills in what it
learns (the model, the version that answered, the request id, who called), and the wrapper hands
it to :meth:`modelport.server.logs.AccessLog.rpc` with the status and duration when the call
ends. The caller's identity is hashed when the log's writer thread reads it, off the event loop.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Final

from modelport.security.identity import ANONYMOUS, Identity
from modelport.server.logs import identity_hash

__all__ = ["CURRENT_CALL", "CallRecord"]


class CallRecord:
    """The access-log fields of one gRPC call."""

    __slots__ = ("identity", "model", "request_id", "version")

    def __init__(self) -> None:
        self.model: str | None = None
        self.version: str | None = None
        self.request_id: str | None = None
        self.identity: Identity = ANONYMOUS

    @property
    def identity_hash(self) -> str | None:
        """A short hash of who called (never the credential); ``None`` when not authenticated."""
        identity = self.identity
        return None if identity is ANONYMOUS else identity_hash(identity.subject)


CURRENT_CALL: Final[ContextVar[CallRecord | None]] = ContextVar("modelport_grpc_call", default=None)
"""The record of the unary call running in this task, when the access log is on."""
