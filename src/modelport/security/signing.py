"""Signed artifact manifests: SHA-256 of every file of a model version, signed with Ed25519.

The layout follows the OpenSSF model-signing format (``model_signing`` v1.0): an in-toto
Statement v1 whose predicate lists every file ("resource") with its SHA-256, wrapped in a DSSE
envelope and signed over DSSE's pre-authentication encoding. We sign with an Ed25519 key instead
of Sigstore, and add a ``modelport`` predicate section binding the model, version and
jurisdiction of the record and the signer's identity::

    DSSE envelope (the manifest file)
      {"payloadType": "application/vnd.in-toto+json",
       "payload": base64(canonical JSON of the statement),
       "signatures": [{"keyid": "ed25519:<sha256 of the raw public key>", "sig": base64(...)}]}

    statement
      {"_type": "https://in-toto.io/Statement/v1",
       "subject": [{"name": "fraud@3", "digest": {"sha256": <see below>}}],
       "predicateType": "https://model_signing/signature/v1.0",
       "predicate": {
         "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false},
         "resources": [{"name": "registered/model.joblib", "algorithm": "sha256",
                        "digest": "<hex>", "size": 1234}, ...],
         "modelport": {"model": "fraud", "version": 3, "jurisdiction": "eu",
                       "signer": "alice"}}}

The subject digest is the SHA-256 of the resources' raw digests concatenated in name order (as in
model_signing), so the subject names the exact set of files. Canonical JSON is UTF-8 with sorted
keys and no insignificant whitespace (:func:`canonical_json`), so the same manifest always
serialises to the same bytes; the signature covers the payload bytes as stored.

Verification fails closed: a missing envelope, no signature, a key that is not trusted, a bad
signature, or a statement that does not describe what is loaded are all
:class:`~modelport.core.errors.IntegrityError`. Trust is a set of Ed25519 public keys (this
installation's own key plus configured ones), each named by its key id.

Key files are PEM: the private key PKCS#8 (created with mode 0600, its public half written next to
it as ``NAME.pub.pem`` to hand to other installations), public keys SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from modelport.core.errors import ConfigError, IntegrityError
from modelport.security.kek import write_private_file

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "Manifest",
    "Resource",
    "SignedManifest",
    "canonical_json",
    "key_id",
    "load_or_create_signing_key",
    "load_public_key",
    "pae",
    "public_key_pem",
    "sign_manifest",
    "statement",
    "trusted_keys",
    "verify_manifest",
]

PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE: Final = "https://model_signing/signature/v1.0"


@dataclass(frozen=True, slots=True)
class Resource:
    """One signed file: its name in the manifest, SHA-256 (hex) and size."""

    name: str
    digest: str
    size: int

    @property
    def digest_text(self) -> str:
        """The digest as ``sha256:<hex>``."""
        return f"sha256:{self.digest}"


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a signature vouches for: the files of one model version and its record."""

    model: str
    version: int
    jurisdiction: str
    signer: str
    resources: tuple[Resource, ...]

    def resource_for(self, digest: str) -> Resource | None:
        """Return the resource whose digest is ``digest`` (``sha256:<hex>``), if any."""
        hex_digest = digest.removeprefix("sha256:")
        return next((r for r in self.resources if r.digest == hex_digest), None)


@dataclass(frozen=True, slots=True)
class SignedManifest:
    """A manifest whose signature verified, and the key that signed it."""

    manifest: Manifest
    key_id: str


