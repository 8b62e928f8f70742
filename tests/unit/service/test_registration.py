"""Registration compiles scikit-learn models, seals and signs what it stores, records what is
served, and serving fails closed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.core.clock import SystemClock
from modelport.core.errors import ConfigError, IntegrityError, InvalidInput, NotFound
from modelport.core.refs import ModelRef
from modelport.core.settings import RuntimeSettings
from modelport.registry import ArtifactStore, MetadataStore
from modelport.security.kek import FileKeyProvider
from modelport.security.store import SecurityStore
from modelport.service.artifact_guard import ArtifactGuard
from modelport.service.registration import COMPILE_OFF, Registrar, RegistrationRequest


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    X, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), folder / "iris.joblib")
    np.save(folder / "sample.npy", X)
    return folder


def _guard(tmp_path: Path) -> ArtifactGuard:
    return ArtifactGuard(
        ArtifactStore(tmp_path / "artifacts"),
        FileKeyProvider(tmp_path / "keys" / "kek.json"),
        tmp_path / "keys" / "signing.pem",
        "alice",
    )


@pytest.fixture
def registrar(tmp_path: Path) -> Iterator[Registrar]:
    store = MetadataStore(f"sqlite:///{tmp_path / 'registry.db'}", SystemClock())
    try:
        yield Registrar(store, _guard(tmp_path), RuntimeSettings())
    finally:
        store.close()


@pytest.fixture
def audited(tmp_path: Path) -> Iterator[tuple[Registrar, SecurityStore]]:
    """A registrar whose audit log is the security store in the same database."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    store, audit = MetadataStore(url, SystemClock()), SecurityStore(url, SystemClock())
    try:
        yield Registrar(store, _guard(tmp_path), RuntimeSettings(), audit), audit
    finally:
        store.close()
        audit.close()


def request(files: Path, **changes: object) -> RegistrationRequest:
    fields: dict[str, object] = {
        "name": "iris",
        "artifact": str(files / "iris.joblib"),
        "registered_by": "alice",
        "sample": files / "sample.npy",
    }
    fields.update(changes)
    return RegistrationRequest(**fields)


def test_a_compiled_version_serves_onnx_and_keeps_the_original(
    registrar: Registrar, files: Path
) -> None:
    version = registrar.register(request(files))
    assert version.serving is not None and version.serving.framework == "onnx"
    assert version.compile_report is not None and version.compile_report.compiled
    assert version.compile_report.rows == 150 and version.compile_report.precision == "FP64"
    assert (version.jurisdiction, version.signer is not None) == ("global", True)
    served = registrar.source_for(ModelRef.parse("iris@1"))
    assert served.framework == "onnx"
    assert served.signature == version.signature
    assert served.prepare is not None
    with served.prepare() as plain:
        assert (
            plain.read_bytes()[:8] != b"MPSEAL1\n" and plain.stat().st_size == version.serving.size
        )
    assert not plain.exists(), "the plaintext is removed once loaded"
    original = registrar.source_for(ModelRef.parse("iris@1"), "iris-original", prefer_original=True)
    assert (original.name, original.framework) == ("iris-original", "sklearn")
    assert original.prepare is not None
    with original.prepare() as plain:
        assert plain.read_bytes() == (files / "iris.joblib").read_bytes()


def test_opting_out_or_no_sample_serves_the_original_with_a_reason(
    registrar: Registrar, files: Path
) -> None:
    off = registrar.register(request(files, compile=False))
    bare = registrar.register(request(files, sample=None))
    for version, reason in ((off, COMPILE_OFF), (bare, "no sample to check equivalence")):
        assert version.serving is None
        assert version.compile_report is not None
        assert (version.compile_report.compiled, version.compile_report.reason) == (False, reason)
        served = registrar.source_for(ModelRef("iris", version=version.version))
        assert served.framework == "sklearn"


def test_other_frameworks_have_no_compile_report(
    registrar: Registrar, files: Path, tmp_path: Path
) -> None:
    import skl2onnx

    model = joblib.load(files / "iris.joblib")
    onx = skl2onnx.to_onnx(model, np.zeros((1, 4), np.float32), options={"zipmap": False})
    path = tmp_path / "iris.onnx"
    path.write_bytes(onx.SerializeToString())
    version = registrar.register(request(files, artifact=str(path), sample=None))
    assert (version.framework, version.serving, version.compile_report) == ("onnx", None, None)


def test_a_corrupt_compiled_artifact_is_an_error_not_a_fallback(
    registrar: Registrar, files: Path
) -> None:
    version = registrar.register(request(files))
    assert version.serving is not None
    stored = registrar.guard.store.sealed_path("iris", 1, version.serving.digest)
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes()[:-10])
    served = registrar.source_for(ModelRef("iris"))
    assert served.prepare is not None
    with pytest.raises(IntegrityError, match=r"serving artifact \(onnx\) .* of iris@1 failed"):
        served.prepare().__enter__()
    original = registrar.source_for(ModelRef("iris"), prefer_original=True)
    assert original.prepare is not None
    with original.prepare() as plain:
        assert plain.is_file()


