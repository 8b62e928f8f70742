"""Access control for every call: authenticate, rate-limit, authorise, and audit what matters.

Transports hand :meth:`AccessControl.check` the raw credential (the ``Authorization`` value, or a
verified client-certificate subject) and what the call is about (an :class:`Action` and, for
model calls, the model name); they get the caller's :class:`Identity` back or an error whose kind
says 401, 403 or 429. The decisions themselves are the pure functions of :mod:`modelport.security`;
this module only strings them together and sends denials to the audit log.

Hot-path cost: a cached credential is one dictionary lookup; authorisation walks the caller's
grants (a handful of ``fnmatch`` calls on compiled patterns); the rate limiter is one bucket
update. Audit entries are written off the request path by :class:`AuditWriter`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import uuid
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import ModelportError, PermissionDenied, RateLimited, Unauthenticated
from modelport.core.settings import SecuritySettings
from modelport.security.authn import ApiKeyResolver, Authenticator
from modelport.security.identity import ANONYMOUS, Identity, parse_grants
from modelport.security.jwt import JwtVerifier
from modelport.security.ratelimit import RateLimiter
from modelport.security.rbac import Action, authorize, visible

__all__ = [
    "AccessControl",
    "AuditSink",
    "AuditWriter",
    "Caller",
    "build_access_control",
    "new_request_id",
]

log = logging.getLogger("modelport.security")
_HEALTH: Final = Action.HEALTH
"""Read on every call by :meth:`AccessControl.granted`: reading a member off its enum class
costs about 0.08 us on Python 3.11."""

T = TypeVar("T")


def new_request_id() -> str:
    """Return a fresh request id (32 hex digits) for calls that did not send one."""
    return uuid.uuid4().hex


class AuditSink(Protocol):
    """Where audit entries go (the security store appends them to the hash chain)."""

    def append_audit(
        self,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        request_id: str,
        details: dict[str, Any] | None = None,
    ) -> Any:
        """Append one entry."""
        ...


@dataclass(slots=True)
class Caller:
    """What a transport knows about who is calling.

    Args:
        authorization: The ``Authorization`` header (or gRPC ``authorization`` metadata) value.
        peer_subject: The verified client certificate's subject (RFC 4514), with mutual TLS.
        request_id: The caller's ``x-request-id``, if it sent one.

    Not frozen: one is built per request, and a frozen dataclass's ``__init__`` costs about a
    microsecond more (it sets each field through ``object.__setattr__``).
    """

    authorization: str | None = None
    peer_subject: str | None = None
    request_id: str | None = None


class AuditWriter:
    """Appends audit entries from a background thread through a bounded queue.

    Requests never wait for the database: :meth:`record` enqueues and returns. When the queue is
    full (a flood of denied calls) entries are dropped and counted in :attr:`dropped`, and the
    drop is logged, rather than letting an attacker slow every caller down. Control actions,
    which must not be lost, use :meth:`record_now` instead.

    Args:
        sink: The audit log.
        max_queue: Most entries waiting to be written.
    """

    def __init__(self, sink: AuditSink, max_queue: int = 10_000) -> None:
        self._sink = sink
        self._queue: queue.Queue[tuple[str, str, str, str, str, dict[str, Any] | None] | None]
        self._queue = queue.Queue(max_queue)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="modelport-audit", daemon=True)
        self._thread.start()

    def record(
        self,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        request_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Queue one entry; drop it (and count the drop) when the queue is full."""
        try:
            self._queue.put_nowait((actor, action, target, outcome, request_id, details))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("audit queue full: %d denial entries dropped so far", self.dropped)

    def record_now(
        self,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        request_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry synchronously (call it from a worker thread, not the event loop)."""
        self._sink.append_audit(actor, action, target, outcome, request_id, details)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._sink.append_audit(*item)
            except Exception:  # the writer must outlive a database hiccup
                log.exception("cannot append to the audit log")


class AccessControl:
    """Decides whether a call may proceed.

    Args:
        authenticator: Verifies credentials; ``None`` turns authentication off (every caller is
            an anonymous admin: ``--no-auth``).
        limiter: Per-identity rate limits; ``None`` for none.
        audit: Where denials and control actions are recorded; ``None`` records nothing.
        open_probes: Let health and readiness probes through without a credential.
        clock: Time source of the decision cache.
        cache_ttl_s: How long a granted decision (credential, action, name) is reused; ``0``
            turns the cache off. It never outlives the credential's expiry.
        cache_size: Most decisions kept; the cache starts over when it is full.
    """

    def __init__(
        self,
        authenticator: Authenticator | None,
        limiter: RateLimiter | None = None,
        audit: AuditWriter | None = None,
        open_probes: bool = True,
        *,
        clock: Clock | None = None,
        cache_ttl_s: float = 0.0,
        cache_size: int = 10_000,
    ) -> None:
        self.authenticator = authenticator
        self.limiter = limiter
        self.audit = audit
        self.open_probes = open_probes
        self._clock: Clock = clock or SystemClock()
        self._ttl = cache_ttl_s
        self._size = cache_size
        # (authorization, peer subject, action, name) -> (identity, monotonic deadline). Measured
        # on the infer path: a hit costs one tuple lookup where authenticating and authorising
        # again cost several microseconds with cold CPU caches. The header values stay in this
        # process's memory for at most the TTL.
        self._granted: dict[
            tuple[str | None, str | None, Action, str | None], tuple[Identity, float]
        ]
        self._granted = {}

    @property
    def enabled(self) -> bool:
        """Whether callers must authenticate."""
        return self.authenticator is not None

    def check(self, caller: Caller, action: Action, name: str | None = None) -> Identity:
        """Return the caller's identity if it may perform ``action`` on ``name``.

        Args:
            caller: The credential the transport received.
            action: What the call does.
            name: The model (or deployment) the call is about; ``None`` for server-wide calls.

        Raises:
            Unauthenticated: Missing or bad credential (401 / UNAUTHENTICATED).
            PermissionDenied: The identity lacks the role or scope (403 / PERMISSION_DENIED).
            RateLimited: Over the identity's rate limit (429 / RESOURCE_EXHAUSTED).
        """
        if self.authenticator is None or (action is Action.HEALTH and self.open_probes):
            return ANONYMOUS
        if action is Action.HEALTH and name is None:
            # Closed probes: any key may ask whether the server is up, whatever its scope.
            return self.check_listing(caller, action)
        key = (caller.authorization, caller.peer_subject, action, name)
        hit = self._granted.get(key)
        if hit is not None and self._clock.monotonic() < hit[1]:
            identity = hit[0]
            if self.limiter is not None:
                self._limit(identity)
            return identity
        identity = self._authenticate(self.authenticator, caller, action, name)
        try:
            authorize(identity, action, name)
        except PermissionDenied as exc:
            self._deny(identity.subject, action, name, caller, exc)
            raise
        self._remember(key, identity)
        return identity

    async def check_async(
        self, caller: Caller, action: Action, name: str | None = None
    ) -> Identity:
        """Run :meth:`check` without blocking the event loop.

        A cached grant is answered inline; anything else (an API key looked up in the database,
        a JWT whose key set may need fetching) runs in a worker thread, so a slow database or
        identity provider never stalls other requests.

        Raises:
            Unauthenticated: As :meth:`check`.
            PermissionDenied: As :meth:`check`.
            RateLimited: As :meth:`check`.
        """
        identity = self.granted(caller, action, name)
        if identity is not None:
            return identity
        return await asyncio.to_thread(self.check, caller, action, name)

    def granted(self, caller: Caller, action: Action, name: str | None = None) -> Identity | None:
        """:meth:`check`'s answer when it needs no lookup, or ``None`` when it does.

        Answers inline (no coroutine, no thread) when authentication is off, the call is an
        open probe, or the same credential was granted the same action on the same name
        within the decision cache's TTL; the rate limit is applied as :meth:`check` applies it.
        ``None`` means call :meth:`check_async`.

        Raises:
            RateLimited: As :meth:`check`.
        """
        if self.authenticator is None or (action is _HEALTH and self.open_probes):
            return ANONYMOUS
        hit = self._granted.get((caller.authorization, caller.peer_subject, action, name))
        if hit is not None and self._clock.monotonic() < hit[1]:
            identity = hit[0]
            if self.limiter is not None:
                self._limit(identity)
            return identity
        return None

    async def check_listing_async(self, caller: Caller, action: Action) -> Identity:
        """:meth:`check_listing` in a worker thread (listings are rare; the lookup may do I/O)."""
        if self.authenticator is None:
            return ANONYMOUS
        return await asyncio.to_thread(self.check_listing, caller, action)

    def _remember(
        self, key: tuple[str | None, str | None, Action, str | None], identity: Identity
    ) -> None:
        ttl = self._ttl
        if ttl <= 0:
            return
        if identity.expires_at is not None:
            ttl = min(ttl, identity.expires_at - self._clock.now().timestamp())
            if ttl <= 0:
                return
        if len(self._granted) >= self._size:
            self._granted.clear()
        self._granted[key] = (identity, self._clock.monotonic() + ttl)

    def _limit(self, identity: Identity) -> None:
        if self.limiter is None:
            return
        wait = self.limiter.take(identity.subject)
        if wait > 0:
            raise RateLimited(
                f"rate limit exceeded for {identity.subject}; retry in {wait:.2f} s", wait
            )

    def _authenticate(
        self, authenticator: Authenticator, caller: Caller, action: Action, name: str | None
    ) -> Identity:
        try:
            identity = authenticator.authenticate(caller.authorization, caller.peer_subject)
        except Unauthenticated as exc:
            self._deny("unauthenticated", action, name, caller, exc)
            raise
        self._limit(identity)
        return identity

    def check_listing(self, caller: Caller, action: Action) -> Identity:
        """Like :meth:`check` for calls that list models: any grant of the role will do.

        The caller then filters the listing with :meth:`visible`, so a key for ``fraud-*``
        lists fraud models only.
        """
        if self.authenticator is None:
            return ANONYMOUS
        identity = self._authenticate(self.authenticator, caller, action, None)
        if not any(g.role >= action.role for g in identity.grants):
            exc = PermissionDenied(
                f"{identity.subject} may not {action.verb} this server "
                f"(needs {action.role.label} over some model)"
            )
            self._deny(identity.subject, action, None, caller, exc)
            raise exc
        return identity

    async def audited(
        self, identity: Identity, caller: Caller, action: str, target: str, work: Awaitable[T]
    ) -> T:
        """Await a control action and record it in the audit log, whether it worked or not."""
        try:
            result = await work
        except ModelportError as exc:
            details = {"error": exc.message}
            await asyncio.to_thread(
                self.record, identity, action, target, "failed", caller, details
            )
            raise
        await asyncio.to_thread(self.record, identity, action, target, "ok", caller)
        return result

    def close(self) -> None:
        """Write the audit entries still queued."""
        if self.audit is not None:
            self.audit.close()

    def visible(self, identity: Identity, names: Iterable[str]) -> set[str]:
        """Return the names among ``names`` the caller may see (for listings)."""
        if self.authenticator is None:
            return set(names)
        return set(visible(identity, names))

    def record(
        self,
        identity: Identity,
        action: str,
        target: str,
        outcome: str,
        caller: Caller,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record a control action synchronously (call from a worker thread)."""
        if self.audit is not None:
            request_id = caller.request_id or new_request_id()
            self.audit.record_now(identity.subject, action, target, outcome, request_id, details)

    def _deny(
        self,
        actor: str,
        action: Action,
        name: str | None,
        caller: Caller,
        exc: ModelportError,
    ) -> None:
        if self.audit is not None:
            self.audit.record(
                actor,
                f"deny.{action.value}",
                name or "*",
                "denied",
                caller.request_id or new_request_id(),
                {"reason": exc.message},
            )


def build_access_control(
    settings: SecuritySettings,
    api_keys: ApiKeyResolver | None,
    audit: AuditSink | None,
    clock: Clock,
) -> AccessControl:
    """Compose authentication, rate limits, authorisation and audit from settings.

    Args:
        settings: The security settings.
        api_keys: Resolves API keys (the security store); ``None`` accepts no API keys.
        audit: Receives denials and control actions; ``None`` records nothing.
        clock: Time source for token expiry, caches and rate limits.
    """
    auth = settings.auth
    if not auth.enabled:
        return AccessControl(None)
    jwt = JwtVerifier(auth.oidc, clock) if auth.oidc.issuer else None
    mtls = {subject: parse_grants(grants) for subject, grants in auth.mtls_identities.items()}
    authenticator = Authenticator(api_keys, jwt, mtls, clock, auth.cache_ttl_s)
    limits = settings.limits
    limiter = RateLimiter(limits.rate_per_s, limits.burst, clock) if limits.rate_per_s else None
    writer = AuditWriter(audit) if audit is not None else None
    return AccessControl(
        authenticator,
        limiter,
        writer,
        auth.open_probes,
        clock=clock,
        cache_ttl_s=auth.cache_ttl_s,
    )