def canonical_json(value: Any) -> bytes:
    """Return ``value`` as canonical JSON: UTF-8, sorted keys, no whitespace, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """Return DSSE's pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def key_id(public_key: Ed25519PublicKey) -> str:
    """Return ``ed25519:<sha256 hex of the raw 32-byte public key>``."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"ed25519:{hashlib.sha256(raw).hexdigest()}"


def _subject_digest(resources: Iterable[Resource]) -> str:
    ordered = sorted(resources, key=lambda r: r.name)
    return hashlib.sha256(b"".join(bytes.fromhex(r.digest) for r in ordered)).hexdigest()


def statement(manifest: Manifest) -> dict[str, Any]:
    """Return the in-toto statement of ``manifest``."""
    resources = sorted(manifest.resources, key=lambda r: r.name)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": f"{manifest.model}@{manifest.version}",
                "digest": {"sha256": _subject_digest(resources)},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
            "resources": [
                {"name": r.name, "algorithm": "sha256", "digest": r.digest, "size": r.size}
                for r in resources
            ],
            "modelport": {
                "model": manifest.model,
                "version": manifest.version,
                "jurisdiction": manifest.jurisdiction,
                "signer": manifest.signer,
            },
        },
    }


def sign_manifest(manifest: Manifest, key: Ed25519PrivateKey) -> bytes:
    """Return the DSSE envelope (JSON bytes) of ``manifest`` signed with ``key``.

    Raises:
        ValueError: Two resources share a name, or a digest is not 64 hex digits.
    """
    names = [r.name for r in manifest.resources]
    if len(set(names)) != len(names):
        raise ValueError(f"resource names must be unique, got {names}")
    for resource in manifest.resources:
        if len(bytes.fromhex(resource.digest)) != 32:
            raise ValueError(f"resource {resource.name!r} digest is not SHA-256 hex")
    payload = canonical_json(statement(manifest))
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {"keyid": key_id(key.public_key()), "sig": base64.b64encode(signature).decode()}
        ],
    }
    return json.dumps(envelope, indent=2).encode()


def verify_manifest(envelope: bytes, trusted: Mapping[str, Ed25519PublicKey]) -> SignedManifest:
    """Check the envelope's signature against trusted keys and return its manifest.

    Args:
        envelope: The manifest file's bytes.
        trusted: Trusted public keys by key id (:func:`trusted_keys`).

    Raises:
        IntegrityError: The envelope is malformed or unsigned, no signature is by a trusted key,
            the signature does not verify, or the statement is inconsistent.
    """
    try:
        doc = json.loads(envelope)
        payload_type = doc["payloadType"]
        payload = base64.b64decode(doc["payload"], validate=True)
        signatures = doc.get("signatures") or []
        if not isinstance(signatures, list):
            raise TypeError("signatures is not a list")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise IntegrityError(f"the signed manifest is malformed: {exc}") from None
    if payload_type != PAYLOAD_TYPE:
        raise IntegrityError(
            f"the signed manifest has payload type {payload_type!r}, expected {PAYLOAD_TYPE!r}"
        )
    if not signatures:
        raise IntegrityError("the manifest carries no signature")
    message = pae(PAYLOAD_TYPE, payload)
    claimed: list[str] = []
    any_trusted = False
    for entry in signatures:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("keyid")
        kid = kid if isinstance(kid, str) else ""
        claimed.append(kid or "a key without id")
        # A signature without key id is tried against every trusted key (DSSE makes it optional).
        candidates = ([trusted[kid]] if kid in trusted else []) if kid else list(trusted.values())
        any_trusted = any_trusted or bool(candidates)
        try:
            sig = base64.b64decode(str(entry.get("sig", "")), validate=True)
        except (ValueError, binascii.Error):
            continue
        for public in candidates:
            try:
                public.verify(sig, message)
            except InvalidSignature:
                continue
            return SignedManifest(_parse_statement(payload), key_id(public))
    signers = ", ".join(claimed) or "nobody"
    if not any_trusted:
        raise IntegrityError(
            f"the manifest is signed by {signers}, which is not a trusted signer "
            "(add its public key to security.artifacts.trusted_signers to trust it)"
        )
    raise IntegrityError(
        f"the manifest signature by {signers} does not verify: the manifest was altered"
    )


def _parse_statement(payload: bytes) -> Manifest:
    try:
        doc = json.loads(payload)
        if doc["_type"] != STATEMENT_TYPE or doc["predicateType"] != PREDICATE_TYPE:
            raise ValueError("not a model-signing statement")
        predicate = doc["predicate"]
        own = predicate["modelport"]
        resources = tuple(
            Resource(name=str(r["name"]), digest=str(r["digest"]), size=int(r["size"]))
            for r in predicate["resources"]
            if r["algorithm"] == "sha256"
        )
        subject = doc["subject"][0]
        version = own["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError("modelport.version is not an integer")
        manifest = Manifest(
            model=str(own["model"]),
            version=version,
            jurisdiction=str(own["jurisdiction"]),
            signer=str(own["signer"]),
            resources=resources,
        )
        expected = _subject_digest(resources)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise IntegrityError(f"the signed statement is malformed: {exc}") from None
    if subject.get("digest", {}).get("sha256") != expected:
        raise IntegrityError("the manifest's subject digest does not match its resources")
    return manifest


# -- key files --------------------------------------------------------------------------------


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """Return the public key as SubjectPublicKeyInfo PEM."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"cannot read the signing key {path}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the signing key {path} is not an unencrypted PEM key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"the signing key {path} is not an Ed25519 key")
    return key


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Return the Ed25519 signing key at ``path``, creating it (mode 0600) on first use.

    A new key's public half is written next to it as ``NAME.pub.pem`` (also mode 0600).

    Raises:
        ConfigError: The file is unreadable, not an Ed25519 PEM key, or not writable when new.
    """
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        if write_private_file(path, pem, exclusive=True):
            # Private too (0600), like everything in the data directory; hand out a copy.
            public = path.with_name(path.name.removesuffix(".pem") + ".pub.pem")
            write_private_file(public, public_key_pem(key.public_key()))
            return key
    return _load_private(path)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Return the Ed25519 public key in a PEM file (a private key file gives its public half).

    Raises:
        ConfigError: The file is missing or holds no Ed25519 key.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the trusted signer key {path}: {exc}") from None
    try:
        key: object = serialization.load_pem_public_key(raw)
    except ValueError:
        key = _load_private(path).public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"the trusted signer key {path} is not an Ed25519 public key")
    return key


def trusted_keys(keys: Iterable[Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    """Return ``keys`` by key id."""
    return {key_id(k): k for k in keys}
