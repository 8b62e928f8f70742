"""Artifacts encrypted at rest and signed, through the real ``modelport`` command and server."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from modelport.testing import ServerProcess
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

ROW = "[[6.7, 3.0, 5.2, 2.3]]"


def ok(home: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    done = modelport(home, *args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails(home: Path, code: int, *args: str, env: Mapping[str, str] | None = None) -> str:
    done = modelport(home, *args, env=env)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("work")
    X, y = load_iris(return_X_y=True)
    for depth in (1, 3):
        model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X, y)
        joblib.dump(model, work / f"tree{depth}.joblib")
    np.save(work / "sample.npy", X[:4])
    return work


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory, work: Path) -> Path:
    """A home with tree@1 (depth 1, jurisdiction eu) and tree@2 (depth 3), no ONNX copies."""
    home = tmp_path_factory.mktemp("home")
    out = ok(home, "register", "tree", str(work / "tree1.joblib"), "--jurisdiction", "eu")
    assert "registered tree@1" in out
    assert "registered tree@2" in ok(home, "register", "tree", str(work / "tree3.joblib"))
    return home


@pytest.fixture
def home(registered: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`registered` for a test to tamper with."""
    return Path(shutil.copytree(registered, tmp_path / "home"))


def sealed(home: Path, version: int) -> Path:
    digest = json.loads(ok(home, "models", "show", f"tree@{version}"))["artifact"]["digest"]
    return home / "artifacts" / "models" / "tree" / str(version) / f"{digest[7:]}.sealed"


def predict(home: Path, url: str, name: str) -> list[int]:
    out = json.loads(ok(home, "predict", name, "--url", url, "--data", ROW))
    predicted: list[int] = out["outputs"]["predict"]
    return predicted


def test_registration_records_jurisdiction_and_signer_and_seals(
    registered: Path, work: Path
) -> None:
    one = json.loads(ok(registered, "models", "show", "tree@1"))
    assert one["jurisdiction"] == "eu"
    assert one["signed_by"]["identity"] == "alice"
    assert one["signed_by"]["key_id"].startswith("ed25519:")
    assert json.loads(ok(registered, "models", "show", "tree@2"))["jurisdiction"] == "global"
    plain = (work / "tree1.joblib").read_bytes()
    stored = sealed(registered, 1).read_bytes()
    assert plain[:64] not in stored and len(stored) > len(plain)
    keys = registered / "keys"
    assert (keys / "kek.json").stat().st_mode & 0o777 == 0o600
    assert (keys / "signing.pem").stat().st_mode & 0o777 == 0o600
    assert (registered / "artifacts" / "models" / "tree" / "1" / "manifest.dsse.json").is_file()


def test_a_tampered_byte_fails_the_load_with_a_clear_error(home: Path) -> None:
    stored = sealed(home, 2)
    stored.chmod(0o600)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    message = fails(home, 6, "serve", "tree@2", "--port", "0")
    assert "artifact tree3.joblib sha256:" in message and "of tree@2 failed verification" in message
    assert "fails authentication" in message and "refusing to load" in message


def test_a_ciphertext_swapped_between_versions_fails(home: Path) -> None:
    first, second = sealed(home, 1), sealed(home, 2)
    second.chmod(0o600)
    shutil.copyfile(first, second)
    message = fails(home, 6, "serve", "tree@2", "--port", "0")
    assert "of tree@2 failed verification" in message and "swapped" in message
    # Moving the key record along with it does not help: it is bound to tree@1.
    shutil.copyfile(first.with_suffix(".key"), second.with_suffix(".key"))
    message = fails(home, 6, "serve", "tree@2", "--port", "0")
    assert "of tree@2 failed verification" in message and "belongs to tree@1 (eu)" in message


def test_serving_needs_the_kek_the_artifacts_were_sealed_with(tmp_path: Path, work: Path) -> None:
    home = tmp_path / "home"
    sealing = {
        "MODELPORT_SECURITY__ARTIFACTS__KEK_PROVIDER": "env",
        "MODELPORT_KEK": base64.b64encode(os.urandom(32)).decode(),
    }
    ok(home, "register", "tree", str(work / "tree1.joblib"), env=sealing)
    assert not (home / "keys" / "kek.json").exists(), "the env provider writes no key file"
    wrong = {**sealing, "MODELPORT_KEK": base64.b64encode(os.urandom(32)).decode()}
    message = fails(home, 6, "serve", "tree", "--port", "0", env=wrong)
    assert "of tree@1 failed verification" in message and "wrong key-encryption key" in message
    bad = {**sealing, "MODELPORT_KEK": "not base64"}
    assert "MODELPORT_KEK is not valid base64" in fails(
        home, 2, "serve", "tree", "--port", "0", env=bad
    )
    with ServerProcess(["tree"], env={"MODELPORT_HOME": str(home), **sealing}) as server:
        assert predict(home, server.url, "tree") == [1]


def test_models_still_serve_after_rotating_the_kek(home: Path) -> None:
    ring = home / "keys" / "kek.json"
    old = json.loads(ring.read_text())["active"]["id"]
    artifacts = {p: p.read_bytes() for p in (home / "artifacts").glob("models/*/*/*.sealed")}
    out = ok(home, "keys", "rotate-kek")
    assert (
        f"re-wrapped {len(artifacts)} data key(s) with KEK" in out and f"retired KEK {old}" in out
    )
    doc = json.loads(ring.read_text())
    assert doc["active"]["id"] != old and doc["retiring"] == []
    assert ring.stat().st_mode & 0o777 == 0o600
    assert {p: p.read_bytes() for p in artifacts} == artifacts, "no artifact was re-encrypted"
    with ServerProcess(["one=tree@1", "two=tree@2"], env={"MODELPORT_HOME": str(home)}) as server:
        assert predict(home, server.url, "one") == [1]
        assert predict(home, server.url, "two") == [2]
