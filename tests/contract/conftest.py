"""The backends every contract suite runs against: SQLite and PostgreSQL.

PostgreSQL: one throw-away database per test session (``modelport_test_<hex>``, dropped at the
end) and one fresh schema per test, so every test starts from an unmigrated, empty database. The
server on 127.0.0.1:5432 must be up: when it is not, the PostgreSQL tests fail (CI starts it).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}?options=-csearch_path%3D{schema}"

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"modelport_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database that no store has opened yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'metadata.db'}"
    db: str = request.getfixturevalue("pg_database")
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(
        f"host=127.0.0.1 port=5432 user=postgres dbname={db}", autocommit=True
    ) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return PG_URL.format(db=db, schema=schema)
