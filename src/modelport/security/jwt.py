"""JWT bearer tokens from an OpenID Connect provider: signature, claims and grants.

:class:`JwtVerifier` accepts only asymmetric signatures (``RS256``, ``ES256``, ``EdDSA``, as
configured) made by a key from the provider's JSON Web Key Set, and checks ``iss``, ``aud``,
``exp`` (required), ``nbf`` and ``iat`` against an injected clock with the configured leeway.

Refused, each with :class:`~modelport.core.errors.Unauthenticated` naming the check that failed:
``alg: none``; HMAC tokens, including the algorithm-confusion trick of an ``HS256`` token signed
with the provider's public key as the secret (no HMAC algorithm is ever accepted, and keys are
key objects, never strings); a key whose type does not fit the algorithm; an unknown ``kid``
(after one refresh of the key set); bad signature, issuer, audience; expired, not yet valid or
future-issued tokens; tokens without ``exp``, ``sub``, ``iss`` or ``aud``; malformed tokens.

Grants come from the roles claim (``settings.roles_claim``; dots walk into nested objects, so
Keycloak's ``realm_access.roles`` works): a list of ``ROLE`` or ``ROLE:PATTERN`` strings (a single
space-separated string is accepted too, as in OAuth's ``scope``). Providers put roles of their own
in that claim (``offline_access``, ``uma_authorization``), so entries that are not modelport roles
are ignored. A valid token that carries no modelport grant at all is refused with
:class:`~modelport.core.errors.PermissionDenied`: the caller is known, and the message says which
claim was read, which is what an operator wiring up a provider needs to see.

Keys come from ``jwks_file`` (read at construction, so a bad file fails at start) or ``jwks_url``
(fetched on first use through the injected ``fetch``). Either is re-read after ``jwks_cache_s``,
and when a token names an unknown ``kid`` (key rotation), at most once per ``min_refresh_s`` so a
stream of made-up ``kid`` values cannot make us hammer the provider. When a refresh fails the keys
already held stay in use. Fetching blocks: call :meth:`JwtVerifier.verify` off the event loop, or
accept one short block per ``jwks_cache_s``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt as pyjwt
from jwt.exceptions import (
    DecodeError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)

from modelport.core.clock import Clock
from modelport.core.errors import ConfigError, PermissionDenied, Unauthenticated
from modelport.core.settings import OidcSettings
from modelport.security.identity import AuthMethod, Grant, Identity, Role, parse_grant

__all__ = ["JwtVerifier", "fetch_url", "grants_from_claims"]

_FETCH_TIMEOUT_S: Final = 5.0
_MAX_JWKS_BYTES: Final = 1024 * 1024

# Which JWK may verify which algorithm: key type and, for curves, the allowed curves.
_KEY_FOR_ALG: Final[dict[str, tuple[str, frozenset[str] | None]]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
_KEY_WORDS: Final[dict[str, str]] = {
    "RS256": "an RSA key",
    "ES256": "an EC P-256 key",
    "EdDSA": "an OKP Ed25519/Ed448 key",
}


def fetch_url(url: str) -> bytes:
    """Fetch ``url`` with a short timeout (the default ``fetch`` of :class:`JwtVerifier`).

    Raises:
        OSError: The request failed or timed out.
        ValueError: The response is larger than 1 MiB.
    """
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT_S) as response:
            body: bytes = response.read(_MAX_JWKS_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response; do not leave the socket to the garbage collector
        raise OSError(f"HTTP {exc.code} {exc.reason}") from None
    if len(body) > _MAX_JWKS_BYTES:
        raise ValueError(f"key set at {url} is larger than {_MAX_JWKS_BYTES} bytes")
    return body


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    algorithm: str
    jwk: pyjwt.PyJWK


@dataclass(frozen=True, slots=True)
class _KeySet:
    by_kid: Mapping[str | None, tuple[_Key, ...]]
    loaded_at: float

    def candidates(self, kid: str | None) -> tuple[_Key, ...]:
        if kid is not None:
            return self.by_kid.get(kid, ())
        return tuple(k for keys in self.by_kid.values() for k in keys)


def _key_algorithm(data: Mapping[str, Any], accepted: frozenset[str]) -> str | None:
    """Return the one accepted algorithm this JWK can verify, or ``None`` to skip it."""
    if data.get("use", "sig") != "sig":
        return None
    kty, crv, alg = data.get("kty"), data.get("crv"), data.get("alg")
    for name, (want_kty, curves) in _KEY_FOR_ALG.items():
        if kty == want_kty and (curves is None or crv in curves):
            if name not in accepted or (alg is not None and alg != name):
                return None
            return name
    return None


def _parse_jwks(raw: bytes, source: str, accepted: frozenset[str], now: float) -> _KeySet:
    """Parse a JSON Web Key Set, keeping the signature keys usable with ``accepted``.

    Raises:
        ValueError: Not a key set, or no usable key in it.
    """
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"key set from {source} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError(f'key set from {source} must be a JSON object {{"keys": [...]}}')
    by_kid: dict[str | None, list[_Key]] = {}
    for data in doc["keys"]:
        if not isinstance(data, dict):
            continue
        algorithm = _key_algorithm(data, accepted)
        if algorithm is None:
            continue
        kid = data.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        try:
            jwk = pyjwt.PyJWK(data, algorithm=algorithm)
        except (PyJWTError, ValueError, TypeError):
            continue  # one broken key must not take the others down
        by_kid.setdefault(kid, []).append(_Key(kid, algorithm, jwk))
    if not by_kid:
        algs = ", ".join(sorted(accepted))
        raise ValueError(f"key set from {source} has no signature key usable with {algs}")
    return _KeySet({k: tuple(v) for k, v in by_kid.items()}, now)


def _walk(claims: Mapping[str, Any], path: str) -> Any:
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def grants_from_claims(claims: Mapping[str, Any], roles_claim: str) -> tuple[Grant, ...]:
    """Return the modelport grants in ``claims[roles_claim]`` (dotted path), ignoring others.

    Args:
        claims: The verified token payload.
        roles_claim: Claim name; dots walk into nested objects (``realm_access.roles``).

    Returns:
        The grants, in claim order; entries that are not ``ROLE`` or ``ROLE:PATTERN`` with a
        modelport role are skipped.

    Raises:
        PermissionDenied: The claim is missing, not a list of strings, or grants nothing.
    """
    value = _walk(claims, roles_claim)
    if value is None:
        raise PermissionDenied(
            f"token has no {roles_claim!r} claim, so it grants no modelport role"
        )
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PermissionDenied(
            f"token claim {roles_claim!r} must be a list of strings (ROLE or ROLE:PATTERN)"
        )
    grants: list[Grant] = []
    for text in value:
        role, _, _ = text.partition(":")
        if role.strip().upper() not in Role.__members__:
            continue
        try:
            grants.append(parse_grant(text))
        except ConfigError:
            continue
    if not grants:
        roles = ", ".join(r.label for r in Role)
        raise PermissionDenied(
            f"token claim {roles_claim!r} grants no modelport role: expected entries ROLE or "
            f"ROLE:PATTERN with ROLE one of {roles}"
        )
    return tuple(grants)


def _check_url(url: str) -> None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return
    if parsed.scheme == "http" and parsed.hostname:
        host = parsed.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if loopback:
            return
        raise ConfigError(
            f"jwks_url {url!r} must use https: keys fetched over plain http can be replaced in "
            "transit (http is allowed for loopback addresses only)"
        )
    raise ConfigError(f"jwks_url {url!r} must be an https:// URL")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unauthenticated(f"token claim {name!r} must be a number (seconds since the epoch)")
    return float(value)


class JwtVerifier:
    """Verify bearer JWTs against an OIDC provider's keys and turn them into identities.

    Args:
        settings: Issuer, audience, key source, roles claim, algorithms and leeway.
        clock: Time source for claim checks (``now``) and key-set caching (``monotonic``).
        fetch: Fetches ``settings.jwks_url``; the default uses :mod:`urllib` with a 5 s timeout.
        min_refresh_s: Least time between two refreshes triggered by unknown ``kid`` values.

    Raises:
        ConfigError: Issuer, audience or key source missing, ``jwks_url`` not https (loopback
            excepted), or ``jwks_file`` unreadable or without a usable key.
    """

    def __init__(
        self,
        settings: OidcSettings,
        clock: Clock,
        fetch: Callable[[str], bytes] | None = None,
        *,
        min_refresh_s: float = 10.0,
    ) -> None:
        if not settings.issuer:
            raise ConfigError("JWT verification needs security.auth.oidc.issuer")
        if not settings.audience:
            raise ConfigError("JWT verification needs security.auth.oidc.audience")
        if (settings.jwks_file is None) == (settings.jwks_url is None):
            raise ConfigError("set exactly one of security.auth.oidc.jwks_file or jwks_url")
        if not settings.algorithms:
            raise ConfigError("security.auth.oidc.algorithms must name at least one algorithm")
        if min_refresh_s < 0:
            raise ConfigError(f"min_refresh_s must be >= 0, got {min_refresh_s}")
        if settings.jwks_url is not None:
            _check_url(settings.jwks_url)
        self._settings = settings
        self._issuer: str = settings.issuer
        self._audience: str = settings.audience
        self._clock = clock
        self._fetch = fetch if fetch is not None else fetch_url
        self._accepted = frozenset(settings.algorithms)
        self._min_refresh_s = min_refresh_s
        self._lock = threading.Lock()
        self._keys: _KeySet | None = None
        self._last_attempt: float | None = None
        self._last_error = ""
        if settings.jwks_file is not None:
            try:
                self._keys = self._load()
            except (OSError, ValueError) as exc:
                raise ConfigError(f"security.auth.oidc.jwks_file: {exc}") from None

    @property
    def settings(self) -> OidcSettings:
        """The settings this verifier was built with."""
        return self._settings

    def _source(self) -> str:
        return str(self._settings.jwks_file or self._settings.jwks_url)

    def _load(self) -> _KeySet:
        now = self._clock.monotonic()
        self._last_attempt = now
        if self._settings.jwks_file is not None:
            raw = self._settings.jwks_file.read_bytes()
        else:
            raw = self._fetch(str(self._settings.jwks_url))
        return _parse_jwks(raw, self._source(), self._accepted, now)

    def _refresh(self, *, forced: bool) -> _KeySet | None:
        """Re-read the key set when stale, or when ``forced`` and not throttled.

        Returns the current key set (possibly the old one when the refresh failed or was
        throttled), or ``None`` when no key set was ever loaded.
        """
        with self._lock:
            now = self._clock.monotonic()
            keys = self._keys
            stale = keys is None or now - keys.loaded_at >= self._settings.jwks_cache_s
            throttled = (
                self._last_attempt is not None and now - self._last_attempt < self._min_refresh_s
            )
            if throttled and keys is None:
                raise Unauthenticated(
                    f"cannot verify tokens: key set unavailable from {self._source()} "
                    f"({self._last_error}); retrying in at most {self._min_refresh_s:g} s"
                )
            if throttled or not (stale or forced):
                return keys
            try:
                self._keys = self._load()
            except (OSError, ValueError) as exc:
                self._last_error = str(exc)
                if keys is None:
                    raise Unauthenticated(
                        f"cannot verify tokens: key set unavailable from {self._source()} ({exc})"
                    ) from None
            return self._keys

    def _keys_now(self) -> _KeySet | None:
        keys = self._keys
        if keys is None or self._clock.monotonic() - keys.loaded_at >= self._settings.jwks_cache_s:
            return self._refresh(forced=False)
        return keys

    def _pick_key(self, kid: str | None, alg: str) -> _Key:
        keys = self._keys_now()
        found = keys.candidates(kid) if keys is not None else ()
        if not found:
            keys = self._refresh(forced=True)
            found = keys.candidates(kid) if keys is not None else ()
        if not found:
            if kid is None:
                raise Unauthenticated("token has no 'kid' header and no key in the key set fits")
            raise Unauthenticated(f"token signed with unknown key id 'kid' {kid!r}")
        fitting = [k for k in found if k.algorithm == alg]
        if not fitting and kid is None:
            raise Unauthenticated(
                f"token has no 'kid' header and no key in the key set fits {alg} "
                f"(it needs {_KEY_WORDS[alg]})"
            )
        if not fitting:
            got = ", ".join(sorted({k.algorithm for k in found}))
            raise Unauthenticated(
                f"token algorithm {alg} needs {_KEY_WORDS[alg]}, but key {kid!r} is for {got}"
            )
        if kid is None and len(fitting) > 1:
            raise Unauthenticated("token has no 'kid' header and several keys could have signed it")
        return fitting[0]

    def _header(self, token: str) -> tuple[str, str | None]:
        try:
            header = pyjwt.get_unverified_header(token)
        except PyJWTError as exc:
            raise Unauthenticated(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or not alg:
            raise Unauthenticated("malformed token: header 'alg' is missing or not a string")
        if alg.lower() == "none":
            raise Unauthenticated("unsigned token (alg 'none') refused")
        if alg not in self._accepted:
            algs = ", ".join(a for a in _KEY_FOR_ALG if a in self._accepted)
            raise Unauthenticated(
                f"token algorithm {alg!r} is not accepted: expected one of {algs}"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("malformed token: header 'kid' must be a string")
        return alg, kid

    def _decode(self, token: str, key: _Key) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = pyjwt.decode(
                token,
                key=key.jwk,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    # Time claims are checked below against the injected clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iss", "aud", "sub"],
                    "enforce_minimum_key_length": True,
                },
            )
        except InvalidSignatureError:
            raise Unauthenticated("token signature is invalid") from None
        except MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token has no {exc.claim!r} claim (required)") from None
        except InvalidAudienceError:
            raise Unauthenticated(
                f"token audience 'aud' is wrong: expected {self._audience!r}"
            ) from None
        except InvalidIssuerError:
            raise Unauthenticated(
                f"token issuer 'iss' is wrong: expected {self._issuer!r}"
            ) from None
        except InvalidKeyError as exc:
            raise Unauthenticated(f"token key refused: {exc}") from None
        except InvalidAlgorithmError as exc:
            raise Unauthenticated(f"token algorithm refused: {exc}") from None
        except DecodeError as exc:
            raise Unauthenticated(f"malformed token: {exc}") from None
        except PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> float:
        now = self._clock.now().timestamp()
        leeway = self._settings.leeway_s
        exp = _number(claims, "exp")
        if exp is None:  # pragma: no cover - "require" refuses it first
            raise Unauthenticated("token has no 'exp' claim (required)")
        if exp <= now - leeway:
            raise Unauthenticated(f"token expired {now - exp:.0f} s ago ('exp')")
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf > now + leeway:
            raise Unauthenticated(f"token is not valid yet ('nbf' is {nbf - now:.0f} s ahead)")
        iat = _number(claims, "iat")
        if iat is not None and iat > now + leeway:
            raise Unauthenticated(
                f"token was issued in the future ('iat' is {iat - now:.0f} s ahead)"
            )
        return exp

    def verify(self, token: str) -> Identity:
        """Verify ``token`` and return who it names and what it grants.

        Args:
            token: The compact JWT from ``Authorization: Bearer <token>``.

        Returns:
            ``Identity("jwt:<sub>", grants, AuthMethod.JWT, expires_at=exp)``.

        Raises:
            Unauthenticated: Any check failed; the message names the check.
            PermissionDenied: The token is valid but grants no modelport role.
        """
        try:
            alg, kid = self._header(token)
            key = self._pick_key(kid, alg)
            claims = self._decode(token, key)
            exp = self._check_times(claims)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            # Hostile input must never become a 500.
            raise Unauthenticated(f"malformed token: {exc}") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("token claim 'sub' must be a non-empty string")
        grants = grants_from_claims(claims, self._settings.roles_claim)
        return Identity(f"jwt:{subject}", grants, AuthMethod.JWT, expires_at=exp)
