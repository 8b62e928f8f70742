"""Access control for every call: authenticate, rate-limit, authorise, and audit what matters.

Transports call one method, :meth:`AccessControl.admit`, with what they know of the caller (a
:class:`Caller`: the ``Authorization`` value or a verified client-certificate subject, the
request id, the client's address) and what the call is about (an :class:`Action` and, for model
calls, the model name); they get the caller's :class:`Identity` back or an error whose kind says
401, 403 or 429. The decisions themselves are the pure functions of :mod:`modelport.security`;
this module strings them together, in this order:

1. authentication off, or an open probe: the anonymous identity;
2. a decision granted to the same credential for the same action and name within the cache's
   TTL: that identity, after the identity's rate limit (answered without a thread or a lookup);
3. otherwise, in a worker thread: the client address's rate limit on authentication attempts
   (so floods of bad credentials are refused before they are checked or audited one by one),
   authentication, the identity's rate limit, authorisation.

Denials go to the audit log through :class:`AuditWriter`, off the request path, with repeated
identical denials counted into one entry. Control actions go through :meth:`AccessControl.audited`,
which writes the entry *before* the action runs: an action whose entry cannot be written is not
performed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol, TypeVar

import orjson

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import (
    InvalidInput,
    ModelportError,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
)
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
    "audit_text",
    "build_access_control",
    "new_request_id",
    "request_id",
    "run_audited",
]

log = logging.getLogger("modelport.security")
_HEALTH: Final = Action.HEALTH
_METRICS: Final = Action.METRICS
"""Enum members compared on every call, as module constants (bench/HOT_PATH.md)."""

MAX_REQUEST_ID: Final = 128
"""Longest accepted request id."""
_AUDIT_TEXT_MAX: Final = 256
"""Longest caller-supplied text (a model name) written into an audit entry as it is."""

T = TypeVar("T")


def new_request_id() -> str:
    """Return a fresh request id (32 hex digits) for calls that did not send one.

    A random 64-bit prefix drawn once per process (and again in a forked child) and a counter:
    unique across processes like a random UUID, without reading the system's random source on
    every request (a system call each, which the gateway pays per request).
    """
    return f"{_ID_PREFIX[0]}{next(_ID_COUNTER[0]):016x}"


_ID_PREFIX: list[str] = [secrets.token_hex(8)]
_ID_COUNTER: list[itertools.count[int]] = [itertools.count()]


def _new_id_prefix() -> None:
    _ID_PREFIX[0] = secrets.token_hex(8)
    _ID_COUNTER[0] = itertools.count()


os.register_at_fork(after_in_child=_new_id_prefix)


def request_id(value: str) -> str:
    """Return a caller's request id (``x-request-id``) after checking it.

    A request id is written into the audit log and echoed in logs, so it must be text a reader
    can trust: 1 to 128 visible ASCII characters (no spaces or control characters).

    Raises:
        InvalidInput: Anything else (the call is refused before anything is done).
    """
    if 0 < len(value) <= MAX_REQUEST_ID and value.isascii() and value.isprintable():
        if " " not in value:
            return value
    shown = repr(value[:40]) + ("..." if len(value) > 40 else "")
    raise InvalidInput(
        f"x-request-id must be 1 to {MAX_REQUEST_ID} visible ASCII characters without spaces "
        f"(a UUID, say), got {shown} ({len(value)} characters)"
    )


def audit_text(value: str) -> str:
    """Return caller-supplied text (a model name, a token's subject) as the audit log stores it.

    Text of at most 256 printable characters, not blank, is kept as it is; anything else is
    written as its Python ``repr`` (control characters escaped), cut to 256 characters with the
    full length named, so no caller can make an audit entry fail to write.
    """
    if value.strip() and len(value) <= _AUDIT_TEXT_MAX and value.isprintable():
        return value
    text = repr(value[:_AUDIT_TEXT_MAX])
    if len(value) > _AUDIT_TEXT_MAX:
        text += f"... ({len(value)} characters)"
    return text


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


def run_audited(
    audit: AuditSink | None,
    actor: str,
    action: str,
    target: str,
    work: Callable[[], tuple[T, dict[str, Any] | None]],
    request_id: str | None = None,
) -> T:
    """Run a control action between its ``started`` audit entry and its outcome.

    ``work`` returns its result and the details the ``ok`` entry records (a generation, the
    changed fields). An action whose ``started`` entry cannot be written is not performed: the
    audit log's error is raised instead. A failure is recorded with its message (``failed``)
    and then raised as it was: if the failure cannot be recorded either, the action's own error
    is still what the caller sees, with the audit error in a note. ``audit`` ``None`` records
    nothing.

    Args:
        audit: Where the entries go.
        actor: Who acts.
        action: What is done (``deployment.apply``).
        target: What it is done to, already safe for the log (:func:`audit_text`).
        work: The action.
        request_id: The request the entries belong to; a fresh one by default.
    """
    if audit is None:
        return work()[0]
    request_id = request_id or new_request_id()
    audit.append_audit(actor, action, target, "started", request_id, None)
    try:
        result, details = work()
    except Exception as exc:
        message = exc.message if isinstance(exc, ModelportError) else f"internal error: {exc!r}"
        try:
            audit.append_audit(actor, action, target, "failed", request_id, {"error": message})
        except ModelportError as audit_error:
            exc.add_note(f"the failure could not be audited: {audit_error.message}")
        raise
    audit.append_audit(actor, action, target, "ok", request_id, details)
    return result


@dataclass(slots=True)
class Caller:
    """What a transport knows about who is calling.

    Args:
        authorization: The ``Authorization`` header (or gRPC ``authorization`` metadata) value.
        peer_subject: The verified client certificate's subject (RFC 4514), with mutual TLS.
        request_id: The caller's ``x-request-id``, checked by :func:`request_id`, if it sent one.
        address: The client's network address (IP), for limits before authentication.

    Not frozen: one is built per request, and a frozen dataclass's ``__init__`` is slower.
    """

    authorization: str | None = None
    peer_subject: str | None = None
    request_id: str | None = None
    address: str | None = None


@dataclass(slots=True)
class _Repeats:
    """Identical denials seen since the first one of a window was written."""

    entry: tuple[str, str, str, str, str, dict[str, Any] | None]
    until: float
    count: int = 0
    last_request_id: str = field(default="")


_Entry = tuple[str, str, str, str, str, dict[str, Any] | None]


class AuditWriter:
    """Appends denial entries from a background thread, counting repeats instead of writing them.

    Requests never wait for the database: :meth:`record` enqueues and returns. The first of a
    run of identical denials (same actor, action, target and details: reason and client address)
    is written at once; the repeats within ``window_s`` after it are counted and written as one
    entry with ``details.repeated`` (how many) and ``details.last_request_id`` when the window
    ends. When the queue is full, or too many different denials are being counted at once,
    entries are dropped and counted in :attr:`dropped`, and the drop is logged, rather than
    letting an attacker slow every caller down or fill the disk. Control actions, which must not
    be lost, use :meth:`record_now` instead.

    Args:
        sink: The audit log.
        clock: Time source of the counting windows.
        max_queue: Most entries waiting to be written.
        window_s: How long repeats of a denial are counted into one entry.
        max_counted: Most different denials counted at once.
    """

    def __init__(
        self,
        sink: AuditSink,
        clock: Clock | None = None,
        *,
        max_queue: int = 10_000,
        window_s: float = 10.0,
        max_counted: int = 10_000,
    ) -> None:
        self._sink = sink
        self._clock: Clock = clock or SystemClock()
        self._queue: queue.Queue[_Entry | Callable[[], None] | None] = queue.Queue(max_queue)
        self._window = window_s
        self._max_counted = max_counted
        self._repeats: dict[bytes, _Repeats] = {}
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
            self._drop()

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

    def flush(self, timeout: float = 5.0) -> None:
        """Write what is queued and every count still open, and wait until that is done."""
        done = threading.Event()

        def flushed() -> None:
            self._write_repeats(closing=True)
            done.set()

        self._queue.put(flushed)
        done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and every count still open, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _drop(self) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("audit: %d denial entries dropped so far (queue full)", self.dropped)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._next_deadline())
            except queue.Empty:
                self._write_repeats(closing=False)
                continue
            if item is None:
                self._write_repeats(closing=True)
                return
            if callable(item):
                item()
                continue
            self._take(item)
            self._write_repeats(closing=False)

    def _next_deadline(self) -> float | None:
        if not self._repeats:
            return None
        soonest = min(r.until for r in self._repeats.values())
        return max(0.0, soonest - self._clock.monotonic())

    def _take(self, entry: _Entry) -> None:
        actor, action, target, outcome, rid, details = entry
        key = orjson.dumps([actor, action, target, outcome, details], option=orjson.OPT_SORT_KEYS)
        repeats = self._repeats.get(key)
        if repeats is not None:
            repeats.count += 1
            repeats.last_request_id = rid
            return
        if len(self._repeats) >= self._max_counted:
            self._drop()
            return
        self._repeats[key] = _Repeats(entry, self._clock.monotonic() + self._window)
        self._append(entry)

    def _write_repeats(self, *, closing: bool) -> None:
        now = self._clock.monotonic()
        for key, repeats in list(self._repeats.items()):
            if not closing and repeats.until > now:
                continue
            del self._repeats[key]
            if repeats.count:
                actor, action, target, outcome, _, details = repeats.entry
                counted = {
                    **(details or {}),
                    "repeated": repeats.count,
                    "window_s": self._window,
                    "last_request_id": repeats.last_request_id,
                }
                self._append((actor, action, target, outcome, repeats.last_request_id, counted))

    def _append(self, entry: _Entry) -> None:
        try:
            self._sink.append_audit(*entry)
        except Exception:  # the writer must outlive a database hiccup
            log.exception("cannot append to the audit log")


_GrantKey = tuple[str | None, str | None, Action, str | None, bool]
"""(authorization, peer subject, action, name, listing): what a cached decision is about."""


class _Grant(NamedTuple):
    """A cached decision: who the caller is, until when (monotonic seconds) it holds."""

    identity: Identity
    until: float


class AccessControl:
    """Decides whether a call may proceed.

    Args:
        authenticator: Verifies credentials; ``None`` turns authentication off (every caller is
            an anonymous admin: ``--no-auth``).
        limiter: Per-identity rate limits; ``None`` for none.
        audit: Where denials and control actions are recorded; ``None`` records nothing.
        open_probes: Let health and readiness probes through without a credential.
        open_metrics: Let ``/metrics`` through without a credential.
        peer_limiter: Rate limit of authentication attempts per client address; ``None`` for
            none.
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
        open_metrics: bool = False,
        peer_limiter: RateLimiter | None = None,
        clock: Clock | None = None,
        cache_ttl_s: float = 0.0,
        cache_size: int = 10_000,
    ) -> None:
        self.authenticator = authenticator
        self.limiter = limiter
        self.peer_limiter = peer_limiter
        self.audit = audit
        self.open_probes = open_probes
        self.open_metrics = open_metrics
        self._clock: Clock = clock or SystemClock()
        self._ttl = cache_ttl_s
        self._size = cache_size
        # The header values stay in this process's memory for at most the TTL.
        self._granted: dict[_GrantKey, _Grant] = {}

    @property
    def enabled(self) -> bool:
        """Whether callers must authenticate."""
        return self.authenticator is not None

    async def admit(
        self, caller: Caller, action: Action, name: str | None = None, *, listing: bool = False
    ) -> Identity:
        """Return the caller's identity if it may perform ``action``.

        This is the one authorisation entry point of every transport. A decision the cache
        holds is answered inline; anything else (an API key looked up in the database, a JWT
        whose key set may need fetching) runs in a worker thread, so a slow database or
        identity provider never stalls other requests.

        Args:
            caller: What the transport knows of the caller.
            action: What the call does.
            name: The model the call is about; ``None`` for server-wide calls and listings.
            listing: The call lists models: any grant of the action's role will do, and the
                caller filters the answer with :meth:`visible`.

        Raises:
            Unauthenticated: Missing or bad credential (401 / UNAUTHENTICATED).
            PermissionDenied: The identity lacks the role or scope (403 / PERMISSION_DENIED).
            RateLimited: Over the identity's or the client address's rate limit (429 /
                RESOURCE_EXHAUSTED).
        """
        identity = self._cached(caller, action, name, listing)
        if identity is not None:
            return identity
        return await asyncio.to_thread(self.check, caller, action, name, listing=listing)

    def check(
        self, caller: Caller, action: Action, name: str | None = None, *, listing: bool = False
    ) -> Identity:
        """:meth:`admit`, synchronously (it may query the database: not on the event loop).

        Raises:
            Unauthenticated: As :meth:`admit`.
            PermissionDenied: As :meth:`admit`.
            RateLimited: As :meth:`admit`.
        """
        identity = self._cached(caller, action, name, listing)
        authenticator = self.authenticator
        if identity is not None or authenticator is None:  # no authenticator: _cached answered
            return identity or ANONYMOUS
        if action is _HEALTH and name is None:
            listing = True  # closed probes: any key may ask whether the server is up
        identity = self._authenticate(authenticator, caller, action, name)
        try:
            if listing:
                self._authorize_listing(identity, action)
            else:
                authorize(identity, action, name)
        except PermissionDenied as exc:
            self._deny(identity.subject, action, name, caller, exc.message)
            raise
        key = (caller.authorization, caller.peer_subject, action, name, listing)
        self._remember(key, identity)
        return identity

    def _cached(
        self, caller: Caller, action: Action, name: str | None, listing: bool
    ) -> Identity | None:
        """The decision when it needs no lookup (after the identity's rate limit), else ``None``.

        Raises:
            RateLimited: The identity is over its rate limit.
        """
        if (
            self.authenticator is None
            or (action is _HEALTH and self.open_probes)
            or (action is _METRICS and self.open_metrics)
        ):
            return ANONYMOUS
        hit = self._granted.get((caller.authorization, caller.peer_subject, action, name, listing))
        if hit is None or self._clock.monotonic() >= hit.until:
            return None
        identity = hit.identity
        if self.limiter is not None:
            self._limit(identity)
        return identity

    def _remember(self, key: _GrantKey, identity: Identity) -> None:
        ttl = self._ttl
        if ttl <= 0:
            return
        if identity.expires_at is not None:
            ttl = min(ttl, identity.expires_at - self._clock.now().timestamp())
            if ttl <= 0:
                return
        if len(self._granted) >= self._size:
            self._granted.clear()
        self._granted[key] = _Grant(identity, self._clock.monotonic() + ttl)

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
        if self.peer_limiter is not None and caller.address is not None:
            wait = self.peer_limiter.take(caller.address)
            if wait > 0:
                # The audited reason leaves the wait out, so repeats are counted, not written.
                reason = f"too many authentication attempts from {caller.address}"
                self._deny("unauthenticated", action, name, caller, reason)
                raise RateLimited(f"{reason}; retry in {wait:.2f} s", wait)
        try:
            identity = authenticator.authenticate(caller.authorization, caller.peer_subject)
        except Unauthenticated as exc:
            self._deny("unauthenticated", action, name, caller, exc.message)
            raise
        self._limit(identity)
        return identity

    @staticmethod
    def _authorize_listing(identity: Identity, action: Action) -> None:
        """Refuse unless some grant of ``identity`` has ``action``'s role (over any names)."""
        if not any(g.role >= action.role for g in identity.grants):
            raise PermissionDenied(
                f"{identity.subject} may not {action.verb} this server "
                f"(needs {action.role.label} over some model)"
            )

    async def audited(
        self, identity: Identity, caller: Caller, action: str, target: str, work: Awaitable[T]
    ) -> T:
        """Run a control action with its audit entries: ``started`` before it, then the outcome.

        Args:
            identity: Who acts.
            caller: The call (its request id goes into the entries).
            action: The audit action (``model.load``).
            target: What it acts on (a model name).
            work: The action, not yet awaited.

        Raises:
            ServiceUnavailable: The ``started`` entry cannot be written; the action was not
                performed.
            ModelportError: The action's own error, after its ``failed`` entry was written.
        """
        rid = caller.request_id or new_request_id()
        target = audit_text(target)
        try:
            await asyncio.to_thread(self._record, identity, action, target, "started", rid)
        except Exception as exc:
            if asyncio.iscoroutine(work):
                work.close()  # never awaited: the action does not run
            log.error("audit log not writable, %s on %s refused: %s", action, target, exc)
            raise ServiceUnavailable(
                f"the audit log cannot be written, so {action} was not performed; retry later"
            ) from None
        try:
            result = await work
        except ModelportError as exc:
            details = {"error": exc.message}
            await self._finish(identity, action, target, "failed", rid, details)
            raise
        await self._finish(identity, action, target, "ok", rid, None)
        return result

    async def _finish(
        self,
        identity: Identity,
        action: str,
        target: str,
        outcome: str,
        rid: str,
        details: dict[str, Any] | None,
    ) -> None:
        try:
            await asyncio.to_thread(self._record, identity, action, target, outcome, rid, details)
        except Exception:  # the action ran and its "started" entry is in the log
            log.exception("cannot write the outcome of %s on %s to the audit log", action, target)

    def _record(
        self,
        identity: Identity,
        action: str,
        target: str,
        outcome: str,
        rid: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        if self.audit is not None:
            actor = audit_text(identity.subject)
            self.audit.record_now(actor, action, target, outcome, rid, details)

    def close(self) -> None:
        """Write the audit entries still queued."""
        if self.audit is not None:
            self.audit.close()

    def visible(self, identity: Identity, names: Iterable[str]) -> set[str]:
        """Return the names among ``names`` the caller may see (for listings)."""
        if self.authenticator is None:
            return set(names)
        return set(visible(identity, names))

    def _deny(
        self,
        actor: str,
        action: Action,
        name: str | None,
        caller: Caller,
        reason: str,
    ) -> None:
        if self.audit is None:
            return
        details: dict[str, Any] = {"reason": reason}
        if caller.address is not None:
            details["client"] = caller.address
        self.audit.record(
            audit_text(actor),
            f"deny.{action.value}",
            "*" if name is None else audit_text(name),
            "denied",
            caller.request_id or new_request_id(),
            details,
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
    peer_limiter = (
        RateLimiter(limits.peer_rate_per_s, limits.peer_burst, clock)
        if limits.peer_rate_per_s
        else None
    )
    writer = AuditWriter(audit, clock) if audit is not None else None
    return AccessControl(
        authenticator,
        limiter,
        writer,
        auth.open_probes,
        open_metrics=auth.open_metrics,
        peer_limiter=peer_limiter,
        clock=clock,
        cache_ttl_s=auth.cache_ttl_s,
    )
