"""Keeps worker processes in step: a repository load or unload on one worker reaches them all.

Each worker has a socket pair with the supervisor. A worker that handles a load/unload applies it
itself, then sends ``{"id", "op", "name", "params"}`` up; the supervisor's :class:`Relay` has every
other worker apply it (``{"apply": ...}`` down, ``{"ack": ...}`` up) and answers the origin with
``{"done": id, "error": [kind, message] | null}`` once all have, so the caller's reply means every
worker is in the new state. The relay keeps the log of changes and replays it to a worker that was
restarted. Statistics queries (``op`` ``stats``) travel the same way, but each worker answers
with its own numbers (``{"ack", "result"}``), the origin gets them all in ``"results"``, and they
are not logged for replay. Messages are JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelport.core.errors import ErrorKind, ModelportError, error_for_kind
from modelport.service.dataplane import DataPlane

__all__ = ["ChannelPeers", "Relay"]

log = logging.getLogger("modelport.server")


def _error_fields(exc: BaseException) -> list[str]:
    if isinstance(exc, ModelportError):
        return [exc.kind.value, exc.message]
    return [ErrorKind.INTERNAL.value, f"{type(exc).__name__}: {exc}"]


def _error(fields: list[str] | None) -> ModelportError | None:
    if not fields:
        return None
    return error_for_kind(ErrorKind(fields[0]), fields[1])


class ChannelPeers:
    """A worker's end: tells the other workers about changes and applies theirs.

    Args:
        sock: This worker's end of its socket pair with the supervisor.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._writer: asyncio.StreamWriter | None = None
        self._waiting: dict[int, asyncio.Future[dict[str, Any] | None]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

    async def start(self, dataplane: DataPlane) -> None:
        """Start applying the other workers' changes to ``dataplane``."""
        reader, self._writer = await asyncio.open_unix_connection(sock=self._sock)
        self._task = asyncio.create_task(self._read(reader, dataplane))

    async def stop(self) -> None:
        """Stop listening and fail whatever still waits for an answer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for future in self._waiting.values():
            if not future.done():
                future.set_result(None)
        if self._writer is not None:
            self._writer.close()

    async def broadcast(self, op: str, name: str, parameters: dict[str, object]) -> None:
        """Have every other worker apply ``op`` and wait until they have.

        Raises:
            ModelportError: Another worker failed to apply it.
        """
        await self._ask(op, name, parameters)

    async def gather_statistics(self, name: str | None, version: str | None) -> list[Any]:
        """Return every other worker's statistics for ``name`` (and ``version``).

        Raises:
            ModelportError: Another worker failed to answer.
        """
        return await self._ask("stats", name, {"version": version})

    async def _ask(self, op: str, name: str | None, parameters: dict[str, object]) -> list[Any]:
        if self._writer is None:
            return []
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        message = {"id": request_id, "op": op, "name": name, "params": parameters}
        self._writer.write(orjson.dumps(message) + b"\n")
        await self._writer.drain()
        try:
            answer = await future
        finally:
            self._waiting.pop(request_id, None)
        if answer is None:
            return []
        error = _error(answer.get("error"))
        if error is not None:
            raise error
        results: list[Any] = answer.get("results") or []
        return results

    async def _read(self, reader: asyncio.StreamReader, dataplane: DataPlane) -> None:
        while line := await reader.readline():
            message: dict[str, Any] = orjson.loads(line)
            if "done" in message:
                future = self._waiting.get(message["done"])
                if future is not None and not future.done():
                    future.set_result(message)
                continue
            answer: dict[str, Any] = {"ack": message["apply"], "error": None}
            try:
                if message["op"] == "stats":
                    version = message["params"].get("version")
                    answer["result"] = dataplane.model_statistics(message["name"], version)
                else:
                    await dataplane.apply(message["op"], message["name"], message["params"])
            except Exception as exc:  # reported to the origin, which answers its caller
                answer["error"] = _error_fields(exc)
            if self._writer is not None:
                self._writer.write(orjson.dumps(answer) + b"\n")
                await self._writer.drain()


@dataclass(slots=True)
class _Pending:
    origin: int
    origin_id: int
    waiting: set[int]
    error: list[str] | None = None
    results: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class Relay:
    """The supervisor's side: relays changes between workers (called from its select loop)."""

    channels: dict[int, socket.socket] = field(default_factory=dict)
    buffers: dict[int, bytes] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[int, _Pending] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, pid: int, sock: socket.socket, replay: bool) -> None:
        """Track a worker's channel; a restarted worker first gets every earlier change."""
        self.channels[pid] = sock
        self.buffers[pid] = b""
        if replay:
            for change in self.history:
                self._send(pid, {"apply": 0, **change})

    def remove(self, pid: int) -> None:
        """Forget a worker that exited; changes waiting for it stop waiting."""
        sock = self.channels.pop(pid, None)
        self.buffers.pop(pid, None)
        if sock is not None:
            sock.close()
        for relay_id in [r for r, p in self.pending.items() if pid in p.waiting]:
            self._acknowledged(relay_id, pid, None)

    def pid_of(self, fileno: int) -> int | None:
        """Return the worker whose channel has this file descriptor."""
        return next((p for p, s in self.channels.items() if s.fileno() == fileno), None)

    def receive(self, pid: int) -> None:
        """Read what ``pid`` sent and act on every complete message."""
        sock = self.channels[pid]
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            return
        buffer = self.buffers[pid] + data
        *lines, self.buffers[pid] = buffer.split(b"\n")
        for line in lines:
            message: dict[str, Any] = orjson.loads(line)
            if "ack" in message:
                self._acknowledged(message["ack"], pid, message.get("error"), message)
            else:
                self._relay(pid, message)

    def _relay(self, origin: int, message: dict[str, Any]) -> None:
        change = {"op": message["op"], "name": message["name"], "params": message["params"]}
        if change["op"] != "stats":  # queries change nothing: no replay for new workers
            self.history.append(change)
        relay_id = next(self.ids)
        others = {p for p in self.channels if p != origin}
        self.pending[relay_id] = _Pending(origin, message["id"], others)
        for pid in others:
            self._send(pid, {"apply": relay_id, **change})
        if not others:
            self._finish(relay_id)

    def _acknowledged(
        self,
        relay_id: int,
        pid: int,
        error: list[str] | None,
        message: dict[str, Any] | None = None,
    ) -> None:
        pending = self.pending.get(relay_id)
        if pending is None:
            return
        pending.waiting.discard(pid)
        if message is not None and "result" in message:
            pending.results.append(message["result"])
        if error and pending.error is None:
            pending.error = error
        if not pending.waiting:
            self._finish(relay_id)

    def _finish(self, relay_id: int) -> None:
        pending = self.pending.pop(relay_id)
        if pending.origin in self.channels:
            answer = {"done": pending.origin_id, "error": pending.error, "results": pending.results}
            self._send(pending.origin, answer)

    def _send(self, pid: int, message: dict[str, Any]) -> None:
        try:
            self.channels[pid].sendall(orjson.dumps(message) + b"\n")
        except OSError as exc:
            log.warning("cannot reach worker %d: %s", pid, exc)
