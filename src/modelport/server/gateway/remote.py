"""The remote backend of ``modelport gateway``: variants served by ``modelport serve`` replicas.

A request's REST body goes to one replica as it came (JSON, or JSON and binary tensors), to
``/v2/models/{model}/versions/{version}/infer``; the replica pool (:mod:`.upstream`) picks the
replica, keeps the connections alive, checks health and opens circuits. The answer comes back
as sent, with one change: its ``model_name`` becomes the deployment's (a byte-level rewrite of
the answer's first field, which the model server writes first; any other answer is re-encoded).
A replica's 4xx answer is passed through as it is. With tracing on, the call is a ``forward``
span whose W3C ``traceparent`` goes with the request (:mod:`modelport.server.tracing`).

:class:`Backends` gives each deployment its backend: the in-process one (``modelport up``) for
a deployment without ``spec.replicas``, else one pool per distinct replica list, shared by the
deployments that list the same replicas.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import orjson

from modelport.core.deployment import Deployment
from modelport.core.errors import (
    ConfigError,
    ErrorKind,
    ModelportError,
    ServiceUnavailable,
    error_for_kind,
)
from modelport.core.settings import GatewaySettings
from modelport.server.gateway.local import LocalBackend
from modelport.server.gateway.upstream import ReplicaPool
from modelport.server.rest.errors import STATUS_BY_KIND
from modelport.server.tracing import current
from modelport.service.gateway import Answer, Backend, Call

if TYPE_CHECKING:
    from modelport.server._otel import Tracing

__all__ = ["Backends", "RemoteBackend", "error_for_status"]

_JSON: Final = "application/json"
_BINARY: Final = "application/octet-stream"
_NAME_FIELD: Final = b'{"model_name":'


class RemoteBackend:
    """Variants served by a pool of replicas.

    Args:
        pool: The replicas.
        pass_credentials: Pass the caller's ``Authorization`` on (the gateway has no key of
            its own for the replicas).
        tracing: Trace each forwarded request; ``None``: off.
    """

    def __init__(
        self, pool: ReplicaPool, pass_credentials: bool, tracing: Tracing | None = None
    ) -> None:
        self.pool = pool
        self.started = False
        self._pass = pass_credentials
        self._tracing = tracing

    def prepare(self, model: str, version: str) -> None:
        """Nothing to do: the replicas serve their versions (checked when it was applied)."""

    async def start(self) -> None:
        """Open the pool's connections and start its health checks."""
        self.started = True
        await self.pool.start()

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()

    async def infer(self, model: str, version: str, call: Call) -> Answer:
        """Forward ``call`` to a replica; its answer names the deployment.

        A replica's answer with another status than 200 is returned as it is, its ``error`` the
        kind the status stands for (``unavailable`` for a 5xx or an unknown status). The model's
        CPU time is not known here (``cpu_ms`` is ``None``).
        """
        headers = {"x-request-id": call.request_id}
        if call.header_length is None:
            headers["content-type"] = _JSON
        else:
            headers["content-type"] = _BINARY
            headers["inference-header-content-length"] = str(call.header_length)
        if self._pass and call.authorization is not None:
            headers["authorization"] = call.authorization
        path = _path(model, version, "/infer")
        tracing = self._tracing
        if tracing is None:
            reply = await self.pool.post(path, call.body, headers)
        else:
            send = functools.partial(self.pool.post, path, call.body)
            reply = await tracing.forward(send, headers, model, version)
        if reply.status != 200:
            kind = _KIND_BY_STATUS.get(reply.status, ErrorKind.UNAVAILABLE)
            return Answer(reply.status, reply.body, None, None, kind.value)
        length = reply.headers.get("inference-header-content-length")
        json_length = int(length) if length is not None else None
        body, json_length = _renamed(reply.body, json_length, model, call.deployment)
        return Answer(200, body, json_length, version)

    async def metadata(self, model: str, version: str, call: Call) -> dict[str, Any]:
        """The version's metadata, as a replica reports it."""
        reply = await self.pool.get(_path(model, version, ""), self._auth(call))
        if reply.status != 200:
            raise error_for_status(reply.status, reply.body, reply.replica)
        document: dict[str, Any] = orjson.loads(reply.body)
        return document

    async def model_ready(self, model: str, version: str, call: Call) -> bool:
        """Whether a replica has the version ready."""
        reply = await self.pool.get(_path(model, version, "/ready"), self._auth(call))
        if reply.status not in (200, 503):
            raise error_for_status(reply.status, reply.body, reply.replica)
        return reply.status == 200

    def ready(self) -> bool:
        """Whether some replica is healthy with its circuit closed."""
        return self.pool.ready()

    def _auth(self, call: Call) -> dict[str, str]:
        if not self._pass or call.authorization is None:
            return {}
        return {"authorization": call.authorization}


