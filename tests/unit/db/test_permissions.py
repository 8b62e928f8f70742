"""The metadata database is created private: its folder 0700, the file and its -wal/-shm 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from modelport import db


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask, so nothing private comes from the umask alone."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_sqlite_database_and_its_folder_are_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "new" / "home" / "modelport.db"
    engine = db.open_engine(f"sqlite:///{path}")
    try:
        with db.write(engine) as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as conn:  # held open, so the -wal and -shm files stay
            conn.execute(text("SELECT * FROM t")).all()
            assert mode(path.parent) == 0o700
            assert mode(path) == 0o600
            for suffix in ("-wal", "-shm"):
                extra = path.with_name(path.name + suffix)
                assert extra.exists(), suffix
                assert mode(extra) == 0o600, suffix
    finally:
        engine.dispose()


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    engine = db.open_engine(f"sqlite:///{path}")
    try:
        with db.write(engine) as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
    finally:
        engine.dispose()
    assert mode(path) == 0o640, "an operator's choice for an existing file is left alone"
