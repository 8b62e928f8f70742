"""API keys in the store: create, resolve, revoke, expire; secrets never come back out."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from modelport.core.errors import InvalidInput, NotFound, Unauthenticated
from modelport.db import open_engine
from modelport.security._schema import api_keys
from modelport.security.apikeys import parse_key
from modelport.security.identity import AuthMethod, Grant, Role
from modelport.security.store import SecurityStore

from ._support import START, FakeClock

FRAUD = (Grant(Role.PREDICTOR, "fraud-*"), Grant(Role.VIEWER, "*"))


def test_a_created_key_resolves_to_its_identity(store: SecurityStore, clock: FakeClock) -> None:
    expires = START + timedelta(days=30)
    record, token = store.create_key("ci runner", FRAUD, expires, "alice")
    assert record.name == "ci runner"
    assert record.grants == FRAUD
    assert record.created_by == "alice"
    assert record.created_at == START
    assert record.created_at.tzinfo == UTC
    assert record.expires_at == expires
    assert record.revoked_at is None
    assert parse_key(token).key_id == record.key_id

    clock.advance(60)
    identity = store.resolve_api_key(token)
    assert identity.subject == f"key:{record.key_id}"
    assert identity.grants == FRAUD
    assert identity.method is AuthMethod.API_KEY
    assert identity.expires_at == expires.timestamp()
    assert identity.allows(Role.PREDICTOR, "fraud-eu")
    assert not identity.allows(Role.PREDICTOR, "churn")


def test_a_key_without_expiry_never_expires(store: SecurityStore, clock: FakeClock) -> None:
    record, token = store.create_key("", (Grant(Role.ADMIN),), None, "alice")
    clock.advance(10 * 365 * 86400)
    assert store.resolve_api_key(token).expires_at is None
    assert record.expires_at is None


def test_a_key_survives_reopening_the_store(backend_url: str, clock: FakeClock) -> None:
    with SecurityStore(backend_url, clock) as store:
        _, token = store.create_key("x", FRAUD, None, "alice")
    with SecurityStore(backend_url, clock) as store:
        assert store.resolve_api_key(token).grants == FRAUD


def test_unknown_key_and_wrong_secret_read_the_same(store: SecurityStore) -> None:
    record, token = store.create_key("x", FRAUD, None, "alice")
    other_record, other = store.create_key("y", FRAUD, None, "alice")
    wrong_secret = f"mpk_{record.key_id}_{parse_key(other).secret}"
    unknown_id = f"mpk_{'0' * 12}_{parse_key(token).secret}"
    messages = set()
    for bad in (wrong_secret, unknown_id):
        with pytest.raises(Unauthenticated) as err:
            store.resolve_api_key(bad)
        messages.add(err.value.message)
    assert messages == {"invalid API key"}
    assert other_record.key_id != record.key_id


def test_a_malformed_key_says_what_was_expected(store: SecurityStore) -> None:
    with pytest.raises(Unauthenticated) as err:
        store.resolve_api_key("Bearer hunter2")
    assert "malformed API key" in err.value.message and "mpk_" in err.value.message


def test_an_expired_key_is_refused(store: SecurityStore, clock: FakeClock) -> None:
    _, token = store.create_key("x", FRAUD, START + timedelta(hours=1), "alice")
    clock.advance(3599)
    store.resolve_api_key(token)
    clock.advance(1)
    with pytest.raises(Unauthenticated) as err:
        store.resolve_api_key(token)
    assert "expired" in err.value.message
    assert store.list_keys()[0].status(clock.now()) == "expired"


def test_a_revoked_key_is_refused(store: SecurityStore, clock: FakeClock) -> None:
    record, token = store.create_key("x", FRAUD, None, "alice")
    clock.advance(5)
    revoked = store.revoke_key(record.key_id, "bob")
    assert revoked.revoked_at == clock.now() and revoked.revoked_by == "bob"
    with pytest.raises(Unauthenticated) as err:
        store.resolve_api_key(token)
    assert "revoked" in err.value.message
    # Revoking again changes nothing and records nothing.
    clock.advance(5)
    assert store.revoke_key(record.key_id, "carol") == revoked
    assert [e.action for e in store.list_audit()] == ["key.create", "key.revoke"]


def test_revoking_an_unknown_key_is_not_found(store: SecurityStore) -> None:
    with pytest.raises(NotFound) as err:
        store.revoke_key("0123456789ab", "alice")
    assert "keys list" in err.value.message
    with pytest.raises(NotFound):
        store.get_key("0123456789ab")


def test_revoking_one_key_leaves_the_others(store: SecurityStore) -> None:
    a, token_a = store.create_key("a", FRAUD, None, "alice")
    _, token_b = store.create_key("b", FRAUD, None, "alice")
    store.revoke_key(a.key_id, "alice")
    store.resolve_api_key(token_b)
    with pytest.raises(Unauthenticated):
        store.resolve_api_key(token_a)


def test_listing_never_shows_a_secret_or_its_hash(
    store: SecurityStore, backend_url: str, clock: FakeClock
) -> None:
    tokens = []
    for name in ("first", "second", "third"):
        tokens.append(store.create_key(name, FRAUD, None, "alice")[1])
        clock.advance(1)
    records = store.list_keys()
    assert [r.name for r in records] == ["first", "second", "third"]
    engine = open_engine(backend_url)
    try:
        with engine.connect() as conn:
            hashes = conn.execute(select(api_keys.c.secret_hash)).scalars().all()
    finally:
        engine.dispose()
    for token in tokens:
        secret = parse_key(token).secret
        assert all(secret not in h for h in hashes), "only a hash is stored"
        for record in records:
            text = repr(record) + repr(asdict(record))
            assert secret not in text and all(h not in text for h in hashes)
    for entry in store.list_audit():
        assert all(parse_key(t).secret not in repr(entry) for t in tokens)


def test_create_and_revoke_are_audited(store: SecurityStore, clock: FakeClock) -> None:
    record, _ = store.create_key("ci", FRAUD, START + timedelta(days=1), "alice")
    clock.advance(1)
    store.revoke_key(record.key_id, "bob")
    created, revoked = store.list_audit()
    assert (created.actor, created.action, created.target, created.outcome) == (
        "alice",
        "key.create",
        record.key_id,
        "ok",
    )
    assert created.details["grants"] == ["predictor:fraud-*", "viewer:*"]
    assert created.details["name"] == "ci"
    assert (revoked.actor, revoked.action, revoked.target) == ("bob", "key.revoke", record.key_id)
    assert store.verify_audit().intact


@pytest.mark.parametrize(
    ("name", "grants", "expires", "by", "fragment"),
    [
        ("x", (), None, "alice", "at least one grant"),
        ("x" * 201, FRAUD, None, "alice", "at most 200"),
        ("x", FRAUD, None, "  ", "must not be blank"),
        ("x", FRAUD, START, "alice", "not in the future"),
        ("x", FRAUD, START - timedelta(days=1), "alice", "not in the future"),
        ("x", FRAUD, datetime(2030, 1, 1), "alice", "timezone-aware"),
    ],
)
def test_bad_key_requests_are_refused(
    store: SecurityStore,
    name: str,
    grants: tuple[Grant, ...],
    expires: datetime | None,
    by: str,
    fragment: str,
) -> None:
    with pytest.raises(InvalidInput) as err:
        store.create_key(name, grants, expires, by)
    assert fragment in err.value.message
    assert store.list_keys() == []
    assert store.list_audit() == []
