"""Access control: authenticate, rate-limit, authorise, cache granted decisions, audit denials
(counting repeats), and write control actions' entries before they run."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from modelport.core.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
)
from modelport.security.authn import Authenticator
from modelport.security.identity import ANONYMOUS, AuthMethod, Identity, parse_grants
from modelport.security.ratelimit import RateLimiter
from modelport.security.rbac import Action
from modelport.service.access import AccessControl, AuditWriter, Caller, audit_text, request_id
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
    assert access.check(Caller(), Action.MANAGE, listing=True) is ANONYMOUS
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
        with pytest.raises(PermissionDenied, match="model 'credit-1' is outside the scope"):
            access.check(bearer(SCOPED), Action.INFER, "credit-1")
    assert keys.calls == 2
    with pytest.raises(Unauthenticated):
        access.check(bearer("mpk_unknown"), Action.INFER, "credit-1")
    assert access.audit is not None
    access.audit.close()
    actors = [(e[0], e[1], e[2], e[3], e[4]) for e in sink.entries]
    # The repeated denial is counted into one entry written when its window closes.
    assert actors == [
        ("key:scoped", "deny.infer", "credit-1", "denied", "req-1"),
        ("unauthenticated", "deny.infer", "credit-1", "denied", "req-1"),
        ("key:scoped", "deny.infer", "credit-1", "denied", "req-1"),
    ]
    assert sink.entries[2][5]["repeated"] == 1


def test_the_decision_depends_on_action_and_name(access: AccessControl) -> None:
    access.check(bearer(SCOPED), Action.INFER, "fraud-1")
    with pytest.raises(PermissionDenied):
        access.check(bearer(SCOPED), Action.MANAGE, "fraud-1")
    with pytest.raises(PermissionDenied):
        access.check(bearer(SCOPED), Action.INFER, "fraud")


def test_listings_need_the_role_on_some_pattern_and_are_filtered(access: AccessControl) -> None:
    identity = access.check(bearer(SCOPED), Action.METADATA, listing=True)
    assert access.visible(identity, ["fraud-1", "credit-1", "fraud-2"]) == {"fraud-1", "fraud-2"}
    with pytest.raises(PermissionDenied, match="may not manage this server"):
        access.check(bearer(VIEWER), Action.MANAGE, listing=True)


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
        ("key:predictor", "model.load", "x", "started", None),
        ("key:predictor", "model.load", "x", "ok", None),
        ("key:predictor", "model.unload", "x", "started", None),
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
        first = await access.admit(bearer(PREDICTOR), Action.INFER, "iris")
        second = await access.admit(bearer(PREDICTOR), Action.INFER, "iris")
        assert first is second
        assert threads and threads[0] != loop_thread  # the database lookup ran in a thread
        with pytest.raises(PermissionDenied):
            await access.admit(bearer(VIEWER), Action.INFER, "iris")
        listing = await access.admit(bearer(SCOPED), Action.METADATA, listing=True)
        assert listing.subject == "key:scoped"

    asyncio.run(run())
    assert len(threads) == 3  # the cached grant did not look the key up again


def test_admit_answers_cached_decisions_without_a_lookup(keys: Keys, clock: FakeClock) -> None:
    authn = Authenticator(keys, None, {}, clock, 0.0)
    limiter = RateLimiter(1.0, 2, clock)
    access = AccessControl(authn, limiter, clock=clock, cache_ttl_s=5.0)

    async def run() -> None:
        assert await access.admit(Caller(), Action.HEALTH) is ANONYMOUS  # an open probe
        assert keys.calls == 0
        identity = await access.admit(bearer(PREDICTOR), Action.INFER, "iris")  # a token
        assert keys.calls == 1
        assert await access.admit(bearer(PREDICTOR), Action.INFER, "iris") is identity
        assert keys.calls == 1  # answered from the cache, the last token
        with pytest.raises(RateLimited):  # a cached grant still pays the rate limit
            await access.admit(bearer(PREDICTOR), Action.INFER, "iris")
        clock.advance(5.0)  # the TTL ran out (and the bucket refilled): looked up again
        await access.admit(bearer(PREDICTOR), Action.INFER, "iris")
        assert keys.calls == 2
        # A listing is a decision of its own, not the server-wide one.
        await access.admit(bearer(PREDICTOR), Action.INFER, listing=True)
        assert keys.calls == 3

    asyncio.run(run())


def test_request_ids_are_visible_ascii_of_at_most_128_characters() -> None:
    assert request_id("3f9a-1c2b_7d4e.x") == "3f9a-1c2b_7d4e.x"
    assert request_id("a" * 128) == "a" * 128
    for bad in ("", "   ", "a b", "a\x00b", "caf\u00e9", "line\nbreak", "a" * 129):
        with pytest.raises(InvalidInput, match="x-request-id must be 1 to 128 visible ASCII"):
            request_id(bad)


def test_audit_text_keeps_plain_names_and_escapes_the_rest() -> None:
    assert audit_text("fraud-x") == "fraud-x"
    assert audit_text("   ") == "'   '"
    assert audit_text("a\x07b") == "'a\\x07b'"
    long = audit_text("m" * 1100)
    assert long.endswith("... (1100 characters)") and len(long) < 300


def test_a_denial_with_a_huge_name_is_still_audited(access: AccessControl, sink: Sink) -> None:
    with pytest.raises(PermissionDenied):
        access.check(bearer(SCOPED), Action.INFER, "x" * 1100)
    assert access.audit is not None
    access.audit.close()
    assert len(sink.entries) == 1
    assert sink.entries[0][2].endswith("(1100 characters)")


def test_repeated_identical_denials_are_counted_into_one_entry(clock: FakeClock) -> None:
    sink = Sink()
    writer = AuditWriter(sink, clock, window_s=10.0)
    for i in range(500):
        writer.record("unauthenticated", "deny.infer", "iris", "denied", f"r{i}", {"reason": "x"})
    writer.record("unauthenticated", "deny.infer", "iris", "denied", "other", {"reason": "y"})
    writer.flush()
    assert len(sink.entries) == 3  # the first, the other reason, and the count at flush
    first, other, counted = sink.entries
    assert first[4] == "r0" and first[5] == {"reason": "x"}
    assert other[5] == {"reason": "y"}
    assert counted[5] == {
        "reason": "x",
        "repeated": 499,
        "window_s": 10.0,
        "last_request_id": "r499",
    }
    # A new window starts with a written entry again.
    writer.record("unauthenticated", "deny.infer", "iris", "denied", "again", {"reason": "x"})
    writer.close()
    assert sink.entries[-1][4] == "again" and "repeated" not in sink.entries[-1][5]


def test_counted_denials_are_written_when_their_window_ends(clock: FakeClock) -> None:
    sink = Sink()
    writer = AuditWriter(sink, clock, window_s=0.05)
    for i in range(3):
        writer.record("a", "deny.infer", "m", "denied", f"r{i}")

    def counted() -> bool:
        return any(e[5] and e[5].get("repeated") == 2 for e in sink.entries)

    assert sink.written.wait(5)  # the first is written, so its window has started
    time.sleep(0.05)  # the writer thread has taken the two repeats too
    clock.advance(1.0)  # the window is over; the writer notices on its next wake-up
    deadline = time.monotonic() + 5
    while not counted() and time.monotonic() < deadline:
        writer.record("b", "deny.infer", "m", "denied", "wake")
        time.sleep(0.01)
    assert counted()
    writer.close()


def test_client_addresses_are_limited_before_authentication(
    keys: Keys, clock: FakeClock, sink: Sink
) -> None:
    authn = Authenticator(keys, None, {}, clock, 0.0)
    access = AccessControl(
        authn, audit=AuditWriter(sink, clock), peer_limiter=RateLimiter(1.0, 3, clock)
    )
    flood = Caller("Bearer mpk_guess", None, None, "10.9.8.7")
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            access.check(flood, Action.INFER, "iris")
    with pytest.raises(RateLimited, match="too many authentication attempts from 10.9.8.7"):
        access.check(flood, Action.INFER, "iris")
    assert keys.calls == 3  # the fourth attempt was not even checked
    other = Caller(f"Bearer {PREDICTOR}", None, None, "10.0.0.1")
    assert access.check(other, Action.INFER, "iris").subject == "key:predictor"
    access.close()
    reasons = [e[5]["reason"] for e in sink.entries]
    assert any("too many authentication attempts" in r for r in reasons)
    assert all(e[5]["client"] == "10.9.8.7" for e in sink.entries)


def test_open_metrics_need_no_credential_when_configured(keys: Keys, clock: FakeClock) -> None:
    authn = Authenticator(keys, None, {}, clock, 0.0)
    with pytest.raises(Unauthenticated):
        AccessControl(authn).check(Caller(), Action.METRICS)
    assert AccessControl(authn, open_metrics=True).check(Caller(), Action.METRICS) is ANONYMOUS


def test_a_control_action_whose_entry_cannot_be_written_is_not_performed(
    access: AccessControl, clock: FakeClock
) -> None:
    class Broken:
        def append_audit(self, *entry: Any) -> None:
            raise OSError("disk full")

    broken = AccessControl(None, audit=AuditWriter(Broken(), clock))
    ran: list[str] = []

    async def unload() -> None:
        ran.append("unload")

    async def run() -> None:
        with pytest.raises(ServiceUnavailable, match="model.unload was not performed"):
            await broken.audited(ANONYMOUS, Caller(), "model.unload", "iris", unload())

    asyncio.run(run())
    assert ran == []
