from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from modelport.core.errors import ConfigError, IntegrityError, InvalidInput, NotFound
from modelport.registry import ArtifactStore, StoredArtifact, digest_file, parse_digest


def _file(tmp_path: Path, content: bytes, name: str = "model.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def test_put_stores_content_addressed(store: ArtifactStore, tmp_path: Path) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk
    stored = store.put(_file(tmp_path, content))
    assert stored == StoredArtifact(digest=_sha(content), size=len(content))
    hex_digest = stored.digest.removeprefix("sha256:")
    path = store.path_for(stored.digest)
    assert path == store.root / "sha256" / hex_digest[:2] / hex_digest
    assert path.read_bytes() == content
    assert store.exists(stored.digest)
    assert list((store.root / "tmp").iterdir()) == [], "no temporary file is left behind"


def test_put_reuses_an_existing_object(store: ArtifactStore, tmp_path: Path) -> None:
    first = store.put(_file(tmp_path, b"weights", "a.bin"))
    inode = store.path_for(first.digest).stat().st_ino
    again = store.put(_file(tmp_path, b"weights", "b.bin"))
    assert again == first
    assert store.path_for(first.digest).stat().st_ino == inode
    assert list((store.root / "tmp").iterdir()) == []


def test_put_replaces_a_truncated_object(store: ArtifactStore, tmp_path: Path) -> None:
    stored = store.put(_file(tmp_path, b"full content"))
    path = store.path_for(stored.digest)
    path.chmod(0o644)
    path.write_bytes(b"full")
    store.put(_file(tmp_path, b"full content"))
    assert store.open_verified(stored.digest).read_bytes() == b"full content"


def test_put_handles_an_empty_file(store: ArtifactStore, tmp_path: Path) -> None:
    stored = store.put(_file(tmp_path, b""))
    assert stored == StoredArtifact(_sha(b""), 0)
    assert store.open_verified(stored.digest).read_bytes() == b""


def test_put_refuses_missing_and_non_files(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        store.put(tmp_path / "nope.onnx")
    with pytest.raises(ConfigError, match="not a regular file"):
        store.put(tmp_path)


def test_open_verified_detects_a_changed_byte(store: ArtifactStore, tmp_path: Path) -> None:
    content = b"\x00" * 1000
    stored = store.put(_file(tmp_path, content))
    path = store.open_verified(stored.digest)
    path.chmod(0o644)
    tampered = bytearray(content)
    tampered[500] ^= 0x01
    path.write_bytes(bytes(tampered))
    expected = (
        f"^artifact {stored.digest} is corrupt: its content hashes to {_sha(bytes(tampered))}, "
        "refusing to load$"
    )
    with pytest.raises(IntegrityError, match=expected):
        store.open_verified(stored.digest)


def test_open_verified_missing_object(store: ArtifactStore) -> None:
    with pytest.raises(NotFound, match="is not in the artifact store"):
        store.open_verified(_sha(b"never stored"))
    assert not store.exists(_sha(b"never stored"))


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "sha256:",
        "sha256:xyz",
        "md5:" + "a" * 32,
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        "sha256:../../" + "a" * 58,
    ],
)
def test_malformed_digests_are_invalid_input(store: ArtifactStore, digest: str) -> None:
    with pytest.raises(InvalidInput, match="invalid digest"):
        store.path_for(digest)
    with pytest.raises(InvalidInput):
        store.open_verified(digest)
    with pytest.raises(InvalidInput):
        parse_digest(digest)


def test_digest_file(tmp_path: Path) -> None:
    assert digest_file(_file(tmp_path, b"training rows")) == _sha(b"training rows")
    with pytest.raises(ConfigError, match="does not exist"):
        digest_file(tmp_path / "missing.parquet")
    with pytest.raises(ConfigError, match="not a regular file"):
        digest_file(tmp_path)
