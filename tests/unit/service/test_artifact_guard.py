"""Sealed artifacts through the registry: open verified, refuse tampering, rotate the KEK."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from modelport.core.clock import SystemClock
from modelport.core.errors import ConfigError, IntegrityError
from modelport.core.refs import ModelRef
from modelport.core.settings import RuntimeSettings, Settings
from modelport.registry import ArtifactStore, MetadataStore, ModelVersion
from modelport.security.kek import FileKeyProvider
from modelport.service.artifact_guard import ArtifactGuard, rotate_kek
from modelport.service.models import ModelRepository, ModelSource
from modelport.service.registration import Registrar, RegistrationRequest

MODEL = """
class Doubler:
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    }

    def predict(self, inputs):
        return {"y": inputs["x"] * 2}
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "doubler.py").write_text(MODEL)
    (folder / "tripler.py").write_text(MODEL.replace("* 2", "* 3"))
    return folder


def guard_for(home: Path, signer: str = "alice", chunk_size: int = 64) -> ArtifactGuard:
    return ArtifactGuard(
        ArtifactStore(home / "artifacts"),
        FileKeyProvider(home / "keys" / "kek.json"),
        home / "keys" / "signing.pem",
        signer,
        chunk_size=chunk_size,
    )


@pytest.fixture
def registrar(tmp_path: Path) -> Iterator[Registrar]:
    store = MetadataStore(f"sqlite:///{tmp_path / 'registry.db'}", SystemClock())
    try:
        yield Registrar(store, guard_for(tmp_path), RuntimeSettings())
    finally:
        store.close()


def register(
    registrar: Registrar, files: Path, name: str = "doubler", **more: object
) -> ModelVersion:
    fields: dict[str, object] = {
        "name": name,
        "artifact": f"{files / 'doubler.py'}:Doubler",
        "registered_by": "alice",
    }
    fields.update(more)
    return registrar.register(RegistrationRequest(**fields))  # type: ignore[arg-type]


def opened(registrar: Registrar, version: ModelVersion) -> bytes:
    with registrar.guard.open(version, version.artifact_digest) as plain:
        return plain.read_bytes()


def test_the_store_holds_no_plaintext(registrar: Registrar, files: Path) -> None:
    version = register(registrar, files)
    store = registrar.guard.store
    sealed = store.sealed_path("doubler", 1, version.artifact_digest)
    assert b"class Doubler" not in sealed.read_bytes()
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o400
    assert stat.S_IMODE(store.version_dir("doubler", 1).stat().st_mode) == 0o700
    record = json.loads(store.key_path("doubler", 1, version.artifact_digest).read_text())
    assert record["binding"] == {
        "digest": version.artifact_digest,
        "model": "doubler",
        "version": 1,
        "jurisdiction": "global",
    }
    assert store.manifest_path("doubler", 1).is_file()
    assert version.signer is not None and version.signer.identity == "alice"
    assert list((store.root / "tmp").iterdir()) == []


