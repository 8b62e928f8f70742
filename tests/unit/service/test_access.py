"""Access control: authenticate, rate-limit, authorise, cache granted decisions, audit denials."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from modelport.core.errors import NotFound, PermissionDenied, RateLimited, Unauthenticated
from modelport.security.authn import Authenticator
from modelport.security.identity import ANONYMOUS, AuthMethod, Identity, parse_grants
from modelport.security.ratelimit import RateLimiter
from modelport.security.rbac import Action
from modelport.service.access import AccessControl, AuditWriter, Caller
from tests.unit.security._clock import FakeClock

PREDICTOR = "mpk_predictor"
SCOPED = "mpk_scoped"
VIEWER = "mpk_viewer"


class Keys:
    """Resolves three fixed keys; counts calls; can revoke."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls = 0
        self.revoked: set[str] = set()

    def resolve_api_key(self, token: str) -> Identity:
        self.calls += 1
        if token in self.revoked:
            raise Unauthenticated("API key revoked")
        grants = {PREDICTOR: ["predictor"], SCOPED: ["predictor:fraud-*"], VIEWER: ["viewer"]}
        if token not in grants:
            raise Unauthenticated("invalid API key")
        return Identity(f"key:{token[4:]}", parse_grants(grants[token]), AuthMethod.API_KEY)


class Sink:
    """An audit log in memory."""

    def __init__(self) -> None:
        self.entries: list[tuple[Any, ...]] = []
        self.written = threading.Event()

    def append_audit(self, *entry: Any) -> None:
        self.entries.append(entry)
        self.written.set()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keys(clock: FakeClock) -> Keys:
    return Keys(clock)


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def access(keys: Keys, clock: FakeClock, sink: Sink) -> AccessControl:
    authn = Authenticator(keys, None, {}, clock, 0.0)  # only the decision cache below
    return AccessControl(authn, None, AuditWriter(sink), clock=clock, cache_ttl_s=5.0)


def bearer(token: str) -> Caller:
    return Caller(f"Bearer {token}", None, "req-1")


def test_off_means_everyone_is_an_anonymous_admin() -> None:
    access = AccessControl(None)
    assert access.check(Caller(), Action.INFER, "anything") is ANONYMOUS
    assert access.check_listing(Caller(), Action.MANAGE) is ANONYMOUS
    assert access.visible(ANONYMOUS, ["a", "b"]) == {"a", "b"}
    assert not access.enabled


def test_open_probes_need_no_credential_unless_closed(keys: Keys, clock: FakeClock) -> None:
    authn = Authenticator(keys, None, {}, clock, 0.0)
    assert AccessControl(authn).check(Caller(), Action.HEALTH) is ANONYMOUS
    closed = AccessControl(authn, open_probes=False)
    with pytest.raises(Unauthenticated):
        closed.check(Caller(), Action.HEALTH)
    # Any grant may ask whether the server is up, whatever its scope.
    assert closed.check(bearer(SCOPED), Action.HEALTH).subject == "key:scoped"


def test_a_granted_decision_is_cached_until_the_ttl(
    access: AccessControl, keys: Keys, clock: FakeClock
) -> None:
    for _ in range(3):
        assert access.check(bearer(PREDICTOR), Action.INFER, "iris").subject == "key:predictor"
    assert keys.calls == 1
    keys.revoked.add(PREDICTOR)
    clock.advance(4.9)
    access.check(bearer(PREDICTOR), Action.INFER, "iris")  # still within the TTL
    clock.advance(0.2)
    with pytest.raises(Unauthenticated, match="revoked"):
        access.check(bearer(PREDICTOR), Action.INFER, "iris")


def test_the_cache_never_outlives_the_credential(keys: Keys, clock: FakeClock) -> None:
    class Expiring(Keys):
        def resolve_api_key(self, token: str) -> Identity:
            self.calls += 1
            grants = parse_grants(["predictor"])
            return Identity("key:e", grants, AuthMethod.API_KEY, expires_at=self.clock.t + 1)

    expiring = Expiring(clock)
    authn = Authenticator(expiring, None, {}, clock, 0.0)
    access = AccessControl(authn, clock=clock, cache_ttl_s=60.0)
    access.check(bearer(PREDICTOR), Action.INFER, "iris")
    access.check(bearer(PREDICTOR), Action.INFER, "iris")
    assert expiring.calls == 1
    clock.advance(1.5)
    access.check(bearer(PREDICTOR), Action.INFER, "iris")
    assert expiring.calls == 2


def test_denials_are_not_cached_and_are_audited(
    access: AccessControl, keys: Keys, sink: Sink
) -> None:
    for _ in range(2):
        with pytest.raises(PermissionDenied, match="may not infer on model 'credit-1'"):
            access.check(bearer(SCOPED), Action.INFER, "credit-1")
    assert keys.calls == 2
    with pytest.raises(Unauthenticated):
        access.check(bearer("mpk_unknown"), Action.INFER, "credit-1")
    assert access.audit is not None
    access.audit.close()
    actors = [(e[0], e[1], e[2], e[3], e[4]) for e in sink.entries]
    assert actors == [
        ("key:scoped", "deny.infer", "credit-1", "denied", "req-1"),
        ("key:scoped", "deny.infer", "credit-1", "denied", "req-1"),
        ("unauthenticated", "deny.infer", "credit-1", "denied", "req-1"),
    ]


