"""Envelope encryption of artifacts: streamed AES-256-GCM chunks under a fresh data key.

Each artifact gets its own random 256-bit *data key*. The artifact is encrypted with it into a
*sealed object*; the data key is stored only wrapped by a key-encryption key
(:mod:`modelport.security.kek`) in a small *key record*, a separate file, so rotating the KEK
rewrites key records and never touches the (large) sealed objects.

Sealed object layout (all integers big-endian)::

    header   magic "MPSEAL1" + LF (8) | chunk size u32 (4) | object id (16, random) |
             SHA-256 of the plaintext (32)                                        = 60 bytes
    chunks   AES-256-GCM(data key, nonce_i, plaintext_i, aad=header) = ciphertext_i || tag (16)

Every chunk holds ``chunk size`` plaintext bytes except the last, which holds 0 to ``chunk
size`` (an empty artifact is one empty final chunk). The nonce follows the STREAM construction
(Hoang, Reyhanitabar, Rogaway, Vizár, 2015): ``object id[:7] || chunk index u32 || final flag``
(1 for the last chunk, else 0). So a chunk decrypts only at its own position, and only the real
last chunk decrypts as last: reordered, dropped, duplicated or appended chunks and truncation
(even at a chunk boundary) all fail authentication. The header, authenticated as every chunk's
associated data, binds the plaintext digest and the chunk size. Chunks are read and written one
at a time, so memory use is one chunk (:data:`CHUNK_SIZE`, 1 MiB) whatever the artifact's size.

The data key is wrapped with associated data that binds the *record* the artifact belongs to
(:class:`Binding`: digest, model, version, jurisdiction) and the sealed object's id. A sealed
object moved to another record therefore fails to decrypt: its own key record does not unwrap
under the other record's binding, and the other record's key does not open it.

Key record (JSON, ``modelport.key/v1``)::

    {"format": "modelport.key/v1", "kek_id": "3f1c...", "wrapped": "<base64>",
     "object_id": "<32 hex>",
     "binding": {"digest": "sha256:...", "model": "fraud", "version": 3, "jurisdiction": "eu"}}

The binding in the record is informative (it lets a rotation re-wrap the key without the
registry, and errors say where a record came from); unwrapping on load always uses the binding
the caller expects, never the one written in the file.

All functions here are pure over file objects and bytes, except that they call the provider.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass
from typing import IO, Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from modelport.core.errors import IntegrityError
from modelport.security.kek import KEK_BYTES, KeyProvider, WrappedKey

__all__ = [
    "CHUNK_SIZE",
    "HEADER_SIZE",
    "MAX_CHUNK_SIZE",
    "Binding",
    "KeyRecord",
    "SealedHeader",
    "decode_key_record",
    "encode_key_record",
    "new_data_key",
    "open_sealed",
    "read_header",
    "rewrap",
    "seal",
    "unwrap_data_key",
    "wrap_data_key",
]

CHUNK_SIZE: Final = 1024 * 1024
"""Plaintext bytes per chunk (1 MiB: 16 bytes of tag per MiB, one chunk in memory)."""

MAX_CHUNK_SIZE: Final = 64 * 1024 * 1024
"""Largest chunk size a header may declare (bounds memory when reading a damaged header)."""

_MAGIC: Final = b"MPSEAL1\n"
_HEADER = struct.Struct(">8sI16s32s")
HEADER_SIZE: Final = _HEADER.size
"""Bytes of the sealed object header."""

_TAG: Final = 16
_MAX_CHUNKS: Final = 2**32
_KEY_FORMAT: Final = "modelport.key/v1"
_AAD_DOMAIN: Final = b"modelport.artifact-data-key/v1"


def new_data_key() -> bytes:
    """Return a fresh random AES-256 data key."""
    return AESGCM.generate_key(bit_length=KEK_BYTES * 8)


@dataclass(frozen=True, slots=True)
class Binding:
    """The registry record an artifact belongs to; bound into its data key's wrapping."""

    digest: str
    model: str
    version: int
    jurisdiction: str

    def aad(self, object_id: bytes) -> bytes:
        """Return the associated data for wrapping the data key of object ``object_id``.

        Each field is length-prefixed, so no two different bindings encode alike.
        """
        parts = [
            _AAD_DOMAIN,
            self.digest.encode(),
            self.model.encode(),
            str(self.version).encode(),
            self.jurisdiction.encode(),
            object_id,
        ]
        return b"".join(struct.pack(">I", len(p)) + p for p in parts)

    def describe(self) -> str:
        """Return ``model@version (jurisdiction)`` for messages."""
        return f"{self.model}@{self.version} ({self.jurisdiction})"

    def to_json(self) -> dict[str, Any]:
        """Return the binding as JSON-ready data."""
        return {
            "digest": self.digest,
            "model": self.model,
            "version": self.version,
            "jurisdiction": self.jurisdiction,
        }


