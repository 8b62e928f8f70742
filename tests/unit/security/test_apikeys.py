"""API key format, hashing and constant-time verification."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from modelport.core.errors import Unauthenticated
from modelport.security.apikeys import (
    KEY_PREFIX,
    ApiKey,
    ApiKeyRecord,
    generate_key,
    hash_secret,
    parse_key,
    verify_secret,
)
from modelport.security.identity import Grant, Role


def test_generated_keys_have_the_documented_form_and_parse_back() -> None:
    key = generate_key()
    token = key.token
    assert token.startswith(f"{KEY_PREFIX}_{key.key_id}_")
    assert len(key.key_id) == 12 and all(c in "0123456789abcdef" for c in key.key_id)
    assert len(key.secret) == 43
    assert len(base64.urlsafe_b64decode(key.secret + "=")) == 32
    assert parse_key(token) == key
    assert parse_key(f"  {token}\n") == key


def test_generated_keys_differ() -> None:
    keys = [generate_key() for _ in range(200)]
    assert len({k.key_id for k in keys}) == 200
    assert len({k.secret for k in keys}) == 200


def test_a_secret_may_contain_underscores() -> None:
    secret = "_" * 42 + "A"  # decodes to 32 bytes
    key = parse_key(f"mpk_0123456789ab_{secret}")
    assert key.secret == secret and key.key_id == "0123456789ab"


def test_the_secret_is_not_in_the_repr() -> None:
    key = generate_key()
    assert key.secret not in repr(key)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "mpk",
        "mpk_",
        "mpk__",
        "Bearer mpk_0123456789ab_" + "A" * 43,
        "sk_0123456789ab_" + "A" * 43,
        "MPK_0123456789ab_" + "A" * 43,
        "mpk_0123456789AB_" + "A" * 43,  # upper-case id
        "mpk_0123456789a_" + "A" * 43,  # short id
        "mpk_0123456789ab_" + "A" * 42,  # short secret
        "mpk_0123456789ab_" + "A" * 44,  # long secret
        "mpk_0123456789ab_" + "A" * 42 + "=",  # padding
        "mpk_0123456789ab_" + "A" * 42 + "B",  # stray bits past 256
        "mpk_0123456789ab_" + "A" * 40 + "+/A",  # not URL-safe base64
        "mpk-0123456789ab-" + "A" * 43,
    ],
)
def test_malformed_tokens_are_refused_with_the_expected_form(token: str) -> None:
    with pytest.raises(Unauthenticated) as err:
        parse_key(token)
    assert "malformed API key" in err.value.message
    assert "mpk_<key id" in err.value.message
    if len(token) > 20:
        assert token not in err.value.message, "the message never repeats a credential"


def test_hash_is_salted_and_verifies_only_the_right_secret() -> None:
    key = generate_key()
    first, second = hash_secret(key.secret), hash_secret(key.secret)
    assert first != second, "a fresh salt each time"
    assert key.secret not in first
    assert first.startswith("hmac-sha256$")
    assert verify_secret(key.secret, first) and verify_secret(key.secret, second)
    assert not verify_secret(generate_key().secret, first)
    assert not verify_secret(key.secret[:-1] + ("A" if key.secret[-1] != "A" else "B"), first)


def test_hash_with_a_given_salt_is_deterministic() -> None:
    assert hash_secret("s" * 43, b"\x01" * 16) == hash_secret("s" * 43, b"\x01" * 16)
    assert hash_secret("s" * 43, b"\x01" * 16) != hash_secret("s" * 43, b"\x02" * 16)


@pytest.mark.parametrize(
    "stored",
    ["", "garbage", "hmac-sha256$zz$00", "md5$00$00", "hmac-sha256$00", "hmac-sha256$00$é"],
)
def test_stored_values_in_an_unknown_form_never_match(stored: str) -> None:
    assert not verify_secret("s" * 43, stored)


def test_a_stored_value_with_another_scheme_name_does_not_match() -> None:
    stored = hash_secret("s" * 43)
    assert not verify_secret("s" * 43, "sha1" + stored[len("hmac-sha256") :])


def test_record_status() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    record = ApiKeyRecord(
        key_id="0123456789ab",
        name="ci",
        grants=(Grant(Role.PREDICTOR, "fraud-*"),),
        created_at=now,
        created_by="alice",
        expires_at=now + timedelta(days=1),
    )
    assert record.status(now) == "active"
    assert record.status(now + timedelta(days=1)) == "expired"
    revoked = ApiKeyRecord(**{**_fields(record), "revoked_at": now, "revoked_by": "bob"})
    assert revoked.status(now) == "revoked"


def _fields(record: ApiKeyRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]


def test_api_key_token_property() -> None:
    assert ApiKey("0123456789ab", "x" * 43).token == "mpk_0123456789ab_" + "x" * 43
