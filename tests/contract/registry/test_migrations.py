"""Opening a store migrates its database once, to a schema that matches the code's tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text

from modelport.db import open_engine
from modelport.registry import MetadataStore
from modelport.registry._schema import MIGRATIONS, metadata
from tests.contract._schema import schema_drift

from ._support import FakeClock, new_version

HEAD = "0004"


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
    with MetadataStore(backend_url, clock) as store:
        store.create_version(new_version())
    with MetadataStore(backend_url, clock) as store:
        assert [v.version for v in store.list_versions("fraud")] == [1]
        assert store.create_version(new_version()).version == 2
    with raw(backend_url) as conn:
        revisions = (
            conn.execute(text(f"SELECT version_num FROM {MIGRATIONS.version_table}"))
            .scalars()
            .all()
        )
    assert revisions == [HEAD]


def test_migrated_schema_matches_the_table_definitions(backend_url: str, clock: FakeClock) -> None:
    MetadataStore(backend_url, clock).close()
    assert schema_drift(backend_url, MIGRATIONS, metadata) == []
