"""SQLite connection settings, URL handling and migration errors (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import exc, text

from modelport.core.clock import SystemClock
from modelport.core.errors import ConfigError
from modelport.db import display_url, open_engine, read, write
from modelport.registry import Lineage, MetadataStore, NewVersion
from modelport.registry._schema import MIGRATIONS


def test_sqlite_folder_is_created_and_pragmas_are_set(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "registry.db"
    with MetadataStore(f"sqlite:///{db}", SystemClock()):
        assert db.is_file()
    engine = open_engine(f"sqlite:///{db}")
    try:
        with read(engine) as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    finally:
        engine.dispose()


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    MetadataStore(url, SystemClock()).close()
    engine = open_engine(url)
    try:
        with pytest.raises(exc.IntegrityError, match="FOREIGN KEY"), write(engine) as conn:
            conn.execute(text("INSERT INTO aliases (model_id, alias, version) VALUES (9, 'a', 1)"))
    finally:
        engine.dispose()


def test_in_memory_sqlite_keeps_one_database() -> None:
    with MetadataStore("sqlite://", SystemClock()) as store:
        store.create_version(
            NewVersion("m", "sha256:" + "0" * 64, 1, "m.bin", "python", Lineage("me"))
        )
        assert [m.name for m in store.list_models()] == ["m"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "invalid database URL"),
        ("mysql://root@localhost/db", "unsupported database URL"),
        ("sqlite+aiosqlite:///x.db", "unsupported database URL"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_engine(url)


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    engine = open_engine("postgresql://user:secret@127.0.0.1:5432/db")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert "secret" not in display_url(engine.url)
    finally:
        engine.dispose()


def test_unreachable_database_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="cannot open the metadata database"):
        MetadataStore("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2", SystemClock())


def test_unwritable_sqlite_folder_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot create the database folder"):
        open_engine(f"sqlite:///{blocker / 'sub' / 'r.db'}")


def test_a_schema_from_a_newer_modelport_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    MetadataStore(url, SystemClock()).close()
    engine = open_engine(url)
    try:
        with write(engine) as conn:
            conn.execute(text(f"UPDATE {MIGRATIONS.version_table} SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(ConfigError, match="newer modelport"):
        MetadataStore(url, SystemClock())
