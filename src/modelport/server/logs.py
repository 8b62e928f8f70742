"""The model server's logs: level, text or JSON lines, and one access line per request.

Every record goes through a queue to a writer thread (``logging.handlers.QueueHandler`` and
``QueueListener``), so the event loop never waits on the terminal, a pipe or a disk. Access
lines skip the ``logging`` machinery on the loop altogether: :class:`AccessLog` puts a tuple of
the request's fields on the same queue, and the writer thread
formats it. The writer joins the lines it finds waiting and writes them with one ``write``
call, holding a POSIX record lock (``lockf``) on the descriptor while it writes, so lines of
several worker processes sharing one pipe, socket or file never interleave mid-line, and a
worker that dies releases the lock with it. A descriptor that takes no locks gets writes of at
most ``PIPE_BUF`` bytes instead, which the kernel keeps whole; that costs the event loop a GIL
hand-over per piece, where the lock costs three per batch.

An access line has these fields (``-`` / ``null`` where unknown):

============  ==============================================================================
time          when the response completed (UTC, ISO 8601, milliseconds)
method        HTTP method, or ``GRPC`` for a gRPC call
path          request path (percent-encoded, without the query), or the gRPC method name
              (``/inference.GRPCInferenceService/ModelInfer``)
status        HTTP status (number) or gRPC status code name (``OK``, ``NOT_FOUND``...)
duration_ms   from the request head to the end of the response, in milliseconds
model         model name the request addressed
version       model version that answered
request_id    the request id (``x-request-id``) the server used
identity      a short hash of the caller's identity (never the credential itself)
============  ==============================================================================

Text lines read ``TIME LEVEL LOGGER MESSAGE``; JSON lines are one object each, with ``time``,
``level``, ``logger`` and ``message``, plus the fields above for access lines.

gRPC: the servicer calls :meth:`AccessLog.rpc` once per call, for example::

    access_log.rpc("ModelInfer", "OK", duration_s, call_record)
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import logging.handlers
import os
import queue
import stat
import sys
import threading
import time
from collections.abc import Iterable
from typing import IO, Any, Final, Protocol

import orjson

from modelport.core.settings import LogSettings
from modelport.security.identity import AuthMethod, Identity

__all__ = ["AccessInfo", "AccessLog", "AccessRecord", "Logs", "identity_hash", "start_logs"]

ACCESS_LOGGER: Final = "modelport.access"
_PIPE_BUF: Final = 4096
"""Largest write a pipe keeps whole when several processes write to it (POSIX minimum)."""
_PIPE_SIZE: Final = 1 << 20
"""What a log pipe is widened to (Linux; the default unprivileged maximum)."""
_REMEMBERED_PARTS: Final = 4096
"""How many distinct request descriptions the text format keeps formatted."""
_NAP_S: Final = 0.05
"""How long the writer thread lets entries gather once it has written all it had."""
_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class AccessInfo(Protocol):
    """What the REST app leaves in ``scope["modelport.access"]`` about a request.

    Read after the response, by the log's writer thread.
    """

    model: str | None
    version: str | None
    request_id: str | None
    identity_hash: str | None


class AccessRecord:
    """The access-log fields of one call, filled in by the transport as it learns them.

    The HTTP protocol puts a fresh one in ``scope["modelport.access"]`` when the access log is
    on (the REST app fills it), and so does tracing (``server/tracing.py``), whose request span
    reads it; gRPC's ``handle_errors`` opens one per call. The caller's identity is hashed when
    the log's writer thread reads :attr:`identity_hash`, off the event loop. It holds no
    reference back to the request, so a request leaves no reference cycle.
    """

    __slots__ = ("identity", "model", "request_id", "route", "version")

    def __init__(self) -> None:
        self.model: str | None = None
        self.version: str | None = None
        self.request_id: str | None = None
        self.identity: Identity | None = None
        self.route: str | None = None
        """The path template of the route that answered (``/v2/models/{model_name}/infer``)."""

    @property
    def identity_hash(self) -> str | None:
        """A short hash of who called (never the credential); ``None`` when not authenticated."""
        identity = self.identity
        if identity is None or identity.method is AuthMethod.NONE:
            return None
        return identity_hash(identity.subject)


@functools.lru_cache(maxsize=4096)
def identity_hash(identity: str) -> str:
    """Return a short, stable hash of a caller's identity (key id, token subject, certificate).

    Twelve hex digits of SHA-256: enough to follow one caller through the logs, not a way back
    to the identity, and never the credential. Remembered for the last few thousand callers, as
    the same few callers make most requests.
    """
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class AccessLog:
    """Puts one access entry per request on the log queue; formatting happens off the loop.

    Args:
        sink: The queue the log writer thread reads.
    """

    __slots__ = ("_put",)

    def __init__(self, sink: queue.SimpleQueue[Any]) -> None:
        self._put = sink.put_nowait

    def http(
        self, method: str, raw_path: bytes, status: int | bytes, duration_s: float, info: Any
    ) -> None:
        """Record one HTTP request.

        Args:
            method: HTTP method.
            raw_path: Path as received (percent-encoded), without the query string.
            status: Response status (or its three digits, as in the status line).
            duration_s: Seconds from the request head to the end of the response.
            info: The app's :class:`AccessInfo` for the request, or ``None``.
        """
        self._put((time.time(), method, raw_path, status, duration_s, info))

    def rpc(self, rpc: str, status: str, duration_s: float, info: Any) -> None:
        """Record one gRPC call.

        Args:
            rpc: Method name (``ModelInfer``) or full path
                (``/inference.GRPCInferenceService/ModelInfer``).
            status: gRPC status code name (``OK``, ``INVALID_ARGUMENT``...).
            duration_s: Seconds the call took.
            info: The call's :class:`AccessInfo` (model, version, request id, identity hash),
                or ``None``.
        """
        path = rpc if rpc.startswith("/") else f"/inference.GRPCInferenceService/{rpc}"
        self._put((time.time(), "GRPC", path, status, duration_s, info))


_NO_FIELDS: Final = (None, None, None, None)


def _fields(info: AccessInfo | None) -> tuple[Any, Any, Any, Any]:
    """``(model, version, request_id, identity)`` of an :class:`AccessInfo`, ``None``s if absent."""
    if info is None:
        return _NO_FIELDS
    return info.model, info.version, info.request_id, info.identity_hash


def _status(status: object) -> object:
    if type(status) is bytes:  # the three digits of an HTTP status line
        return int(status) if status.isdigit() else 0
    return status


def _path(path: object) -> str:
    # A raw HTTP path holds no spaces or control characters (the parser refuses them); bytes
    # above 0x7f are escaped.
    return path.decode("ascii", "backslashreplace") if type(path) is bytes else str(path)


class _Clock:
    """ISO 8601 UTC times with milliseconds; the part up to the second is made once a second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def iso(self, when: float) -> str:
        second = int(when)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((when - second) * 1000):03d}Z"


