"""The authenticator: bearer parsing, API keys, JWTs, mTLS subjects and the decision cache."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from modelport.core.errors import ConfigError, Unauthenticated
from modelport.core.settings import AuthSettings, OidcSettings
from modelport.security.authn import Authenticator, mtls_identities_from_settings
from modelport.security.identity import AuthMethod, Grant, Identity, Role, parse_grant
from modelport.security.jwt import JwtVerifier
from tests.unit.security._clock import FakeClock

GOOD_KEY = "mpk_good_0123456789"
SHORT_KEY = "mpk_short_lived"
ADMIN = (Grant(Role.ADMIN, "*"),)


class FakeKeys:
    """An ApiKeyResolver that counts its calls."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[str] = []
        self.revoked: set[str] = set()

    def resolve_api_key(self, token: str) -> Identity:
        self.calls.append(token)
        if token in self.revoked:
            raise Unauthenticated("API key revoked")
        if token == GOOD_KEY:
            return Identity("key:good", ADMIN, AuthMethod.API_KEY)
        if token == SHORT_KEY:
            return Identity("key:short", ADMIN, AuthMethod.API_KEY, expires_at=self.clock.t + 2)
        raise Unauthenticated("unknown API key")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keys(clock: FakeClock) -> FakeKeys:
    return FakeKeys(clock)


@pytest.fixture
def authn(keys: FakeKeys, clock: FakeClock) -> Authenticator:
    mtls = {"CN=ci-runner, O=Acme": (Grant(Role.DEPLOYER, "fraud-*"),)}
    return Authenticator(keys, None, mtls, clock, cache_ttl_s=5.0)


def refused(
    authn: Authenticator, header: str | None, fragment: str, peer: str | None = None
) -> None:
    with pytest.raises(Unauthenticated) as info:
        authn.authenticate(header, peer)
    assert fragment in info.value.message, info.value.message


# ---- bearer parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [f"Bearer {GOOD_KEY}", f"bearer {GOOD_KEY}", f"BEARER {GOOD_KEY}", f"  Bearer   {GOOD_KEY}  "],
)
def test_bearer_scheme_is_case_insensitive(authn: Authenticator, header: str) -> None:
    assert authn.authenticate(header, None).subject == "key:good"


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (
            f"Basic {GOOD_KEY}",
            "unsupported Authorization header (got scheme 'Basic'): expected `Authorization: Bearer <token>`",
        ),
        (GOOD_KEY, "unsupported Authorization header: expected `Authorization: Bearer <token>`"),
        ("Bearer", "expected `Authorization: Bearer <token>`"),
        ("Bearer    ", "expected `Authorization: Bearer <token>`"),
        (
            f"Bearer {GOOD_KEY} extra",
            "malformed Authorization header: expected `Authorization: Bearer <token>`",
        ),
        (f"Token {GOOD_KEY}", "(got scheme 'Token')"),
        ("Bearer " + "x" * 9000, "longer than 8192 characters"),
        (
            "Bearer opaque-token",
            "unrecognised bearer token: expected an API key (mpk_...) or a JWT",
        ),
        ("Bearer a.b", "unrecognised bearer token"),
        ("Bearer a.b.c.d", "unrecognised bearer token"),
    ],
)
def test_bad_headers(authn: Authenticator, header: str, fragment: str) -> None:
    refused(authn, header, fragment)


def test_the_token_is_never_echoed(authn: Authenticator) -> None:
    for header in (f"Basic {GOOD_KEY}", GOOD_KEY, f"Bearer {GOOD_KEY} extra"):
        with pytest.raises(Unauthenticated) as info:
            authn.authenticate(header, None)
        assert GOOD_KEY not in info.value.message


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_credential(authn: Authenticator, header: str | None) -> None:
    refused(authn, header, "missing credential: send Authorization: Bearer <API key or token>")


def test_resolver_errors_pass_through(authn: Authenticator) -> None:
    refused(authn, "Bearer mpk_wrong", "unknown API key")


def test_api_keys_off(clock: FakeClock) -> None:
    authn = Authenticator(None, None, {}, clock, 5.0)
    refused(authn, f"Bearer {GOOD_KEY}", "API keys are not accepted by this server")


