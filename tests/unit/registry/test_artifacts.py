from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from modelport.core.errors import ConfigError, InvalidInput
from modelport.registry import ArtifactStore, digest_file, parse_digest


def _file(tmp_path: Path, content: bytes, name: str = "model.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def test_layout_files_each_version_by_digest(store: ArtifactStore) -> None:
    digest = _sha(b"weights")
    hex_digest = digest.removeprefix("sha256:")
    folder = store.root / "models" / "fraud" / "3"
    assert store.version_dir("fraud", 3) == folder
    assert store.sealed_path("fraud", 3, digest) == folder / f"{hex_digest}.sealed"
    assert store.key_path("fraud", 3, digest) == folder / f"{hex_digest}.key"
    assert store.manifest_path("fraud", 3) == folder / "manifest.dsse.json"


def test_place_moves_a_staged_file_read_only(store: ArtifactStore) -> None:
    staged = store.staging_file()
    assert stat.S_IMODE(staged.stat().st_mode) == 0o600
    staged.write_bytes(b"ciphertext")
    target = store.sealed_path("fraud", 1, _sha(b"x"))
    store.place(staged, target)
    assert target.read_bytes() == b"ciphertext" and not staged.exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o400
    for folder in (store.root / "models", target.parent.parent, target.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert list((store.root / "tmp").iterdir()) == []


def test_write_file_replaces_atomically(store: ArtifactStore) -> None:
    target = store.key_path("fraud", 1, _sha(b"x"))
    store.write_file(target, b"one")
    store.write_file(target, b"two")
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name], "no temporary left"


def test_key_records_and_clear_version(store: ArtifactStore) -> None:
    assert list(store.key_records()) == []
    first = store.key_path("a", 1, _sha(b"1"))
    second = store.key_path("b", 2, _sha(b"2"))
    for target in (second, first):
        store.write_file(target, b"{}")
    store.write_file(store.manifest_path("a", 1), b"{}")
    assert list(store.key_records()) == [first, second]
    store.clear_version("a", 1)
    assert list(store.key_records()) == [second]
    store.clear_version("a", 9)  # nothing there: fine


def test_lock_is_reentrant_across_shared_holders(store: ArtifactStore) -> None:
    with store.lock(exclusive=False), store.lock(exclusive=False):
        pass
    with store.lock(exclusive=True):
        pass
    assert (store.root / ".lock").is_file()


def test_an_unwritable_store_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot write to the artifact store"):
        ArtifactStore(blocker).staging_file()


@pytest.mark.parametrize(
    ("model", "version"), [("Bad Name", 1), ("..", 1), ("ok", 0), ("ok", True), ("ok", "1")]
)
def test_malformed_names_and_versions(store: ArtifactStore, model: str, version: object) -> None:
    with pytest.raises(InvalidInput):
        store.version_dir(model, version)  # type: ignore[arg-type]


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
        store.sealed_path("fraud", 1, digest)
    with pytest.raises(InvalidInput):
        store.key_path("fraud", 1, digest)
    with pytest.raises(InvalidInput):
        parse_digest(digest)


def test_digest_file(tmp_path: Path) -> None:
    assert digest_file(_file(tmp_path, b"training rows")) == _sha(b"training rows")
    big = _file(tmp_path, b"x" * (3 * 1024 * 1024 + 17), "big.bin")
    assert digest_file(big) == _sha(big.read_bytes())
    with pytest.raises(ConfigError, match="does not exist"):
        digest_file(tmp_path / "missing.parquet")
    with pytest.raises(ConfigError, match="not a regular file"):
        digest_file(tmp_path)
