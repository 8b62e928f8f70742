"""Authentication: from an ``Authorization`` header or a client certificate to an identity.

One entry point, :meth:`Authenticator.authenticate`, for every transport:

* ``Authorization: Bearer mpk_...``: an API key, resolved by an :class:`ApiKeyResolver`;
* ``Authorization: Bearer <header>.<payload>.<signature>``: a JWT, checked by a
  :class:`~modelport.security.jwt.JwtVerifier`;
* no ``Authorization`` but a verified client certificate: its RFC 4514 subject, looked up in
  ``security.auth.mtls_identities``. When both are present the bearer credential decides (mTLS
  then only secures the connection).

Successful decisions are cached per credential for ``cache_ttl_s`` (never past the identity's
``expires_at``), keyed by the SHA-256 of the token so the cache holds no secrets. A revoked key
is therefore refused at the latest ``cache_ttl_s`` later, unless :meth:`Authenticator.forget` or
:meth:`Authenticator.clear` is called. Failures are not cached: a wrong token costs a resolver
call each time, and the rate limiter is what bounds that. The cached path is one hash, one dict
lookup and one clock read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

from modelport.core.clock import Clock
from modelport.core.errors import ConfigError, Unauthenticated
from modelport.core.settings import AuthSettings
from modelport.security.certs import normalize_subject
from modelport.security.identity import AuthMethod, Grant, Identity, parse_grant
from modelport.security.jwt import JwtVerifier

__all__ = [
    "API_KEY_PREFIX",
    "ApiKeyResolver",
    "Authenticator",
    "mtls_identities_from_settings",
]

API_KEY_PREFIX: Final = "mpk_"
MAX_TOKEN_CHARS: Final = 8192
_JWT_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+=*\.[A-Za-z0-9_-]+=*\.[A-Za-z0-9_-]*=*")
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9._~+/-]{0,19}")
_EXPECTED: Final = "expected `Authorization: Bearer <token>`"
_MISSING: Final = "missing credential: send Authorization: Bearer <API key or token>"


class ApiKeyResolver(Protocol):
    """Turns an API key (``mpk_...``) into the identity it was issued to."""

    def resolve_api_key(self, token: str) -> Identity:
        """Return the key's identity.

        Raises:
            Unauthenticated: Unknown, malformed, expired or revoked key.
        """
        ...


def mtls_identities_from_settings(auth: AuthSettings) -> dict[str, tuple[Grant, ...]]:
    """Parse ``security.auth.mtls_identities`` into subject -> grants.

    Raises:
        ConfigError: A subject is not RFC 4514, or a grant is not ``ROLE`` or ``ROLE:PATTERN``.
    """
    out: dict[str, tuple[Grant, ...]] = {}
    for subject, texts in auth.mtls_identities.items():
        try:
            out[normalize_subject(subject)] = tuple(parse_grant(t) for t in texts)
        except ConfigError as exc:
            raise ConfigError(f"security.auth.mtls_identities[{subject!r}]: {exc}") from None
    return out


def _token(authorization: str) -> str:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        seen = f" (got scheme {scheme!r})" if token and _SCHEME.fullmatch(scheme) else ""
        raise Unauthenticated(f"unsupported Authorization header{seen}: {_EXPECTED}")
    token = token.strip()
    if not token or " " in token:
        raise Unauthenticated(f"malformed Authorization header: {_EXPECTED}")
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated(f"bearer token is longer than {MAX_TOKEN_CHARS} characters")
    return token


class Authenticator:
    """Authenticate callers by API key, JWT or client certificate, with a small cache.

    Args:
        api_keys: Resolves ``mpk_`` keys; ``None`` refuses API keys.
        jwt: Verifies JWTs; ``None`` refuses JWTs (no OIDC issuer configured).
        mtls_identities: Client-certificate subject (RFC 4514) -> grants; subjects are
            normalised, so ``CN=a, O=b`` and ``CN=a,O=b`` are the same.
        clock: Time source (``monotonic`` for the cache, ``now`` for ``expires_at``).
        cache_ttl_s: How long a successful decision is reused; ``0`` turns the cache off.
        cache_size: Most decisions cached; the oldest is dropped first.

    Raises:
        ConfigError: Negative TTL, cache size below 1, or a subject that is not RFC 4514.
    """

    def __init__(
        self,
        api_keys: ApiKeyResolver | None,
        jwt: JwtVerifier | None,
        mtls_identities: Mapping[str, Sequence[Grant]],
        clock: Clock,
        cache_ttl_s: float,
        cache_size: int = 10_000,
    ) -> None:
        if cache_ttl_s < 0:
            raise ConfigError(f"cache_ttl_s must be >= 0, got {cache_ttl_s}")
        if cache_size < 1:
            raise ConfigError(f"cache_size must be >= 1, got {cache_size}")
        self._api_keys = api_keys
        self._jwt = jwt
        self._clock = clock
        self._ttl = float(cache_ttl_s)
        self._size = cache_size
        self._mtls: dict[str, Identity] = {}
        for subject, grants in mtls_identities.items():
            canonical = normalize_subject(subject)
            self._mtls[canonical] = Identity(f"cert:{canonical}", tuple(grants), AuthMethod.MTLS)
        # sha256(token) -> (identity, monotonic deadline); insertion order = age.
        self._cache: dict[bytes, tuple[Identity, float]] = {}

    def authenticate(self, authorization: str | None, peer_subject: str | None) -> Identity:
        """Return who is calling.

        Args:
            authorization: The ``Authorization`` header (or gRPC ``authorization`` metadata),
                ``None`` when absent.
            peer_subject: The verified client certificate's RFC 4514 subject (from
                :func:`~modelport.security.certs.certificate_subject`), ``None`` without one.

        Raises:
            Unauthenticated: No credential, a malformed header, or a credential refused.
            PermissionDenied: A valid JWT that grants no modelport role.
        """
        if authorization is not None and authorization.strip():
            return self._bearer(_token(authorization))
        if peer_subject:
            identity = self._mtls.get(peer_subject)
            if identity is None:
                raise Unauthenticated(
                    f"client certificate subject {peer_subject!r} is not mapped to any grants "
                    "(security.auth.mtls_identities)"
                )
            return identity
        raise Unauthenticated(_MISSING)

    def _bearer(self, token: str) -> Identity:
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._cache.get(digest)
        if hit is not None:
            if self._clock.monotonic() < hit[1]:
                return hit[0]
            self._cache.pop(digest, None)
        identity = self._resolve(token)
        if self._ttl > 0:
            self._remember(digest, identity)
        return identity

    def _resolve(self, token: str) -> Identity:
        if token.startswith(API_KEY_PREFIX):
            if self._api_keys is None:
                raise Unauthenticated("API keys are not accepted by this server")
            return self._api_keys.resolve_api_key(token)
        if _JWT_SHAPE.fullmatch(token):
            if self._jwt is None:
                raise Unauthenticated(
                    "JWT bearer tokens are not accepted: no OIDC issuer is configured "
                    "(security.auth.oidc)"
                )
            return self._jwt.verify(token)
        raise Unauthenticated(
            f"unrecognised bearer token: expected an API key ({API_KEY_PREFIX}...) or a JWT "
            "(three base64url parts separated by dots)"
        )

    def _remember(self, digest: bytes, identity: Identity) -> None:
        ttl = self._ttl
        if identity.expires_at is not None:
            ttl = min(ttl, identity.expires_at - self._clock.now().timestamp())
            if ttl <= 0:
                return
        while len(self._cache) >= self._size:
            try:
                del self._cache[next(iter(self._cache))]
            except (KeyError, StopIteration, RuntimeError):  # another thread got there first
                break
        self._cache[digest] = (identity, self._clock.monotonic() + ttl)

    def forget(self, token: str) -> None:
        """Drop the cached decision for ``token`` (after revoking it, say)."""
        self._cache.pop(hashlib.sha256(token.encode()).digest(), None)

    def clear(self) -> None:
        """Drop every cached decision."""
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)