@dataclass(frozen=True, slots=True)
class SealedHeader:
    """The parsed header of a sealed object."""

    chunk_size: int
    object_id: bytes
    digest: bytes

    def encode(self) -> bytes:
        """Return the header's bytes (the associated data of every chunk)."""
        return _HEADER.pack(_MAGIC, self.chunk_size, self.object_id, self.digest)

    @property
    def digest_text(self) -> str:
        """The plaintext digest as ``sha256:<hex>``."""
        return f"sha256:{self.digest.hex()}"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A wrapped data key and what it is bound to (the content of a key record file)."""

    wrapped: WrappedKey
    object_id: bytes
    binding: Binding


def _read_up_to(src: IO[bytes], size: int) -> bytes:
    parts, left = [], size
    while left:
        part = src.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _nonce(object_id: bytes, index: int, final: bool) -> bytes:
    if index >= _MAX_CHUNKS:
        raise IntegrityError(f"more than {_MAX_CHUNKS} chunks: the object is too large to seal")
    return object_id[:7] + struct.pack(">IB", index, 1 if final else 0)


def seal(
    src: IO[bytes],
    dst: IO[bytes],
    data_key: bytes,
    digest: str,
    *,
    chunk_size: int = CHUNK_SIZE,
    object_id: bytes | None = None,
) -> SealedHeader:
    """Encrypt ``src`` into ``dst`` chunk by chunk.

    Args:
        src: Plaintext, read from its current position to the end.
        dst: Where the sealed object is written.
        data_key: 32-byte AES key (:func:`new_data_key`); use each key for one object only.
        digest: ``sha256:<hex>`` of the plaintext, computed beforehand; it goes into the header.
        chunk_size: Plaintext bytes per chunk.
        object_id: 16 bytes naming the object (random when ``None``).

    Returns:
        The header written.

    Raises:
        IntegrityError: ``src`` does not hash to ``digest`` (it changed while being sealed);
            ``dst`` then holds an unusable object the caller must discard.
        ValueError: Bad key, digest, chunk size or object id (a programming error).
    """
    if len(data_key) != KEK_BYTES:
        raise ValueError(f"a data key is {KEK_BYTES} bytes, got {len(data_key)}")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be 1..{MAX_CHUNK_SIZE}, got {chunk_size}")
    expected = bytes.fromhex(digest.removeprefix("sha256:"))
    if not digest.startswith("sha256:") or len(expected) != 32:
        raise ValueError(f"digest must be sha256:<64 hex digits>, got {digest!r}")
    oid = object_id if object_id is not None else secrets.token_bytes(16)
    if len(oid) != 16:
        raise ValueError(f"object_id must be 16 bytes, got {len(oid)}")
    header = SealedHeader(chunk_size, oid, expected)
    aad = header.encode()
    dst.write(aad)
    aead, sha = AESGCM(data_key), hashlib.sha256()
    current, index = _read_up_to(src, chunk_size), 0
    while True:
        following = _read_up_to(src, chunk_size) if len(current) == chunk_size else b""
        final = not following
        sha.update(current)
        dst.write(aead.encrypt(_nonce(oid, index, final), current, aad))
        if final:
            break
        current, index = following, index + 1
    if sha.digest() != expected:
        raise IntegrityError(
            f"the artifact changed while it was being sealed: it hashed to {digest} before and "
            f"to sha256:{sha.hexdigest()} while being encrypted"
        )
    return header


def read_header(src: IO[bytes]) -> SealedHeader:
    """Read and check the header at the start of a sealed object.

    Raises:
        IntegrityError: It is not a sealed object, or the header is damaged.
    """
    raw = _read_up_to(src, HEADER_SIZE)
    if len(raw) < HEADER_SIZE:
        raise IntegrityError(
            f"the sealed object is truncated: {len(raw)} bytes, shorter than its header"
        )
    magic, chunk_size, object_id, digest = _HEADER.unpack(raw)
    if magic != _MAGIC:
        raise IntegrityError("not a sealed modelport object (bad magic bytes)")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise IntegrityError(f"the sealed object's header is damaged (chunk size {chunk_size})")
    return SealedHeader(chunk_size, object_id, digest)


def open_sealed(
    src: IO[bytes], dst: IO[bytes], data_key: bytes, header: SealedHeader | None = None
) -> int:
    """Decrypt a sealed object from ``src`` into ``dst``, checking every chunk.

    Plaintext is written one authenticated chunk at a time; when this raises, ``dst`` holds a
    prefix of the plaintext that the caller must discard.

    Args:
        src: The sealed object, at its start (or just after its header when ``header`` is given).
        dst: Where the plaintext goes.
        data_key: The unwrapped data key.
        header: The header, when the caller has already read it with :func:`read_header`.

    Returns:
        The plaintext size in bytes.

    Raises:
        IntegrityError: A chunk fails authentication (altered, reordered, truncated or
            extended ciphertext, or a key of another object), or the plaintext does not hash to
            the header's digest.
    """
    head = header if header is not None else read_header(src)
    aad, step = head.encode(), head.chunk_size + _TAG
    aead, sha, size = AESGCM(data_key), hashlib.sha256(), 0
    current, index = _read_up_to(src, step), 0
    while True:
        following = _read_up_to(src, step) if len(current) == step else b""
        final = not following
        if len(current) < _TAG:
            raise IntegrityError(
                f"the sealed object is truncated: chunk {index} has {len(current)} bytes, "
                f"less than its {_TAG}-byte tag"
            )
        try:
            plain = aead.decrypt(_nonce(head.object_id, index, final), current, aad)
        except InvalidTag:
            last = " (as the last chunk)" if final else ""
            raise IntegrityError(
                f"chunk {index}{last} fails authentication: the ciphertext was altered, "
                "truncated, extended or reordered, or belongs to another record"
            ) from None
        sha.update(plain)
        dst.write(plain)
        size += len(plain)
        if final:
            break
        current, index = following, index + 1
    if sha.digest() != head.digest:
        raise IntegrityError(
            f"the decrypted artifact hashes to sha256:{sha.hexdigest()}, "
            f"not to {head.digest_text} as sealed"
        )
    return size


def wrap_data_key(
    provider: KeyProvider, data_key: bytes, binding: Binding, object_id: bytes
) -> KeyRecord:
    """Wrap ``data_key`` with the provider's active KEK, bound to ``binding`` and the object.

    Raises:
        ConfigError: The provider has no usable KEK.
    """
    return KeyRecord(provider.wrap(data_key, binding.aad(object_id)), object_id, binding)


def unwrap_data_key(
    provider: KeyProvider, record: KeyRecord, expected: Binding, header: SealedHeader
) -> bytes:
    """Return the data key of the sealed object with ``header``, as the record ``expected`` owns.

    Raises:
        IntegrityError: The key record belongs to another record or object, was altered, or was
            wrapped by a KEK the provider does not hold.
    """
    if record.binding != expected:
        raise IntegrityError(
            f"the key record belongs to {record.binding.describe()} "
            f"({record.binding.digest}), not to {expected.describe()} ({expected.digest})"
        )
    if record.object_id != header.object_id:
        raise IntegrityError(
            "the key record is for another sealed object (object ids differ): the ciphertext was "
            "swapped or replaced"
        )
    if header.digest_text != expected.digest:
        raise IntegrityError(
            f"the sealed object holds {header.digest_text}, not {expected.digest}: the ciphertext "
            "was swapped or replaced"
        )
    data_key = provider.unwrap(record.wrapped, expected.aad(header.object_id))
    if len(data_key) != KEK_BYTES:
        raise IntegrityError(f"the unwrapped data key has {len(data_key)} bytes, not {KEK_BYTES}")
    return data_key


def rewrap(provider: KeyProvider, record: KeyRecord) -> KeyRecord:
    """Return ``record`` with its data key re-wrapped by the provider's active KEK.

    The binding written in the record is used: the unwrap authenticates it, so a record whose
    binding was edited fails here rather than being re-wrapped under a false binding.

    Raises:
        IntegrityError: The data key does not unwrap (unknown KEK, altered record).
    """
    aad = record.binding.aad(record.object_id)
    data_key = provider.unwrap(record.wrapped, aad)
    return KeyRecord(provider.wrap(data_key, aad), record.object_id, record.binding)


def encode_key_record(record: KeyRecord) -> bytes:
    """Return the JSON bytes of a key record file."""
    doc = {
        "format": _KEY_FORMAT,
        "kek_id": record.wrapped.kek_id,
        "wrapped": base64.b64encode(record.wrapped.blob).decode(),
        "object_id": record.object_id.hex(),
        "binding": record.binding.to_json(),
    }
    return json.dumps(doc, indent=2, sort_keys=True).encode()


def decode_key_record(raw: bytes) -> KeyRecord:
    """Parse a key record file.

    Raises:
        IntegrityError: The record is malformed.
    """
    try:
        doc = json.loads(raw)
        if doc["format"] != _KEY_FORMAT:
            raise ValueError(f"format is {doc['format']!r}, expected {_KEY_FORMAT!r}")
        bound = doc["binding"]
        version = bound["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError("binding.version is not an integer")
        binding = Binding(
            digest=str(bound["digest"]),
            model=str(bound["model"]),
            version=version,
            jurisdiction=str(bound["jurisdiction"]),
        )
        object_id = bytes.fromhex(doc["object_id"])
        if len(object_id) != 16:
            raise ValueError("object_id is not 16 bytes")
        wrapped = WrappedKey(str(doc["kek_id"]), base64.b64decode(doc["wrapped"], validate=True))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise IntegrityError(f"the key record is malformed: {exc}") from None
    return KeyRecord(wrapped, object_id, binding)