def _clean(value: object) -> str:
    """Text for a text-format field: ``-`` when unknown, control characters and spaces escaped."""
    if value is None:
        return "-"
    text = value if type(value) is str else str(value)
    if text.isprintable() and " " not in text:
        return text
    return text.encode("unicode_escape").decode("ascii").replace(" ", "\\x20")


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()
        self._parts: dict[tuple[Any, ...], tuple[str, str]] = {}
        """The text around the duration, by the fields it is made of: most requests repeat
        another's method, path, status, model, version and caller."""

    def access(self, entry: tuple[Any, ...]) -> bytes:
        """Format one access entry."""
        when, method, path, status, duration_s, info = entry
        key = (method, path, status, _fields(info))
        parts = self._parts.get(key)
        if parts is None:
            parts = self._remember(key)
        return (
            f"{self._clock.iso(when)} INFO access {parts[0]} {duration_s * 1000.0:.3f}ms {parts[1]}"
        ).encode("utf-8", "backslashreplace")

    def _remember(self, key: tuple[Any, ...]) -> tuple[str, str]:
        if len(self._parts) >= _REMEMBERED_PARTS:
            self._parts.clear()
        method, path, status, (model, version, request_id, identity) = key
        parts = self._parts[key] = (
            f"{method} {_path(path)} {_status(status)}",
            f"model={_clean(model)} version={_clean(version)} request_id={_clean(request_id)} "
            f"identity={_clean(identity)}\n",
        )
        return parts

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{self._clock.iso(record.created)} {record.levelname} {record.name} "
            f"{record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def access(self, entry: tuple[Any, ...]) -> bytes:
        """Format one access entry."""
        when, method, path, status, duration_s, info = entry
        model, version, request_id, identity = _fields(info)
        path, status = _path(path), _status(status)
        return orjson.dumps(
            {
                "time": self._clock.iso(when),
                "level": "info",
                "logger": ACCESS_LOGGER,
                "message": f"{method} {path} {status}",
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_s * 1000.0, 3),
                "model": model,
                "version": None if version is None else str(version),
                "request_id": request_id,
                "identity": identity,
            },
            default=str,
            option=orjson.OPT_APPEND_NEWLINE,
        )

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": self._clock.iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra: dict[str, Any] | None = getattr(record, "fields", None)
        if extra:
            doc.update(extra)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class _BatchWriter(logging.Handler):
    """Formats records into a buffer; :meth:`flush` writes it in pipe-sized pieces."""

    def __init__(self, stream: IO[str], formatter: _TextFormatter | _JsonFormatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.access_line = formatter.access
        self._stream = stream
        try:
            self._fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None  # a stream without a descriptor (a test's capture): write to it
        self._lines: list[bytes] = []
        """Formatted lines, each ending with a newline, not yet written."""
        if self._fd is not None:
            _widen_pipe(self._fd)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            self._lines.append(line.encode("utf-8", "backslashreplace"))
        except Exception:  # noqa: BLE001 - a bad record must not stop the writer thread
            self.handleError(record)

    def add_access(self, entry: tuple[Any, ...]) -> None:
        """Format one access entry (no ``LogRecord``: it would only be thrown away)."""
        self._lines.append(self.access_line(entry))

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        if not lines:
            return
        if self._fd is None:
            self._stream.write(b"".join(lines).decode("utf-8", "replace"))
            self._stream.flush()
            return
        try:
            _write_whole_lines(self._fd, lines)
        except OSError:
            return  # the reader went away; nothing sensible is left to do with logs


def _widen_pipe(fd: int) -> None:
    """Let a pipe hold up to 1 MiB, so that a busy server's batches rarely wait for the reader.

    Linux's default is 64 KiB; an unprivileged process may raise it to
    ``/proc/sys/fs/pipe-max-size`` (1 MiB unless changed). Not a pipe, or not allowed: as it was.
    """
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


def _write_whole_lines(fd: int, lines: list[bytes]) -> None:
    """Write ``lines`` so that no other process's write lands inside one of them."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
    except OSError:  # a descriptor that takes no locks: pieces the kernel writes whole
        for piece in _pieces(lines):
            _write_all(fd, piece)
        return
    try:
        _write_all(fd, b"".join(lines))
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN)


def _pieces(lines: Iterable[bytes]) -> Iterable[bytes]:
    """Join lines into writes of at most ``PIPE_BUF`` bytes (a longer line goes alone)."""
    batch: list[bytes] = []
    size = 0
    for data in lines:
        if batch and size + len(data) > _PIPE_BUF:
            yield b"".join(batch)
            batch, size = [], 0
        batch.append(data)
        size += len(data)
    if batch:
        yield b"".join(batch)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


_STOP: Final = object()
"""Put on the queue to end the writer thread once everything before it is written."""


class _WriterThread(threading.Thread):
    """Formats what the queue holds, writes when it runs dry, then naps.

    The nap lets entries gather, so that under load the thread wakes (and takes the GIL from
    the event loop) once per batch instead of once per request; a batch is drained in one tight
    loop, without ``QueueListener``'s per-record calls.
    """

    def __init__(self, sink: queue.SimpleQueue[Any], writer: _BatchWriter) -> None:
        super().__init__(name="modelport-log-writer", daemon=True)
        self._sink = sink
        self._writer = writer

    def run(self) -> None:
        """Drain, write, nap, and wait for more, until :data:`_STOP` arrives."""
        wait, take = self._sink.get, self._sink.get_nowait
        writer = self._writer
        item = wait()
        while True:
            while True:
                if type(item) is tuple:
                    try:
                        writer.add_access(item)
                    except Exception:  # noqa: BLE001 - a bad entry must not stop the thread
                        logging.getLogger(__name__).exception("cannot format an access entry")
                elif item is _STOP:
                    writer.flush()
                    return
                else:
                    writer.handle(item)
                try:
                    item = take()
                except queue.Empty:
                    break
            writer.flush()
            time.sleep(_NAP_S)
            item = wait()

    def stop(self) -> None:
        """Write everything queued so far, then end the thread."""
        self._sink.put(_STOP)
        self.join()


class Logs:
    """The installed log pipeline of this process.

    Attributes:
        access: Where access entries go; ``None`` when the access log is off (by setting, or
            because the level is above ``info``).
    """

    def __init__(self, thread: _WriterThread, access: AccessLog | None) -> None:
        self._thread = thread
        self.access = access

    def stop(self) -> None:
        """Write what is queued and stop the writer thread."""
        self._thread.stop()


def start_logs(settings: LogSettings, stream: IO[str] | None = None) -> Logs:
    """Route every log record of this process through a queue to a writer thread.

    Replaces the root logger's handlers, so call it once per process (again in a forked
    worker: the parent's writer thread does not exist there).

    Args:
        settings: Level, format and whether to keep the access log.
        stream: Where lines go (standard error when ``None``).

    Returns:
        The pipeline; call :meth:`Logs.stop` before the process exits.
    """
    level = _LEVELS[settings.level]
    formatter = _JsonFormatter() if settings.format == "json" else _TextFormatter()
    writer = _BatchWriter(stream if stream is not None else sys.stderr, formatter)
    sink: queue.SimpleQueue[Any] = queue.SimpleQueue()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.handlers.QueueHandler(sink))
    root.setLevel(level)
    # uvicorn's and grpc's own info lines repeat ours ("Started server process"), and Alembic's
    # ("Context impl SQLiteImpl") say nothing a user needs; keep their warnings and errors.
    for name in ("uvicorn", "uvicorn.error", "grpc", "alembic"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    thread = _WriterThread(sink, writer)
    thread.start()
    access = AccessLog(sink) if settings.access and level <= logging.INFO else None
    return Logs(thread, access)
