"""Jurisdiction and manifest signer on every store backend, the 0002 -> 0003 migration, and a
registration that fails inside its transaction recording nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from modelport.core.errors import InvalidInput, NotFound
from modelport.db import open_engine, write
from modelport.registry import ArtifactSigner, MetadataStore
from modelport.registry._schema import MIGRATIONS

from ._support import FakeClock, new_version, seed_old_database

SIGNER = ArtifactSigner(identity="alice", key_id="ed25519:" + "ab" * 32)


def test_jurisdiction_and_signer_round_trip(store: MetadataStore) -> None:
    created = store.create_version(new_version(jurisdiction="eu", signer=SIGNER))
    assert (created.jurisdiction, created.signer) == ("eu", SIGNER)
    assert store.get_version("fraud", 1) == created
    plain = store.create_version(new_version())
    assert (plain.jurisdiction, plain.signer) == ("global", None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"jurisdiction": ""}, "invalid jurisdiction"),
        ({"jurisdiction": "EU"}, "invalid jurisdiction"),
        ({"jurisdiction": "eu/west"}, "invalid jurisdiction"),
        ({"signer": ArtifactSigner("", "k")}, "signer.identity"),
        ({"signer": ArtifactSigner("alice", " ")}, "signer.key_id"),
    ],
)
def test_malformed_security_fields_are_refused(
    store: MetadataStore, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.create_version(new_version(**changes))


def test_before_commit_sees_the_number_and_can_abort(store: MetadataStore) -> None:
    seen: list[int] = []
    store.create_version(new_version(), before_commit=seen.append)
    store.create_version(new_version(), before_commit=seen.append)
    assert seen == [1, 2]

    def fail(number: int) -> None:
        seen.append(number)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.create_version(new_version(), before_commit=fail)
    assert seen[-1] == 3
    assert [v.version for v in store.list_versions("fraud")] == [1, 2]
    with pytest.raises(OSError):
        store.create_version(new_version("newcomer"), before_commit=fail)
    with pytest.raises(NotFound):
        store.list_versions("newcomer")
    assert store.create_version(new_version()).version == 3, "the number is reused"


def test_migrating_a_0002_database_with_data(backend_url: str, clock: FakeClock) -> None:
    seed_old_database(backend_url, "0002", datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC))
    with MetadataStore(backend_url, clock) as store:
        old = store.get_version("old", 1)
        assert (old.jurisdiction, old.signer) == ("global", None)
        new = store.create_version(new_version("old", jurisdiction="eu", signer=SIGNER))
        assert (new.version, new.jurisdiction, new.signer) == (2, "eu", SIGNER)


def test_downgrading_to_0002_keeps_the_versions(backend_url: str, clock: FakeClock) -> None:
    with MetadataStore(backend_url, clock) as store:
        store.create_version(new_version(jurisdiction="eu", signer=SIGNER))
        store.set_alias("fraud", "champion", 1, "alice")
    engine = open_engine(backend_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS.script_dir))
    try:
        with write(engine) as conn:
            config.attributes["connection"] = conn
            config.attributes["version_table"] = MIGRATIONS.version_table
            command.downgrade(config, "0002")
        with engine.connect() as conn:
            columns = conn.execute(text("SELECT * FROM model_versions")).keys()
            assert "jurisdiction" not in columns and "signer" not in columns
            assert conn.execute(text("SELECT count(*) FROM aliases")).scalar_one() == 1
    finally:
        engine.dispose()
    with MetadataStore(backend_url, clock) as store:  # and back up again
        again = store.get_version("fraud", 1)
        assert (again.jurisdiction, again.signer) == ("global", None)
