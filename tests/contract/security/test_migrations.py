"""The security schema migrates once, matches the code's tables, and shares the registry's database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection, inspect, text

from modelport.db import open_engine
from modelport.registry import MetadataStore
from modelport.registry._schema import MIGRATIONS as REGISTRY_MIGRATIONS
from modelport.security._schema import MIGRATIONS, metadata
from modelport.security.audit import AuditHead
from modelport.security.identity import Grant, Role
from modelport.security.store import SecurityStore
from tests.contract._schema import schema_drift

from ._support import FakeClock

HEAD = "0002"


@contextmanager
def raw(url: str) -> Iterator[Connection]:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def test_opening_again_keeps_data_and_does_not_migrate_twice(
    backend_url: str, clock: FakeClock
) -> None:
    with SecurityStore(backend_url, clock) as store:
        _, token = store.create_key("x", (Grant(Role.ADMIN),), None, "alice")
    with SecurityStore(backend_url, clock) as store:
        store.resolve_api_key(token)
        assert store.verify_audit().entries == 1
    with raw(backend_url) as conn:
        revisions = (
            conn.execute(text(f"SELECT version_num FROM {MIGRATIONS.version_table}"))
            .scalars()
            .all()
        )
    assert revisions == [HEAD]
    assert MIGRATIONS.version_table == "security_alembic_version"


def test_a_new_database_starts_with_an_empty_head(backend_url: str, clock: FakeClock) -> None:
    with SecurityStore(backend_url, clock) as store:
        assert store.audit_head() == AuditHead(0, "0" * 64)


def test_migrated_schema_matches_the_table_definitions(backend_url: str, clock: FakeClock) -> None:
    SecurityStore(backend_url, clock).close()
    assert schema_drift(backend_url, MIGRATIONS, metadata) == []


def test_registry_and_security_share_one_database(backend_url: str, clock: FakeClock) -> None:
    with SecurityStore(backend_url, clock), MetadataStore(backend_url, clock):
        pass
    with MetadataStore(backend_url, clock), SecurityStore(backend_url, clock) as store:
        assert store.verify_audit().intact
    with raw(backend_url) as conn:
        tables = set(inspect(conn).get_table_names())
    assert {MIGRATIONS.version_table, REGISTRY_MIGRATIONS.version_table} <= tables
    assert {"api_keys", "audit_log", "audit_head", "models", "model_versions"} <= tables


def test_a_log_written_before_the_started_outcome_upgrades_intact(
    backend_url: str, clock: FakeClock
) -> None:
    from sqlalchemy.exc import IntegrityError

    from modelport.db import migrate

    engine = open_engine(backend_url)
    try:
        migrate(engine, MIGRATIONS, "0001")
        with engine.begin() as conn:
            started = text(
                "INSERT INTO audit_log (seq, at, actor, action, target, outcome, request_id, "
                "details, prev_hash, hash) VALUES (1, CURRENT_TIMESTAMP, 'a', 'b', 'c', "
                "'started', 'r', '{}', :h, :h)"
            )
            with pytest.raises(IntegrityError):  # revision 0001 refuses the outcome
                conn.execute(started, {"h": "0" * 64})
    finally:
        engine.dispose()
    with SecurityStore(backend_url, clock) as store:  # migrates to the head
        _, token = store.create_key("x", (Grant(Role.ADMIN),), None, "alice")
        store.append_audit("alice", "model.unload", "iris", "started", "r1")
        store.append_audit("alice", "model.unload", "iris", "ok", "r1")
        assert store.verify_audit().intact
        assert [e.outcome for e in store.iter_audit()] == ["ok", "started", "ok"]
