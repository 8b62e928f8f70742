"""The access-log record of the gRPC call in progress.

:func:`~modelport.server.grpc.errors.handle_errors` opens an
:class:`~modelport.server.logs.AccessRecord` for each unary call when the access log is on, in a
context variable (every call runs in a task of its own); the servicer fills in what it learns
(the model, the version that answered, the request id, who called), and the wrapper hands it to
:meth:`~modelport.server.logs.AccessLog.rpc` with the status and duration when the call ends.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Final

from modelport.server.logs import AccessRecord

__all__ = ["CURRENT_CALL"]

CURRENT_CALL: Final[ContextVar[AccessRecord | None]] = ContextVar(
    "modelport_grpc_call", default=None
)
"""The record of the unary call running in this task, when the access log is on."""