def test_the_decision_depends_on_action_and_name(access: AccessControl) -> None:
    access.check(bearer(SCOPED), Action.INFER, "fraud-1")
    with pytest.raises(PermissionDenied):
        access.check(bearer(SCOPED), Action.MANAGE, "fraud-1")
    with pytest.raises(PermissionDenied):
        access.check(bearer(SCOPED), Action.INFER, "fraud")


def test_listings_need_the_role_on_some_pattern_and_are_filtered(access: AccessControl) -> None:
    identity = access.check_listing(bearer(SCOPED), Action.METADATA)
    assert access.visible(identity, ["fraud-1", "credit-1", "fraud-2"]) == {"fraud-1", "fraud-2"}
    with pytest.raises(PermissionDenied, match="may not manage this server"):
        access.check_listing(bearer(VIEWER), Action.MANAGE)


def test_rate_limits_apply_on_cached_decisions_too(keys: Keys, clock: FakeClock) -> None:
    authn = Authenticator(keys, None, {}, clock, 0.0)
    limiter = RateLimiter(1.0, 2, clock)
    access = AccessControl(authn, limiter, clock=clock, cache_ttl_s=60.0)
    access.check(bearer(PREDICTOR), Action.INFER, "iris")
    access.check(bearer(PREDICTOR), Action.INFER, "iris")
    with pytest.raises(RateLimited) as caught:
        access.check(bearer(PREDICTOR), Action.INFER, "iris")
    assert caught.value.retry_after == pytest.approx(1.0)
    clock.advance(1.0)
    access.check(bearer(PREDICTOR), Action.INFER, "iris")


def test_control_actions_are_recorded_with_their_outcome(access: AccessControl, sink: Sink) -> None:
    identity = access.check(bearer(PREDICTOR), Action.INFER, "iris")

    async def ok() -> str:
        return "done"

    async def fails() -> None:
        raise NotFound("no model 'x'")

    async def run() -> None:
        assert await access.audited(identity, bearer(PREDICTOR), "model.load", "x", ok()) == "done"
        with pytest.raises(NotFound):
            await access.audited(identity, bearer(PREDICTOR), "model.unload", "x", fails())

    asyncio.run(run())
    entries = [(e[0], e[1], e[2], e[3], e[5]) for e in sink.entries]
    assert entries == [
        ("key:predictor", "model.load", "x", "ok", None),
        ("key:predictor", "model.unload", "x", "failed", {"error": "no model 'x'"}),
    ]


def test_a_full_audit_queue_drops_and_counts(clock: FakeClock) -> None:
    gate = threading.Event()

    class Slow(Sink):
        def append_audit(self, *entry: Any) -> None:
            gate.wait(5)
            super().append_audit(*entry)

    writer = AuditWriter(Slow(), max_queue=2)
    for i in range(10):
        writer.record("a", "deny.infer", str(i), "denied", "r")
    assert writer.dropped >= 7
    gate.set()
    writer.close()


def test_cache_misses_run_off_the_event_loop(clock: FakeClock) -> None:
    threads: list[int] = []

    class Recording(Keys):
        def resolve_api_key(self, token: str) -> Identity:
            threads.append(threading.get_ident())
            return super().resolve_api_key(token)

    authn = Authenticator(Recording(clock), None, {}, clock, 0.0)
    access = AccessControl(authn, clock=clock, cache_ttl_s=5.0)

    async def run() -> None:
        loop_thread = threading.get_ident()
        first = await access.check_async(bearer(PREDICTOR), Action.INFER, "iris")
        second = await access.check_async(bearer(PREDICTOR), Action.INFER, "iris")
        assert first is second
        assert threads and threads[0] != loop_thread  # the database lookup ran in a thread
        with pytest.raises(PermissionDenied):
            await access.check_async(bearer(VIEWER), Action.INFER, "iris")
        listing = await access.check_listing_async(bearer(SCOPED), Action.METADATA)
        assert listing.subject == "key:scoped"

    asyncio.run(run())
    assert len(threads) == 3  # the cached grant did not look the key up again


def test_granted_answers_only_what_needs_no_lookup(keys: Keys, clock: FakeClock) -> None:
    assert AccessControl(None).granted(Caller(), Action.MANAGE, "x") is ANONYMOUS
    authn = Authenticator(keys, None, {}, clock, 0.0)
    limiter = RateLimiter(1.0, 2, clock)
    access = AccessControl(authn, limiter, clock=clock, cache_ttl_s=5.0)
    assert access.granted(Caller(), Action.HEALTH) is ANONYMOUS  # an open probe
    assert access.granted(bearer(PREDICTOR), Action.INFER, "iris") is None  # not yet looked up
    assert keys.calls == 0
    identity = access.check(bearer(PREDICTOR), Action.INFER, "iris")  # takes a token
    assert access.granted(bearer(PREDICTOR), Action.INFER, "iris") is identity  # takes the last
    assert access.granted(bearer(PREDICTOR), Action.INFER, "other") is None  # another name
    assert access.granted(bearer(VIEWER), Action.INFER, "iris") is None  # another credential
    with pytest.raises(RateLimited):  # a cached grant still pays the rate limit
        access.granted(bearer(PREDICTOR), Action.INFER, "iris")
    clock.advance(5.0)  # the TTL ran out: look it up again
    assert access.granted(bearer(PREDICTOR), Action.INFER, "iris") is None
    assert keys.calls == 1