def test_jurisdiction_is_recorded_and_validated(registrar: Registrar, files: Path) -> None:
    version = registrar.register(request(files, jurisdiction="eu", compile=False))
    assert registrar.store.get_version("iris", 1).jurisdiction == version.jurisdiction == "eu"
    with pytest.raises(InvalidInput, match="invalid jurisdiction"):
        registrar.register(request(files, jurisdiction="EU West", compile=False))
    assert [v.version for v in registrar.store.list_versions("iris")] == [1]


def test_a_failed_seal_records_nothing(
    registrar: Registrar, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise ConfigError("disk full")

    monkeypatch.setattr(registrar.guard, "commit", broken)
    with pytest.raises(ConfigError, match="disk full"):
        registrar.register(request(files))
    with pytest.raises(NotFound):
        registrar.store.list_versions("iris")
    assert list((registrar.guard.store.root / "tmp").iterdir()) == [], "staged files are removed"


def test_control_actions_are_audited_with_their_outcome(
    files: Path, audited: tuple[Registrar, SecurityStore]
) -> None:
    registrar, audit = audited
    registrar.register(request(files, compile=False))
    registrar.set_alias("iris", "champion", 1, "bob")
    with pytest.raises(NotFound):
        registrar.set_alias("iris", "champion", 7, "bob")
    registrar.remove_alias("iris", "champion", "bob")
    registrar.archive("iris", 1, "carol")
    entries = [(e.actor, e.action, e.target, e.outcome) for e in audit.list_audit()]
    # Each action is written as started before it runs, then with its outcome.
    outcomes = [
        ("alice", "model.register", "iris", "ok"),
        ("bob", "alias.set", "iris@champion", "ok"),
        ("bob", "alias.set", "iris@champion", "failed"),
        ("bob", "alias.remove", "iris@champion", "ok"),
        ("carol", "model.archive", "iris@1", "ok"),
    ]
    assert entries == [e for o in outcomes for e in ((*o[:3], "started"), o)]
    assert audit.verify_audit().intact


def test_failed_registrations_are_audited_even_with_a_bad_name(
    files: Path, audited: tuple[Registrar, SecurityStore]
) -> None:
    registrar, audit = audited
    # The name error is what the caller sees, never the audit log's refusal of a blank target.
    with pytest.raises(InvalidInput, match="invalid model name ''"):
        registrar.register(request(files, name=""))
    with pytest.raises(InvalidInput, match="invalid model name"):
        registrar.register(request(files, name="x" * 1100))
    with pytest.raises(InvalidInput, match="invalid model name"):
        registrar.register(request(files, name="bad\nname"))
    with pytest.raises(NotFound, match="no such file"):
        registrar.register(request(files, artifact=str(files / "missing.joblib")))
    with pytest.raises(InvalidInput, match="invalid alias"):
        registrar.set_alias("iris", "", 1, "bob")
    entries = [e for e in audit.list_audit() if e.outcome != "started"]
    assert [(e.actor, e.action, e.target, e.outcome) for e in entries] == [
        ("alice", "model.register", "''", "failed"),
        ("alice", "model.register", "'" + "x" * 60 + "...", "failed"),
        ("alice", "model.register", "'bad\\nname'", "failed"),
        ("alice", "model.register", "iris", "failed"),
        ("bob", "alias.set", "iris@''", "failed"),
    ]
    assert all(e.details is not None and e.details["error"] for e in entries)
    assert entries[0].details == {
        "error": "invalid model name '': expected 1-63 lowercase letters, digits, '.', '_' "
        "or '-', starting and ending with a letter or digit"
    }
    assert audit.verify_audit().problems == ()


def test_an_action_whose_started_entry_cannot_be_written_is_not_performed(
    files: Path, tmp_path: Path
) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'registry.db'}", SystemClock())

    class BrokenAudit:
        def append_audit(self, *args: object) -> None:
            raise ConfigError("the audit database is read-only")

    guard = ArtifactGuard(
        ArtifactStore(tmp_path / "artifacts"),
        FileKeyProvider(tmp_path / "keys" / "kek.json"),
        tmp_path / "keys" / "signing.pem",
        "alice",
    )
    registrar = Registrar(store, guard, RuntimeSettings(), BrokenAudit())
    try:
        with pytest.raises(ConfigError, match="read-only"):
            registrar.register(request(files, compile=False))
        with pytest.raises(NotFound):
            store.list_versions("iris")  # nothing was registered
    finally:
        store.close()