def _path(model: str, version: str, suffix: str) -> str:
    return f"/v2/models/{quote(model, safe='')}/versions/{quote(version, safe='')}{suffix}"


def _renamed(
    body: bytes, json_length: int | None, model: str, deployment: str
) -> tuple[bytes, int | None]:
    """``body`` with its ``model_name`` set to ``deployment`` (and the header length moved)."""
    if model == deployment:
        return body, json_length
    served = _NAME_FIELD + orjson.dumps(model)
    public = _NAME_FIELD + orjson.dumps(deployment)
    if body.startswith(served) and body[len(served) : len(served) + 1] in (b",", b"}"):
        renamed = public + body[len(served) :]
    else:
        end = len(body) if json_length is None else json_length
        document = orjson.loads(body[:end])
        document["model_name"] = deployment
        head = orjson.dumps(document)
        renamed = head + body[end:]
    if json_length is not None:
        json_length += len(renamed) - len(body)
    return renamed, json_length


_KIND_BY_STATUS: Final[Mapping[int, ErrorKind]] = {
    status: kind for kind, status in reversed(STATUS_BY_KIND.items()) if status < 500
}
"""A replica's client-error status back to the kind that made it (the first listed wins)."""


def error_for_status(status: int, body: bytes, replica: str) -> ModelportError:
    """The error a replica's non-200 answer stands for, with its message.

    A status without a client-error meaning (5xx, or anything unexpected) is the replica's
    failure: :class:`ServiceUnavailable` naming the replica.
    """
    try:
        message = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        message = None
    text = message if isinstance(message, str) else body[:200].decode("utf-8", "replace")
    kind = _KIND_BY_STATUS.get(status)
    if kind is not None:
        return error_for_kind(kind, text)
    return ServiceUnavailable(f"replica {replica} answered {status}: {text}")


class Backends:
    """The backend of each deployment: in-process, or a pool per distinct replica list.

    Args:
        settings: Timeouts, health checks and circuit breaking of the pools.
        local: The in-process backend (``modelport up``); ``None`` in a gateway, which then
            refuses deployments without replicas.
    """

    def __init__(self, settings: GatewaySettings, local: LocalBackend | None = None) -> None:
        self._settings = settings
        self._local = local
        self._pools: dict[tuple[tuple[str, ...], str | None], RemoteBackend] = {}
        self._tracing = current()  # this process's, set up before the worker builds anything
        key = settings.upstream_key
        self._headers = {} if key is None else {"authorization": f"Bearer {key.get_secret_value()}"}

    def backend(self, deployment: Deployment) -> Backend:
        """The backend of ``deployment`` (a new pool is started by :meth:`retain`).

        Raises:
            ConfigError: It lists no replicas and this process serves nothing in-process.
        """
        replicas = deployment.spec.replicas
        if replicas is None:
            if self._local is None:
                raise ConfigError(
                    f"deployment {deployment.name!r} lists no replicas (spec.replicas.urls or "
                    "spec.replicas.dns): a gateway forwards to model servers; list them, or "
                    "serve the deployment in-process with modelport up"
                )
            return self._local
        key = (tuple(replicas.urls), replicas.dns)
        backend = self._pools.get(key)
        if backend is None:
            pool = ReplicaPool(
                deployment.name,
                urls=replicas.urls,
                dns=replicas.dns,
                settings=self._settings,
                headers=self._headers,
            )
            backend = self._pools[key] = RemoteBackend(
                pool, pass_credentials=not self._headers, tracing=self._tracing
            )
        return backend

    async def retain(self, used: Iterable[Backend]) -> None:
        """Start the pools in ``used`` that are new and close the others.

        With none used (the gateway stops), the in-process backend's leftovers are closed too.
        """
        kept = set(used)
        for key, backend in list(self._pools.items()):
            if backend not in kept:
                del self._pools[key]
                await backend.close()
            elif not backend.started:
                await backend.start()
        if not kept and self._local is not None:
            await self._local.close()
