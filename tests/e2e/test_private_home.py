"""A data directory made by ``modelport`` is private: folders 0700, files 0600 (or stricter)."""

from __future__ import annotations

import stat
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("private")
    X, y = load_iris(return_X_y=True)
    model = work / "tree.joblib"
    joblib.dump(DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y), model)
    home = work / "home"
    for args in (("register", "tree", str(model)), ("keys", "create", "--role", "viewer")):
        done = modelport(home, *args)
        assert done.returncode == 0, done.stderr
    return home


def loose(home: Path, under: str = "") -> dict[str, str]:
    """Everything below ``home/under`` that group or others may use, with its mode."""
    top = home / under
    return {
        p.relative_to(home).as_posix() or ".": oct(stat.S_IMODE(p.stat().st_mode))
        for p in (top, *top.rglob("*"))
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    }


def test_a_fresh_home_after_register_and_keys_is_private(home: Path) -> None:
    names = {p.relative_to(home).as_posix() for p in home.rglob("*")}
    assert {"modelport.db", "keys/signing.pem", "keys/signing.pub.pem", "keys/kek.json"} <= names
    assert "audit/checkpoints.jsonl" in names
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "modelport.db").stat().st_mode) == 0o600
    assert loose(home) == {}, "group or others may use these"
    folders = [p for p in (home, *home.rglob("*")) if p.is_dir()]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in folders)


def test_the_artifact_folder_is_private(home: Path) -> None:
    assert loose(home, "artifacts") == {}