def test_jwt_off(authn: Authenticator) -> None:
    refused(
        authn,
        "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
        "JWT bearer tokens are not accepted",
    )
    refused(
        authn, "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "JWT bearer tokens are not accepted"
    )


# ---- the cache ---------------------------------------------------------------------------


def test_cache_hit_does_not_call_the_resolver(authn: Authenticator, keys: FakeKeys) -> None:
    first = authn.authenticate(f"Bearer {GOOD_KEY}", None)
    for _ in range(100):
        assert authn.authenticate(f"bearer {GOOD_KEY}", None) is first
    assert keys.calls == [GOOD_KEY]


def test_cache_expires_after_ttl(authn: Authenticator, keys: FakeKeys, clock: FakeClock) -> None:
    authn.authenticate(f"Bearer {GOOD_KEY}", None)
    clock.advance(4.9)
    authn.authenticate(f"Bearer {GOOD_KEY}", None)
    assert len(keys.calls) == 1
    keys.revoked.add(GOOD_KEY)
    clock.advance(0.1)  # at most cache_ttl_s after revocation, the key is refused
    refused(authn, f"Bearer {GOOD_KEY}", "API key revoked")
    assert len(keys.calls) == 2


def test_cache_never_outlives_the_credential(
    authn: Authenticator, keys: FakeKeys, clock: FakeClock
) -> None:
    identity = authn.authenticate(f"Bearer {SHORT_KEY}", None)
    assert identity.expires_at == clock.t + 2
    clock.advance(1.9)
    authn.authenticate(f"Bearer {SHORT_KEY}", None)
    assert len(keys.calls) == 1
    clock.advance(0.1)  # expires_at reached, though cache_ttl_s (5 s) has not passed
    authn.authenticate(f"Bearer {SHORT_KEY}", None)
    assert len(keys.calls) == 2


def test_expired_identity_is_not_cached(keys: FakeKeys, clock: FakeClock) -> None:
    class Stale(FakeKeys):
        def resolve_api_key(self, token: str) -> Identity:
            self.calls.append(token)
            return Identity("key:stale", ADMIN, AuthMethod.API_KEY, expires_at=self.clock.t - 1)

    stale = Stale(clock)
    authn = Authenticator(stale, None, {}, clock, 5.0)
    authn.authenticate("Bearer mpk_x", None)
    authn.authenticate("Bearer mpk_x", None)
    assert len(stale.calls) == 2
    assert len(authn) == 0


def test_failures_are_not_cached(authn: Authenticator, keys: FakeKeys) -> None:
    for _ in range(3):
        refused(authn, "Bearer mpk_wrong", "unknown API key")
    assert keys.calls == ["mpk_wrong"] * 3
    assert len(authn) == 0


def test_cache_is_keyed_by_a_hash_not_the_token(authn: Authenticator) -> None:
    authn.authenticate(f"Bearer {GOOD_KEY}", None)
    stored = list(authn._cache)
    assert len(stored) == 1
    assert isinstance(stored[0], bytes) and len(stored[0]) == 32
    assert GOOD_KEY.encode() not in stored[0]


def test_cache_size_is_bounded(keys: FakeKeys, clock: FakeClock) -> None:
    class Anyone(FakeKeys):
        def resolve_api_key(self, token: str) -> Identity:
            self.calls.append(token)
            return Identity(f"key:{token}", ADMIN, AuthMethod.API_KEY)

    anyone = Anyone(clock)
    authn = Authenticator(anyone, None, {}, clock, 60.0, cache_size=10)
    for n in range(100):
        authn.authenticate(f"Bearer mpk_{n}", None)
    assert len(authn) == 10
    authn.authenticate("Bearer mpk_99", None)  # the newest is still cached
    authn.authenticate("Bearer mpk_0", None)  # the oldest was dropped
    assert anyone.calls[-1] == "mpk_0" and len(anyone.calls) == 101


def test_ttl_zero_turns_the_cache_off(keys: FakeKeys, clock: FakeClock) -> None:
    authn = Authenticator(keys, None, {}, clock, 0.0)
    authn.authenticate(f"Bearer {GOOD_KEY}", None)
    authn.authenticate(f"Bearer {GOOD_KEY}", None)
    assert len(keys.calls) == 2


