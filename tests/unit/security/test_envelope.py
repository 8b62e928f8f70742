"""Envelope encryption: streamed chunks round-trip, and every kind of tampering fails closed."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path

import pytest

from modelport.core.errors import IntegrityError
from modelport.security.envelope import (
    HEADER_SIZE,
    Binding,
    KeyRecord,
    SealedHeader,
    decode_key_record,
    encode_key_record,
    new_data_key,
    open_sealed,
    read_header,
    rewrap,
    seal,
    unwrap_data_key,
    wrap_data_key,
)
from modelport.security.kek import EnvKeyProvider, FileKeyProvider

CHUNK = 64
TAG = 16


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sealed(data: bytes, key: bytes | None = None, chunk: int = CHUNK) -> tuple[bytes, bytes]:
    key = key or new_data_key()
    out = io.BytesIO()
    seal(io.BytesIO(data), out, key, digest(data), chunk_size=chunk)
    return out.getvalue(), key


def opened(blob: bytes, key: bytes) -> bytes:
    out = io.BytesIO()
    size = open_sealed(io.BytesIO(blob), out, key)
    assert size == len(out.getvalue())
    return out.getvalue()


def chunks(blob: bytes, chunk: int = CHUNK) -> list[bytes]:
    body = blob[HEADER_SIZE:]
    step = chunk + TAG
    return [body[i : i + step] for i in range(0, len(body), step)]


@pytest.mark.parametrize(
    ("size", "count"),
    [(0, 1), (1, 1), (CHUNK - 1, 1), (CHUNK, 1), (3 * CHUNK, 3), (3 * CHUNK + 5, 4)],
    ids=["empty", "one-byte", "under-a-chunk", "exact-chunk", "exact-multiple", "multi-chunk"],
)
def test_round_trip(size: int, count: int) -> None:
    data = os.urandom(size)
    blob, key = sealed(data)
    assert len(chunks(blob)) == count
    assert len(blob) == HEADER_SIZE + size + count * TAG
    assert size < 16 or data[:16] not in blob  # no plaintext stretch survives
    assert opened(blob, key) == data


def test_default_chunking_streams_a_larger_file() -> None:
    data = os.urandom(2 * 1024 * 1024 + 3)
    out = io.BytesIO()
    key = new_data_key()
    header = seal(io.BytesIO(data), out, key, digest(data))
    assert header.chunk_size == 1024 * 1024
    assert opened(out.getvalue(), key) == data


def test_header_binds_digest_and_object_id() -> None:
    data = b"weights" * 40
    blob, _ = sealed(data)
    header = read_header(io.BytesIO(blob))
    assert header.digest_text == digest(data)
    assert header.chunk_size == CHUNK and len(header.object_id) == 16
    other, _ = sealed(data)
    assert read_header(io.BytesIO(other)).object_id != header.object_id


def test_a_source_that_changes_while_sealing_is_refused() -> None:
    with pytest.raises(IntegrityError, match="changed while it was being sealed"):
        seal(io.BytesIO(b"new"), io.BytesIO(), new_data_key(), digest(b"old"), chunk_size=CHUNK)


@pytest.mark.parametrize("position", [0, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 70, -1])
def test_any_changed_byte_fails(position: int) -> None:
    data = os.urandom(3 * CHUNK + 7)
    blob, key = sealed(data)
    tampered = bytearray(blob)
    tampered[position] ^= 0x01
    with pytest.raises(IntegrityError):
        opened(bytes(tampered), key)


def test_a_changed_chunk_names_the_chunk() -> None:
    blob, key = sealed(os.urandom(3 * CHUNK))
    tampered = bytearray(blob)
    tampered[HEADER_SIZE + CHUNK + TAG + 3] ^= 0xFF  # inside chunk 1
    with pytest.raises(IntegrityError, match="chunk 1 fails authentication"):
        opened(bytes(tampered), key)


def test_truncation_at_a_chunk_boundary_fails() -> None:
    blob, key = sealed(os.urandom(3 * CHUNK))
    head = blob[:HEADER_SIZE]
    parts = chunks(blob)
    with pytest.raises(IntegrityError, match=r"chunk 1 \(as the last chunk\) fails"):
        opened(head + b"".join(parts[:2]), key)


@pytest.mark.parametrize("cut", [1, TAG, CHUNK])
def test_truncation_inside_a_chunk_fails(cut: int) -> None:
    blob, key = sealed(os.urandom(3 * CHUNK + 9))
    with pytest.raises(IntegrityError):
        opened(blob[:-cut], key)


def test_truncated_header_fails() -> None:
    blob, key = sealed(b"abc")
    with pytest.raises(IntegrityError, match="shorter than its header"):
        opened(blob[: HEADER_SIZE - 1], key)
    with pytest.raises(IntegrityError, match="truncated"):
        opened(blob[:HEADER_SIZE], key)


def test_reordered_chunks_fail() -> None:
    blob, key = sealed(os.urandom(3 * CHUNK))
    parts = chunks(blob)
    swapped = blob[:HEADER_SIZE] + parts[1] + parts[0] + parts[2]
    with pytest.raises(IntegrityError, match="chunk 0 fails authentication"):
        opened(swapped, key)


def test_appended_or_duplicated_chunks_fail() -> None:
    blob, key = sealed(os.urandom(2 * CHUNK))
    parts = chunks(blob)
    with pytest.raises(IntegrityError):
        opened(blob + parts[-1], key)
    with pytest.raises(IntegrityError):
        opened(blob + b"\x00", key)


def test_ciphertext_swapped_between_objects_fails() -> None:
    data = os.urandom(2 * CHUNK)
    first, key1 = sealed(data)
    second, _ = sealed(data)
    with pytest.raises(IntegrityError, match="chunk 0 fails authentication"):
        opened(second, key1)
    # Same key, other object (another header): still refused.
    other = bytearray(first)
    other[12:28] = second[12:28]  # the object id
    with pytest.raises(IntegrityError):
        opened(bytes(other), key1)


def test_not_a_sealed_object() -> None:
    with pytest.raises(IntegrityError, match="bad magic"):
        opened(b"\x80\x04 a plain pickle, not a sealed object" * 3, new_data_key())


# -- key wrapping -----------------------------------------------------------------------------


def kek(seed: int = 1) -> str:
    return base64.b64encode(bytes([seed]) * 32).decode()


def env_provider(seed: int = 1, previous: int | None = None) -> EnvKeyProvider:
    environ = {"KEK": kek(seed)}
    if previous is not None:
        environ["KEK_PREVIOUS"] = kek(previous)
    return EnvKeyProvider("KEK", environ)


def bound(version: int = 1, model: str = "fraud", jurisdiction: str = "eu") -> Binding:
    return Binding(digest(b"x"), model, version, jurisdiction)


def header_for(binding: Binding) -> SealedHeader:
    return SealedHeader(CHUNK, os.urandom(16), bytes.fromhex(binding.digest[7:]))


def test_wrap_unwrap_and_record_round_trip() -> None:
    provider, binding = env_provider(), bound()
    header, data_key = header_for(binding), new_data_key()
    record = wrap_data_key(provider, data_key, binding, header.object_id)
    assert decode_key_record(encode_key_record(record)) == record
    assert data_key not in encode_key_record(record)
    assert unwrap_data_key(provider, record, binding, header) == data_key


@pytest.mark.parametrize(
    "other",
    [bound(version=2), bound(model="other"), bound(jurisdiction="us")],
    ids=["version", "model", "jurisdiction"],
)
def test_a_key_record_moved_to_another_record_fails(other: Binding) -> None:
    provider, binding = env_provider(), bound()
    header = header_for(binding)
    record = wrap_data_key(provider, new_data_key(), binding, header.object_id)
    with pytest.raises(IntegrityError, match="belongs to fraud@1 \\(eu\\)"):
        unwrap_data_key(provider, record, other, header)
    # An edited record (binding rewritten to match) fails the authenticated unwrap instead.
    forged = KeyRecord(record.wrapped, record.object_id, other)
    with pytest.raises(IntegrityError, match="does not unwrap"):
        unwrap_data_key(provider, forged, other, header)


def test_a_key_record_for_another_object_fails() -> None:
    provider, binding = env_provider(), bound()
    header = header_for(binding)
    record = wrap_data_key(provider, new_data_key(), binding, header.object_id)
    with pytest.raises(IntegrityError, match="another sealed object"):
        unwrap_data_key(provider, record, binding, header_for(binding))


def test_wrong_kek_is_named_in_the_error() -> None:
    binding = bound()
    header = header_for(binding)
    record = wrap_data_key(env_provider(1), new_data_key(), binding, header.object_id)
    with pytest.raises(
        IntegrityError, match=r"wrapped with KEK [0-9a-f]{16}.*wrong key-encryption"
    ):
        unwrap_data_key(env_provider(2), record, binding, header)


def test_rewrap_keeps_the_data_key_under_a_new_kek(tmp_path: Path) -> None:
    binding = bound()
    header, data_key = header_for(binding), new_data_key()
    old = wrap_data_key(env_provider(1), data_key, binding, header.object_id)
    rotating = env_provider(2, previous=1)
    new = rewrap(rotating, old)
    assert new.wrapped.kek_id == rotating.active_id() != old.wrapped.kek_id
    assert unwrap_data_key(env_provider(2), new, binding, header) == data_key
    file = FileKeyProvider(tmp_path / "kek.json")
    file.active_id()  # another installation's key ring
    with pytest.raises(IntegrityError, match="wrong key-encryption key"):
        rewrap(file, old)


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b"{}", b'{"format": "other"}', b"not json"],
)
def test_malformed_key_records(raw: bytes) -> None:
    with pytest.raises(IntegrityError, match="key record is malformed"):
        decode_key_record(raw)