def test_open_yields_a_private_plaintext_and_removes_it(registrar: Registrar, files: Path) -> None:
    version = register(registrar, files)
    with registrar.guard.open(version, version.artifact_digest) as plain:
        assert plain.read_bytes() == (files / "doubler.py").read_bytes()
        assert stat.S_IMODE(plain.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(plain.stat().st_mode) == 0o600
    assert not plain.parent.exists()


def test_a_registered_version_loads_and_serves(registrar: Registrar, files: Path) -> None:
    import numpy as np

    register(registrar, files)
    repository = ModelRepository(RuntimeSettings())
    repository.add(registrar.source_for(ModelRef("doubler")))
    repository.load_all()
    model = repository.get_ready("doubler")
    assert model.runtime is not None
    out = model.runtime.predict({"x": np.ones((1, 2), np.float32)}, ["y"])
    assert out["y"].tolist() == [[2.0, 2.0]]


def test_a_tampered_byte_names_model_version_and_artifact(
    registrar: Registrar, files: Path
) -> None:
    version = register(registrar, files)
    sealed = registrar.guard.store.sealed_path("doubler", 1, version.artifact_digest)
    sealed.chmod(0o600)
    data = bytearray(sealed.read_bytes())
    data[len(data) // 2] ^= 0x01
    sealed.write_bytes(bytes(data))
    expected = (
        rf"artifact doubler.py {version.artifact_digest[:19]}\.\.\. of doubler@1 failed "
        r"verification: chunk \d+ .*fails authentication.*refusing to load"
    )
    with pytest.raises(IntegrityError, match=expected):
        opened(registrar, version)


def test_ciphertext_swapped_between_versions_fails(registrar: Registrar, files: Path) -> None:
    first = register(registrar, files)
    second = register(registrar, files)  # same bytes, so the same digest
    assert first.artifact_digest == second.artifact_digest
    store = registrar.guard.store
    for where in (store.sealed_path, store.key_path):  # version 1's files replace version 2's
        digest = first.artifact_digest
        os.replace(where("doubler", 1, digest), where("doubler", 2, digest))
    with pytest.raises(IntegrityError, match="belongs to doubler@1"):
        opened(registrar, second)


def test_only_the_ciphertext_swapped_fails(registrar: Registrar, files: Path) -> None:
    first = register(registrar, files)
    second = register(registrar, files)
    store = registrar.guard.store
    os.replace(
        store.sealed_path("doubler", 1, first.artifact_digest),
        store.sealed_path("doubler", 2, second.artifact_digest),
    )
    with pytest.raises(IntegrityError, match="another sealed object"):
        opened(registrar, second)


def test_a_manifest_moved_to_another_version_fails(registrar: Registrar, files: Path) -> None:
    register(registrar, files)
    second = register(registrar, files)
    store = registrar.guard.store
    os.replace(store.manifest_path("doubler", 1), store.manifest_path("doubler", 2))
    with pytest.raises(IntegrityError, match="manifest is for doubler@1"):
        opened(registrar, second)


def test_jurisdiction_is_bound(registrar: Registrar, files: Path) -> None:
    version = register(registrar, files, jurisdiction="eu")
    moved = replace(version, jurisdiction="us")
    with pytest.raises(IntegrityError, match=r"manifest is for doubler@1 \(eu\)"):
        opened(registrar, moved)


def test_missing_manifest_or_signature_fails_closed(registrar: Registrar, files: Path) -> None:
    version = register(registrar, files)
    unsigned = replace(version, signer=None)
    with pytest.raises(IntegrityError, match="registered before artifacts were encrypted"):
        opened(registrar, unsigned)
    manifest = registrar.guard.store.manifest_path("doubler", 1)
    doc = json.loads(manifest.read_bytes())
    doc["signatures"] = []
    manifest.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="doubler@1 failed verification: .*no signature"):
        opened(registrar, version)
    manifest.unlink()
    with pytest.raises(IntegrityError, match="manifest .* is missing"):
        opened(registrar, version)


def test_missing_files_fail_closed(registrar: Registrar, files: Path) -> None:
    version = register(registrar, files)
    registrar.guard.store.key_path("doubler", 1, version.artifact_digest).unlink()
    with pytest.raises(IntegrityError, match="key record .* is missing"):
        opened(registrar, version)


def test_another_installations_signature_needs_trust(
    registrar: Registrar, files: Path, tmp_path: Path
) -> None:
    version = register(registrar, files)
    # A server with other keys (and the same KEK) does not trust this installation's signer...
    other = tmp_path / "other"
    (other / "keys").mkdir(parents=True)
    (other / "keys" / "kek.json").write_bytes((tmp_path / "keys" / "kek.json").read_bytes())
    (other / "keys" / "kek.json").chmod(0o600)
    server = ArtifactGuard(
        registrar.guard.store,
        FileKeyProvider(other / "keys" / "kek.json"),
        other / "keys" / "signing.pem",
        "bob",
    )
    with pytest.raises(IntegrityError, match="not a trusted signer"):
        with server.open(version, version.artifact_digest):
            pass
    # ...until its public key is configured as trusted.
    trusting = ArtifactGuard(
        registrar.guard.store,
        FileKeyProvider(other / "keys" / "kek.json"),
        other / "keys" / "signing.pem",
        "bob",
        trusted_signers=[tmp_path / "keys" / "signing.pub.pem"],
    )
    with trusting.open(version, version.artifact_digest) as plain:
        assert plain.read_bytes() == (files / "doubler.py").read_bytes()


def test_wrong_kek_fails(registrar: Registrar, files: Path, tmp_path: Path) -> None:
    version = register(registrar, files)
    wrong = ArtifactGuard(
        registrar.guard.store,
        FileKeyProvider(tmp_path / "wrong.json"),
        tmp_path / "keys" / "signing.pem",
        "alice",
    )
    wrong.keks.active_id()
    with pytest.raises(
        IntegrityError, match=r"of doubler@1 failed verification: .*wrapped with KEK"
    ):
        with wrong.open(version, version.artifact_digest):
            pass


def test_rotation_rewraps_every_key_and_retires_the_old_kek(
    registrar: Registrar, files: Path, tmp_path: Path
) -> None:
    first = register(registrar, files)
    second = register(registrar, files, name="tripler", artifact=f"{files / 'tripler.py'}:Doubler")
    store = registrar.guard.store
    sealed_before = {p: p.read_bytes() for p in store.root.glob("models/*/*/*.sealed")}
    old = registrar.guard.keks.active_id()
    report = registrar.guard.rotate_kek()
    assert (report.rewrapped, report.already_current, report.resumed) == (2, 0, False)
    assert report.retired_ids == (old,) and report.active_id != old
    ring = json.loads((tmp_path / "keys" / "kek.json").read_text())
    assert ring["active"]["id"] == report.active_id and ring["retiring"] == []
    for path in store.key_records():
        assert json.loads(path.read_text())["kek_id"] == report.active_id
    assert {p: p.read_bytes() for p in sealed_before} == sealed_before, "artifacts untouched"
    assert b"class Doubler" in opened(registrar, first)
    assert b"* 3" in opened(registrar, second)


def test_an_interrupted_rotation_is_resumed(registrar: Registrar, files: Path) -> None:
    version = register(registrar, files)
    register(registrar, files)
    keks = registrar.guard.keks
    start = keks.begin_rotation()  # as if the process died right after the first step
    assert b"Doubler" in opened(registrar, version), "still readable mid-rotation"
    report = registrar.guard.rotate_kek()
    assert (report.active_id, report.resumed, report.rewrapped) == (start.active_id, True, 2)
    assert report.retired_ids == start.retiring_ids
    again = registrar.guard.rotate_kek()
    assert (again.rewrapped, again.already_current) == (2, 0), "a new rotation moves them all"
    assert b"Doubler" in opened(registrar, version)


def test_a_damaged_key_record_keeps_the_old_kek(registrar: Registrar, files: Path) -> None:
    version = register(registrar, files)
    register(registrar, files)
    record = registrar.guard.store.key_path("doubler", 2, version.artifact_digest)
    record.write_text("{}")
    old = registrar.guard.keks.active_id()
    with pytest.raises(IntegrityError, match="1 data key.* could not be re-wrapped"):
        registrar.guard.rotate_kek()
    assert (
        json.loads(registrar.guard.store.root.parent.joinpath("keys", "kek.json").read_text())[
            "retiring"
        ][0]["id"]
        == old
    )
    assert b"Doubler" in opened(registrar, version), "re-wrapped records still open"


def test_rotate_kek_from_settings(tmp_path: Path, files: Path) -> None:
    settings = Settings(home=tmp_path)
    store = MetadataStore(settings.resolved_database_url(), SystemClock())
    try:
        registrar = Registrar(
            store, ArtifactGuard.from_settings(settings, "alice", environ={}), RuntimeSettings()
        )
        version = register(registrar, files)
        assert rotate_kek(settings, environ={}).rewrapped == 1
        assert b"Doubler" in opened(registrar, version)
    finally:
        store.close()


def test_env_kek_needs_the_variable_only_when_used(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"home": tmp_path, "security": {"artifacts": {"kek_provider": "env"}}}
    )
    guard = ArtifactGuard.from_settings(settings, "alice", environ={})
    with pytest.raises(ConfigError, match="MODELPORT_KEK"):
        guard.keks.active_id()


def test_a_pickle_is_never_loaded_without_verification(tmp_path: Path) -> None:
    pickle = tmp_path / "model.joblib"
    pickle.write_bytes(b"\x80\x04 would run code")
    repository = ModelRepository(RuntimeSettings())
    repository.add(ModelSource(name="m", version="1", framework="sklearn", artifact=pickle))
    with pytest.raises(ConfigError, match="refusing to load 'm'.*signed registration"):
        repository.load_all()
