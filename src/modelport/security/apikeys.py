"""API keys: the token format, generating, parsing, hashing and verifying keys.

A key reads ``mpk_<key_id>_<secret>``:

* ``mpk`` marks it as a modelport key (secret scanners and people can tell what leaked);
* ``key_id`` is 12 lowercase hex digits (48 random bits), public: it names the key in listings,
  the audit log (``key:<key_id>``) and ``modelport keys revoke``, and finds the stored hash;
* ``secret`` is 32 random bytes in unpadded URL-safe base64 (43 characters). It may contain
  ``_``; the key id never does, so the token splits unambiguously at the first two ``_``.

Only a salted hash of the secret is stored. The secret is 256 random bits, so guessing it is
hopeless whatever the hash costs: slow password KDFs (bcrypt, scrypt, Argon2) exist to protect
low-entropy human passwords and would only add milliseconds to every uncached authentication.
One HMAC-SHA-256 keyed with a per-key random salt is enough; the salt keeps equal secrets (which
never happen) and precomputed tables (which cannot exist for 256-bit secrets) out of the
question, at no cost. Comparisons use :func:`hmac.compare_digest` (constant time).

Everything here is pure; the security store keeps the records.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from modelport.core.errors import Unauthenticated
from modelport.security.identity import Grant

__all__ = [
    "KEY_PREFIX",
    "ApiKey",
    "ApiKeyRecord",
    "generate_key",
    "hash_secret",
    "parse_key",
    "verify_secret",
]

KEY_PREFIX: Final = "mpk"
"""The first part of every modelport API key."""

_KEY_ID_BYTES: Final = 6
_SECRET_BYTES: Final = 32
_SALT_BYTES: Final = 16
_HASH_SCHEME: Final = "hmac-sha256"
_KEY_ID_RE: Final = re.compile(r"[0-9a-f]{12}")
_SECRET_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_EXPECTED: Final = "expected mpk_<key id: 12 hex digits>_<secret: 43 URL-safe base64 characters>"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the caller holds it.

    Args:
        key_id: The public id.
        secret: The secret part (never stored, never logged).
    """

    key_id: str
    secret: str = field(repr=False)

    @property
    def token(self) -> str:
        """The full key, ``mpk_<key_id>_<secret>``, as callers send it."""
        return f"{KEY_PREFIX}_{self.key_id}_{self.secret}"


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What is known about a stored key; never its secret or hash.

    Args:
        key_id: The public id.
        name: What the key is for (free text, may be empty).
        grants: What the key allows.
        created_at: When it was created (UTC).
        created_by: Who created it.
        expires_at: When it stops working (UTC); ``None``: never.
        revoked_at: When it was revoked (UTC); ``None``: not revoked.
        revoked_by: Who revoked it.
    """

    key_id: str
    name: str
    grants: tuple[Grant, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def status(self, now: datetime) -> str:
        """Return ``active``, ``expired`` or ``revoked`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def generate_key() -> ApiKey:
    """Return a new key with a random id and a random 256-bit secret."""
    secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=")
    return ApiKey(secrets.token_hex(_KEY_ID_BYTES), secret.decode("ascii"))


def parse_key(token: str) -> ApiKey:
    """Split a token into its id and secret, checking its form (not whether it is valid).

    Args:
        token: What the caller sent, ``mpk_<key_id>_<secret>``.

    Returns:
        The key's parts.

    Raises:
        Unauthenticated: The token does not have the form of a modelport API key. The message
            describes the expected form and never repeats the token.
    """
    prefix, _, rest = token.strip().partition("_")
    key_id, _, secret = rest.partition("_")
    if (
        prefix != KEY_PREFIX
        or not _KEY_ID_RE.fullmatch(key_id)
        or not _SECRET_RE.fullmatch(secret)
        or not _canonical_base64(secret)
    ):
        raise Unauthenticated(f"malformed API key: {_EXPECTED}")
    return ApiKey(key_id, secret)


def _canonical_base64(secret: str) -> bool:
    """Whether ``secret`` is exactly how 32 bytes encode (no stray bits past the 256th)."""
    try:
        raw = base64.urlsafe_b64decode(secret + "=")
    except (binascii.Error, ValueError):
        return False
    encoded = base64.urlsafe_b64encode(raw).rstrip(b"=")
    return len(raw) == _SECRET_BYTES and encoded == secret.encode("ascii")


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    """Return the stored form of ``secret``: ``hmac-sha256$<salt hex>$<digest hex>``.

    Args:
        secret: The secret part of a key.
        salt: The salt; a fresh random one when omitted (tests pass their own).

    Returns:
        A self-describing string holding the scheme, the salt and the digest.
    """
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hmac.new(salt, secret.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{_HASH_SCHEME}${salt.hex()}${digest}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches the stored hash, compared in constant time.

    A stored value in an unknown form never matches (and takes the same path as a mismatch).
    """
    scheme, _, rest = stored.partition("$")
    salt_hex, _, digest_hex = rest.partition("$")
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        salt = b""
    expected = hmac.new(salt, secret.encode("utf-8"), hashlib.sha256).hexdigest().encode("ascii")
    matches = hmac.compare_digest(expected, digest_hex.encode("utf-8"))
    return matches and scheme == _HASH_SCHEME