def test_forget_and_clear(authn: Authenticator, keys: FakeKeys) -> None:
    authn.authenticate(f"Bearer {GOOD_KEY}", None)
    authn.forget(GOOD_KEY)
    authn.authenticate(f"Bearer {GOOD_KEY}", None)
    authn.clear()
    authn.authenticate(f"Bearer {GOOD_KEY}", None)
    assert len(keys.calls) == 3


def test_invalid_cache_settings(keys: FakeKeys, clock: FakeClock) -> None:
    with pytest.raises(ConfigError):
        Authenticator(keys, None, {}, clock, -1.0)
    with pytest.raises(ConfigError):
        Authenticator(keys, None, {}, clock, 1.0, cache_size=0)


# ---- mTLS --------------------------------------------------------------------------------


def test_mtls_subject_maps_to_grants(authn: Authenticator) -> None:
    identity = authn.authenticate(None, "CN=ci-runner,O=Acme")
    assert identity.subject == "cert:CN=ci-runner,O=Acme"
    assert identity.method is AuthMethod.MTLS
    assert identity.grants == (Grant(Role.DEPLOYER, "fraud-*"),)


def test_unknown_mtls_subject_is_refused(authn: Authenticator) -> None:
    refused(
        authn,
        None,
        "client certificate subject 'CN=intruder,O=Acme' is not mapped",
        "CN=intruder,O=Acme",
    )
    refused(authn, None, "is not mapped", "CN=ci-runner")  # a different name, not a prefix match


def test_bearer_wins_over_the_certificate(authn: Authenticator) -> None:
    assert authn.authenticate(f"Bearer {GOOD_KEY}", "CN=ci-runner,O=Acme").subject == "key:good"
    refused(authn, "Bearer mpk_wrong", "unknown API key", "CN=ci-runner,O=Acme")


def test_mtls_identities_from_settings() -> None:
    auth = AuthSettings(
        mtls_identities={"CN=a, O=Acme": ["deployer:fraud-*", "viewer"], "CN=b": ["admin"]}
    )
    assert mtls_identities_from_settings(auth) == {
        "CN=a,O=Acme": (parse_grant("deployer:fraud-*"), parse_grant("viewer")),
        "CN=b": (Grant(Role.ADMIN, "*"),),
    }
    with pytest.raises(ConfigError, match=r"mtls_identities\['CN=c'\]: unknown role 'boss'"):
        mtls_identities_from_settings(AuthSettings(mtls_identities={"CN=c": ["boss"]}))
    with pytest.raises(ConfigError, match="not an RFC 4514 subject"):
        mtls_identities_from_settings(AuthSettings(mtls_identities={"no equals sign": ["admin"]}))


# ---- JWTs through the authenticator ------------------------------------------------------


def test_jwt_is_verified_and_cached_until_exp(tmp_path: Path, clock: FakeClock) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "k1"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    oidc = OidcSettings(issuer="https://idp", audience="mp", jwks_file=path, leeway_s=0)
    verifier = JwtVerifier(oidc, clock)
    calls = 0
    verify = verifier.verify

    def counting(token: str) -> Identity:
        nonlocal calls
        calls += 1
        return verify(token)

    verifier.verify = counting  # type: ignore[method-assign]
    authn = Authenticator(None, verifier, {}, clock, 60.0)
    body = {
        "iss": "https://idp",
        "aud": "mp",
        "sub": "svc",
        "exp": int(clock.t) + 3,
        "roles": ["viewer"],
    }
    token = jwt.encode(body, key, algorithm="ES256", headers={"kid": "k1"})
    assert authn.authenticate(f"Bearer {token}", None).subject == "jwt:svc"
    clock.advance(2.5)
    authn.authenticate(f"Bearer {token}", None)
    assert calls == 1
    clock.advance(0.5)  # exp reached: the cache lets go, and the verifier refuses
    refused(authn, f"Bearer {token}", "token expired")
    assert calls == 2
    forged = jwt.encode(
        body | {"roles": ["admin"]},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    refused(authn, f"Bearer {forged}", "token signature is invalid")
