"""JWT verification: signatures, claims, key sets from files and URLs, and the known attacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from modelport.core.errors import ConfigError, PermissionDenied, Unauthenticated
from modelport.core.settings import OidcSettings
from modelport.security.identity import AuthMethod, Grant, Role
from modelport.security.jwt import JwtVerifier, grants_from_claims
from tests.unit.security._clock import FakeClock

ISSUER = "https://login.example.com/realms/ml"
AUDIENCE = "modelport"


@dataclass
class Keys:
    rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    ed: ed25519.Ed25519PrivateKey
    other_rsa: rsa.RSAPrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        ed=ed25519.Ed25519PrivateKey.generate(),
        other_rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def jwk_of(key: Any, kid: str, alg: str | None = None) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    data["kid"] = kid
    data["use"] = "sig"
    if alg is not None:
        data["alg"] = alg
    return data


def jwks(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(entries)}).encode()


def standard_jwks(keys: Keys) -> bytes:
    return jwks(
        jwk_of(keys.rsa, "rsa1", "RS256"),
        jwk_of(keys.ec, "ec1"),
        jwk_of(keys.ed, "ed1"),
    )


def claims(clock: FakeClock, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": int(clock.t),
        "nbf": int(clock.t),
        "exp": int(clock.t) + 600,
        "roles": ["predictor:fraud-*", "offline_access"],
    }
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def sign(payload: dict[str, Any], key: Any, alg: str, kid: str | None) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand, as an attacker would (PyJWT refuses to make these)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jwks_file(tmp_path: Path, keys: Keys) -> Path:
    path = tmp_path / "jwks.json"
    path.write_bytes(standard_jwks(keys))
    return path


def settings_for(path: Path | None = None, url: str | None = None, **changes: Any) -> OidcSettings:
    return OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=path, jwks_url=url, **changes)


@pytest.fixture
def verifier(jwks_file: Path, clock: FakeClock) -> JwtVerifier:
    return JwtVerifier(settings_for(jwks_file), clock)


def refused(verifier: JwtVerifier, token: str, fragment: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(token)
    assert fragment in info.value.message, info.value.message


# ---- accepted tokens ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attr", "alg", "kid"),
    [("rsa", "RS256", "rsa1"), ("ec", "ES256", "ec1"), ("ed", "EdDSA", "ed1")],
)
def test_each_algorithm_verifies(
    verifier: JwtVerifier, keys: Keys, clock: FakeClock, attr: str, alg: str, kid: str
) -> None:
    token = sign(claims(clock), getattr(keys, attr), alg, kid)
    identity = verifier.verify(token)
    assert identity.subject == "jwt:alice"
    assert identity.method is AuthMethod.JWT
    assert identity.grants == (Grant(Role.PREDICTOR, "fraud-*"),)
    assert identity.expires_at == clock.t + 600
    assert identity.allows(Role.PREDICTOR, "fraud-eu")
    assert not identity.allows(Role.PREDICTOR, "credit-x")


def test_audience_list_containing_ours_is_accepted(
    verifier: JwtVerifier, keys: Keys, clock: FakeClock
) -> None:
    token = sign(claims(clock, aud=["account", AUDIENCE]), keys.rsa, "RS256", "rsa1")
    assert verifier.verify(token).subject == "jwt:alice"


def test_leeway_tolerates_small_skew(verifier: JwtVerifier, keys: Keys, clock: FakeClock) -> None:
    token = sign(
        claims(clock, exp=int(clock.t) - 20, nbf=int(clock.t) + 20, iat=int(clock.t) + 20),
        keys.rsa,
        "RS256",
        "rsa1",
    )
    assert verifier.verify(token).subject == "jwt:alice"


def test_token_without_kid_and_no_fitting_key(tmp_path: Path, keys: Keys, clock: FakeClock) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(
        jwks(jwk_of(keys.rsa, "r1"), jwk_of(keys.other_rsa, "r2"), jwk_of(keys.ec, "e1"))
    )
    verifier = JwtVerifier(settings_for(path), clock)
    refused(
        verifier,
        sign(claims(clock), keys.ed, "EdDSA", None),
        "no 'kid' header and no key in the key set fits EdDSA (it needs an OKP",
    )
    refused(
        verifier, sign(claims(clock), keys.rsa, "RS256", None), "several keys could have signed it"
    )
    assert verifier.verify(sign(claims(clock), keys.ec, "ES256", None)).subject == "jwt:alice"


def test_token_without_kid_uses_the_only_fitting_key(
    verifier: JwtVerifier, keys: Keys, clock: FakeClock
) -> None:
    token = sign(claims(clock), keys.ec, "ES256", None)
    assert verifier.verify(token).subject == "jwt:alice"


# ---- attacks and bad tokens --------------------------------------------------------------


def test_alg_none_is_refused(verifier: JwtVerifier, clock: FakeClock) -> None:
    token = handmade({"alg": "none", "typ": "JWT", "kid": "rsa1"}, claims(clock), None)
    refused(verifier, token, "alg 'none'")
    token = jwt.encode(claims(clock), None, algorithm="none")
    refused(verifier, token, "alg 'none'")
    refused(verifier, handmade({"alg": "NONE", "kid": "rsa1"}, claims(clock), None), "alg 'none'")


def test_hmac_signed_with_the_public_key_is_refused(
    verifier: JwtVerifier, keys: Keys, clock: FakeClock
) -> None:
    # Algorithm confusion: the attacker knows the public key and uses its PEM as an HMAC secret,
    # hoping the server verifies HS256 with "the key" it has for that kid.
    pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = claims(clock, roles=["admin"])
    token = handmade({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}, forged, pem)
    refused(
        verifier,
        token,
        "token algorithm 'HS256' is not accepted: expected one of RS256, ES256, EdDSA",
    )
    jwk_json = json.dumps(jwk_of(keys.rsa, "rsa1")).encode()
    refused(
        verifier,
        handmade({"alg": "HS256", "kid": "rsa1"}, forged, jwk_json),
        "'HS256' is not accepted",
    )


def test_hmac_keys_in_the_key_set_are_ignored(tmp_path: Path, keys: Keys, clock: FakeClock) -> None:
    secret = b"shared-secret-shared-secret-32by"
    path = tmp_path / "jwks.json"
    oct_key = {"kty": "oct", "kid": "hs", "k": b64(secret), "alg": "HS256"}
    path.write_bytes(jwks(oct_key, jwk_of(keys.rsa, "rsa1")))
    verifier = JwtVerifier(settings_for(path), clock)
    token = handmade({"alg": "HS256", "kid": "hs"}, claims(clock), secret)
    refused(verifier, token, "'HS256' is not accepted")


def test_algorithm_not_in_settings_is_refused(
    jwks_file: Path, keys: Keys, clock: FakeClock
) -> None:
    verifier = JwtVerifier(settings_for(jwks_file, algorithms=["RS256"]), clock)
    token = sign(claims(clock), keys.ec, "ES256", "ec1")
    refused(verifier, token, "token algorithm 'ES256' is not accepted: expected one of RS256")


def test_key_type_must_match_algorithm(verifier: JwtVerifier, keys: Keys, clock: FakeClock) -> None:
    # An ES256 token naming the RSA key's kid: the key cannot verify ES256, whatever it signs.
    token = sign(claims(clock), keys.ec, "ES256", "rsa1")
    refused(
        verifier, token, "token algorithm ES256 needs an EC P-256 key, but key 'rsa1' is for RS256"
    )
    token = sign(claims(clock), keys.ed, "EdDSA", "ec1")
    refused(verifier, token, "needs an OKP Ed25519/Ed448 key, but key 'ec1' is for ES256")


def test_jwk_alg_must_match_its_key_type(tmp_path: Path, keys: Keys, clock: FakeClock) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk_of(keys.rsa, "rsa1", "ES256"), jwk_of(keys.ec, "ec1")))
    verifier = JwtVerifier(settings_for(path), clock)
    refused(verifier, sign(claims(clock), keys.rsa, "RS256", "rsa1"), "unknown key id 'kid' 'rsa1'")


def test_encryption_keys_are_not_used_for_signatures(
    tmp_path: Path, keys: Keys, clock: FakeClock
) -> None:
    enc = jwk_of(keys.rsa, "rsa1")
    enc["use"] = "enc"
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(enc, jwk_of(keys.ec, "ec1")))
    verifier = JwtVerifier(settings_for(path), clock)
    refused(verifier, sign(claims(clock), keys.rsa, "RS256", "rsa1"), "unknown key id")


def test_bad_signature_is_refused(verifier: JwtVerifier, keys: Keys, clock: FakeClock) -> None:
    token = sign(claims(clock), keys.other_rsa, "RS256", "rsa1")
    refused(verifier, token, "token signature is invalid")
    good = sign(claims(clock), keys.rsa, "RS256", "rsa1")
    header, _, sig = good.split(".")
    tampered = f"{header}.{b64(json.dumps(claims(clock, roles=['admin'])).encode())}.{sig}"
    refused(verifier, tampered, "token signature is invalid")


def test_expired_is_refused(verifier: JwtVerifier, keys: Keys, clock: FakeClock) -> None:
    token = sign(claims(clock), keys.rsa, "RS256", "rsa1")
    assert verifier.verify(token)
    clock.advance(600 + 30)  # exp + leeway
    refused(verifier, token, "token expired 30 s ago ('exp')")


def test_not_yet_valid_is_refused(verifier: JwtVerifier, keys: Keys, clock: FakeClock) -> None:
    token = sign(claims(clock, nbf=int(clock.t) + 120), keys.rsa, "RS256", "rsa1")
    refused(verifier, token, "token is not valid yet ('nbf' is 120 s ahead)")
    clock.advance(100)
    assert verifier.verify(token).subject == "jwt:alice"


def test_issued_in_the_future_is_refused(
    verifier: JwtVerifier, keys: Keys, clock: FakeClock
) -> None:
    token = sign(claims(clock, iat=int(clock.t) + 3600), keys.rsa, "RS256", "rsa1")
    refused(verifier, token, "token was issued in the future")


def test_wrong_audience_is_refused(verifier: JwtVerifier, keys: Keys, clock: FakeClock) -> None:
    token = sign(claims(clock, aud="some-other-api"), keys.rsa, "RS256", "rsa1")
    refused(verifier, token, "token audience 'aud' is wrong: expected 'modelport'")


def test_wrong_issuer_is_refused(verifier: JwtVerifier, keys: Keys, clock: FakeClock) -> None:
    token = sign(claims(clock, iss="https://evil.example.com"), keys.rsa, "RS256", "rsa1")
    refused(verifier, token, f"token issuer 'iss' is wrong: expected {ISSUER!r}")


@pytest.mark.parametrize("claim", ["exp", "sub", "iss", "aud"])
def test_required_claims(verifier: JwtVerifier, keys: Keys, clock: FakeClock, claim: str) -> None:
    token = sign(claims(clock, **{claim: None}), keys.rsa, "RS256", "rsa1")
    refused(verifier, token, f"token has no {claim!r} claim (required)")


@pytest.mark.parametrize("value", ["tomorrow", True, [1], float("nan"), float("inf")])
def test_exp_must_be_a_number(
    verifier: JwtVerifier, keys: Keys, clock: FakeClock, value: Any
) -> None:
    token = sign(claims(clock, exp=value), keys.rsa, "RS256", "rsa1")
    refused(verifier, token, "token claim 'exp' must be a number")


def test_sub_must_be_a_string(verifier: JwtVerifier, keys: Keys, clock: FakeClock) -> None:
    token = sign(claims(clock, sub=42), keys.rsa, "RS256", "rsa1")
    with pytest.raises(Unauthenticated):
        verifier.verify(token)


def test_unknown_kid_is_refused(verifier: JwtVerifier, keys: Keys, clock: FakeClock) -> None:
    token = sign(claims(clock), keys.other_rsa, "RS256", "nobody")
    refused(verifier, token, "token signed with unknown key id 'kid' 'nobody'")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b.c",
        "a.b",
        "....",
        "!!!.@@@.###",
        b64(b"[1,2]") + "." + b64(b"{}") + ".",
        b64(b'{"alg": "RS256", "kid": 5}') + "." + b64(b"{}") + "." + b64(b"sig"),
        b64(b'{"alg": "RS256", "kid": "rsa1"}') + "." + b64(b"not json") + "." + b64(b"sig"),
        b64(b'{"alg": "RS256", "kid": "rsa1"}') + ".e30." + "%%%",
        b64(b'{"alg": 5, "kid": "rsa1"}') + ".e30." + b64(b"sig"),
        b64(b'{"kid": "rsa1"}') + ".e30." + b64(b"sig"),
    ],
)
def test_malformed_tokens_are_refused(verifier: JwtVerifier, token: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(token)
    assert info.value.message


def test_short_rsa_keys_are_refused(tmp_path: Path, clock: FakeClock) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk_of(weak, "weak")))
    verifier = JwtVerifier(settings_for(path), clock)
    token = handmade_rs256(claims(clock), weak, "weak")  # PyJWT would warn about the key
    refused(verifier, token, "token key refused: The RSA key is 1024 bits long")


def handmade_rs256(payload: dict[str, Any], key: rsa.RSAPrivateKey, kid: str) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(sig)}"


# ---- roles claim -------------------------------------------------------------------------


def test_nested_roles_claim(jwks_file: Path, keys: Keys, clock: FakeClock) -> None:
    verifier = JwtVerifier(settings_for(jwks_file, roles_claim="realm_access.roles"), clock)
    body = claims(
        clock,
        roles=None,
        realm_access={"roles": ["uma_authorization", "deployer:credit-*", "viewer"]},
    )
    identity = verifier.verify(sign(body, keys.rsa, "RS256", "rsa1"))
    assert identity.grants == (Grant(Role.DEPLOYER, "credit-*"), Grant(Role.VIEWER, "*"))


def test_token_without_modelport_role_is_permission_denied(
    verifier: JwtVerifier, keys: Keys, clock: FakeClock
) -> None:
    token = sign(
        claims(clock, roles=["offline_access", "default-roles-ml"]), keys.rsa, "RS256", "rsa1"
    )
    with pytest.raises(PermissionDenied, match="token claim 'roles' grants no modelport role"):
        verifier.verify(token)
    token = sign(claims(clock, roles=None), keys.rsa, "RS256", "rsa1")
    with pytest.raises(PermissionDenied, match="token has no 'roles' claim"):
        verifier.verify(token)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["admin"], (Grant(Role.ADMIN, "*"),)),
        (
            ["Predictor:fraud-*", "viewer:*"],
            (Grant(Role.PREDICTOR, "fraud-*"), Grant(Role.VIEWER, "*")),
        ),
        ("viewer predictor:a-*", (Grant(Role.VIEWER, "*"), Grant(Role.PREDICTOR, "a-*"))),
        (["predictor:", "offline_access", "admin:x"], (Grant(Role.ADMIN, "x"),)),
    ],
)
def test_grants_from_claims(value: Any, expected: tuple[Grant, ...]) -> None:
    assert grants_from_claims({"roles": value}, "roles") == expected


@pytest.mark.parametrize("value", [{"admin": True}, 5, ["admin", 5]])
def test_roles_claim_of_the_wrong_type(value: Any) -> None:
    with pytest.raises(PermissionDenied, match="must be a list of strings"):
        grants_from_claims({"roles": value}, "roles")


def test_nested_path_through_a_non_object() -> None:
    with pytest.raises(PermissionDenied, match="token has no 'a.b' claim"):
        grants_from_claims({"a": ["admin"]}, "a.b")


# ---- configuration -----------------------------------------------------------------------


def test_configuration_errors(tmp_path: Path, jwks_file: Path, clock: FakeClock) -> None:
    with pytest.raises(ConfigError, match="issuer"):
        JwtVerifier(OidcSettings(audience=AUDIENCE, jwks_file=jwks_file), clock)
    with pytest.raises(ConfigError, match="audience"):
        JwtVerifier(OidcSettings(issuer=ISSUER, jwks_file=jwks_file), clock)
    with pytest.raises(ConfigError, match="exactly one"):
        JwtVerifier(settings_for(), clock)
    with pytest.raises(ConfigError, match="exactly one"):
        JwtVerifier(settings_for(jwks_file, "https://idp.example.com/jwks"), clock)
    with pytest.raises(ConfigError, match="must use https"):
        JwtVerifier(settings_for(url="http://idp.example.com/jwks"), clock)
    with pytest.raises(ConfigError, match="jwks_file"):
        JwtVerifier(settings_for(tmp_path / "missing.json"), clock)
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": []}')
    with pytest.raises(ConfigError, match="no signature key usable"):
        JwtVerifier(settings_for(bad), clock)
    bad.write_text("not json")
    with pytest.raises(ConfigError, match="not JSON"):
        JwtVerifier(settings_for(bad), clock)


def test_key_file_is_reread_for_an_unknown_kid(
    jwks_file: Path, keys: Keys, clock: FakeClock
) -> None:
    verifier = JwtVerifier(settings_for(jwks_file), clock, min_refresh_s=10)
    token = sign(claims(clock), keys.other_rsa, "RS256", "rsa2")
    clock.advance(10)
    refused(verifier, token, "unknown key id")
    jwks_file.write_bytes(jwks(jwk_of(keys.rsa, "rsa1"), jwk_of(keys.other_rsa, "rsa2")))
    clock.advance(10)
    assert verifier.verify(token).subject == "jwt:alice"


# ---- key set from a URL ------------------------------------------------------------------


@dataclass
class Idp:
    url: str
    body: bytes
    fetches: list[str] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def idp(keys: Keys) -> Iterator[Idp]:
    state = Idp(url="", body=standard_jwks(keys))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/realms/ml/certs"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_url_keys_are_fetched_once_and_cached(idp: Idp, keys: Keys, clock: FakeClock) -> None:
    verifier = JwtVerifier(settings_for(url=idp.url, jwks_cache_s=300), clock)
    assert idp.fetches == []  # nothing fetched before the first token
    token = sign(claims(clock), keys.rsa, "RS256", "rsa1")
    for _ in range(5):
        assert verifier.verify(token).subject == "jwt:alice"
    assert idp.fetches == ["/realms/ml/certs"]
    clock.advance(299)
    verifier.verify(sign(claims(clock), keys.ec, "ES256", "ec1"))
    assert len(idp.fetches) == 1
    clock.advance(1)  # the cache has expired: fetched again
    verifier.verify(sign(claims(clock), keys.ec, "ES256", "ec1"))
    assert len(idp.fetches) == 2


def test_url_refetched_on_unknown_kid(idp: Idp, keys: Keys, clock: FakeClock) -> None:
    verifier = JwtVerifier(settings_for(url=idp.url), clock, min_refresh_s=10)
    assert verifier.verify(sign(claims(clock), keys.rsa, "RS256", "rsa1"))
    assert len(idp.fetches) == 1
    # The provider rotates its key; a token signed with the new one arrives.
    clock.advance(60)
    idp.body = jwks(jwk_of(keys.other_rsa, "rsa2"), jwk_of(keys.rsa, "rsa1"))
    rotated = sign(claims(clock), keys.other_rsa, "RS256", "rsa2")
    assert verifier.verify(rotated).subject == "jwt:alice"
    assert len(idp.fetches) == 2
    assert verifier.verify(rotated)
    assert len(idp.fetches) == 2


def test_unknown_kid_refresh_is_throttled(idp: Idp, keys: Keys, clock: FakeClock) -> None:
    verifier = JwtVerifier(settings_for(url=idp.url), clock, min_refresh_s=10)
    assert verifier.verify(sign(claims(clock), keys.rsa, "RS256", "rsa1"))
    clock.advance(30)
    for n in range(20):  # an attacker sends made-up kids
        token = sign(claims(clock), keys.other_rsa, "RS256", f"made-up-{n}")
        refused(verifier, token, f"unknown key id 'kid' 'made-up-{n}'")
    assert len(idp.fetches) == 2  # the first load plus one refresh
    clock.advance(9.9)
    refused(verifier, sign(claims(clock), keys.other_rsa, "RS256", "x"), "unknown key id")
    assert len(idp.fetches) == 2
    clock.advance(0.1)
    refused(verifier, sign(claims(clock), keys.other_rsa, "RS256", "x"), "unknown key id")
    assert len(idp.fetches) == 3
    # Known keys keep working throughout, without fetching.
    assert verifier.verify(sign(claims(clock), keys.rsa, "RS256", "rsa1"))
    assert len(idp.fetches) == 3


def test_first_unknown_kid_costs_one_fetch_only(idp: Idp, keys: Keys, clock: FakeClock) -> None:
    verifier = JwtVerifier(settings_for(url=idp.url), clock)
    refused(verifier, sign(claims(clock), keys.other_rsa, "RS256", "nope"), "unknown key id")
    assert len(idp.fetches) == 1


def test_unreachable_provider(keys: Keys, clock: FakeClock) -> None:
    calls: list[str] = []
    body = standard_jwks(keys)
    up = False

    def fetch(url: str) -> bytes:
        calls.append(url)
        if not up:
            raise OSError("connection refused")
        return body

    verifier = JwtVerifier(
        settings_for(url="https://idp.example.com/jwks"), clock, fetch, min_refresh_s=5
    )
    token = sign(claims(clock), keys.rsa, "RS256", "rsa1")
    refused(
        verifier,
        token,
        "key set unavailable from https://idp.example.com/jwks (connection refused)",
    )
    refused(verifier, token, "retrying in at most 5 s")  # throttled: no second call
    assert len(calls) == 1
    clock.advance(5)
    up = True
    assert verifier.verify(token).subject == "jwt:alice"
    assert len(calls) == 2
    # Later the provider goes down again: the keys already held stay in use.
    up = False
    clock.advance(301)
    assert verifier.verify(sign(claims(clock), keys.rsa, "RS256", "rsa1"))
    assert len(calls) == 3


def test_provider_serving_garbage(keys: Keys, clock: FakeClock) -> None:
    verifier = JwtVerifier(
        settings_for(url="https://idp.example.com/jwks"), clock, lambda url: b"<html>oops</html>"
    )
    refused(verifier, sign(claims(clock), keys.rsa, "RS256", "rsa1"), "is not JSON")


def test_http_error_from_provider(idp: Idp, keys: Keys, clock: FakeClock) -> None:
    idp.status = 503
    verifier = JwtVerifier(settings_for(url=idp.url), clock)
    refused(verifier, sign(claims(clock), keys.rsa, "RS256", "rsa1"), "key set unavailable")
