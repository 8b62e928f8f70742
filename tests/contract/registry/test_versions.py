"""Registering, reading, resolving and archiving versions, on every store backend."""

from __future__ import annotations

import dataclasses
from datetime import UTC
from typing import Any

import pytest

from modelport.core.errors import ConfigError, Conflict, InvalidInput, NotFound
from modelport.core.refs import ModelRef
from modelport.core.signature import Signature
from modelport.registry import Lineage, MetadataStore

from ._support import START, FakeClock, new_version

SIGNATURE = Signature.from_dict(
    {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}],
    }
)


def test_versions_are_numbered_per_model(store: MetadataStore) -> None:
    assert [store.create_version(new_version("fraud")).version for _ in range(3)] == [1, 2, 3]
    assert store.create_version(new_version("churn")).version == 1
    assert store.create_version(new_version("fraud")).version == 4


def test_every_field_round_trips(store: MetadataStore, clock: FakeClock) -> None:
    store.create_version(new_version())
    created = store.create_version(
        new_version(
            signature=SIGNATURE,
            entrypoint="pkg.module:Model",
            tags={"team": "risk", "stage": "dev"},
            metrics={"auc": 0.91, "rows": 3},
            description="gradient boosted, tuned",
            artifact_size=2**40,
            lineage=Lineage(
                registered_by="bob",
                training_data_digest="sha256:" + "cd" * 32,
                code_version="git:abc123",
                parent_version=1,
            ),
        )
    )
    assert created.version == 2
    assert created.signature == SIGNATURE
    assert created.metrics == {"auc": 0.91, "rows": 3.0}
    assert created.lineage.parent_version == 1
    assert created.status == "active"
    assert created.aliases == ()
    assert created.archived_at is None and created.archived_by is None
    assert store.get_version("fraud", 2) == created
    assert store.list_versions("fraud")[1] == created


def test_timestamps_come_from_the_clock_as_aware_utc(
    store: MetadataStore, clock: FakeClock
) -> None:
    first = store.create_version(new_version())
    later = clock.advance(90)
    store.set_alias("fraud", "champion", 1, "alice")
    reread = store.get_version("fraud", 1)
    for stamp in (first.created_at, reread.created_at):
        assert stamp == START
        assert stamp.tzinfo is UTC
    [summary] = store.list_models()
    assert summary.created_at == START and summary.created_at.tzinfo is UTC
    assert summary.updated_at == later and summary.updated_at.tzinfo is UTC
    [event] = store.alias_history("fraud")
    assert event.at == later and event.at.tzinfo is UTC


def test_a_naive_clock_is_a_configuration_error(store: MetadataStore, clock: FakeClock) -> None:
    clock.set_now(clock.now().replace(tzinfo=None))
    with pytest.raises(ConfigError, match="aware"):
        store.create_version(new_version())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Fraud"}, "invalid model name"),
        ({"artifact_digest": "md5:abc"}, "invalid digest"),
        ({"artifact_size": -1}, "artifact_size"),
        ({"artifact_filename": "../model.onnx"}, "bare file name"),
        ({"framework": " "}, "framework"),
        ({"lineage": Lineage(registered_by="")}, "registered_by"),
        ({"lineage": Lineage("a", training_data_digest="x")}, "invalid digest"),
        ({"lineage": Lineage("a", parent_version=0)}, "parent_version"),
        ({"tags": {"k": 1}}, "tags"),
        ({"metrics": {"auc": float("nan")}}, "finite"),
        ({"metrics": {"auc": "high"}}, "number"),
    ],
)
def test_malformed_registrations_are_refused(
    store: MetadataStore, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.create_version(new_version(**changes))
    assert store.list_models() == []


def test_parent_version_must_exist(store: MetadataStore) -> None:
    with pytest.raises(InvalidInput, match=r"parent_version 1 is not a version of 'fraud'"):
        store.create_version(new_version(lineage=Lineage("alice", parent_version=1)))
    assert store.list_models() == [], "the failed registration left no model behind"
    store.create_version(new_version())
    with pytest.raises(InvalidInput, match=r"versions: 1$"):
        store.create_version(new_version(lineage=Lineage("alice", parent_version=5)))
    assert store.create_version(new_version(lineage=Lineage("a", parent_version=1))).version == 2


def test_unknown_models_and_versions(store: MetadataStore) -> None:
    with pytest.raises(NotFound, match=r"^unknown model 'fraud'$"):
        store.get_version("fraud", 1)
    with pytest.raises(NotFound, match=r"^unknown model 'fraud'$"):
        store.list_versions("fraud")
    with pytest.raises(NotFound, match=r"^unknown model 'fraud'$"):
        store.resolve(ModelRef("fraud"))
    store.create_version(new_version())
    store.create_version(new_version())
    with pytest.raises(NotFound, match=r"^model 'fraud' has no version 7; versions: 1, 2$"):
        store.get_version("fraud", 7)
    with pytest.raises(InvalidInput):
        store.get_version("NOT a name", 1)


def test_list_models_summarises(store: MetadataStore) -> None:
    assert store.list_models() == []
    for name in ("zeta", "alpha", "alpha", "alpha"):
        store.create_version(new_version(name))
    store.set_alias("alpha", "champion", 3, "alice")
    store.set_alias("alpha", "challenger", 2, "alice")
    store.archive("alpha", 1, "alice")
    alpha, zeta = store.list_models()
    assert (alpha.name, alpha.latest_version, alpha.version_count, alpha.active_count) == (
        "alpha",
        3,
        3,
        2,
    )
    assert alpha.aliases == {"challenger": 2, "champion": 3}
    assert (zeta.name, zeta.latest_version, zeta.aliases) == ("zeta", 1, {})


def test_list_versions_in_order_with_aliases(store: MetadataStore) -> None:
    for _ in range(3):
        store.create_version(new_version())
    store.set_alias("fraud", "champion", 2, "alice")
    store.set_alias("fraud", "backup", 2, "alice")
    versions = store.list_versions("fraud")
    assert [v.version for v in versions] == [1, 2, 3]
    assert [v.aliases for v in versions] == [(), ("backup", "champion"), ()]


def test_resolve(store: MetadataStore) -> None:
    for _ in range(3):
        store.create_version(new_version())
    store.set_alias("fraud", "champion", 1, "alice")
    assert store.resolve(ModelRef("fraud")).version == 3
    assert store.resolve(ModelRef.parse("fraud@2")).version == 2
    champion = store.resolve(ModelRef.parse("fraud@champion"))
    assert (champion.version, champion.aliases) == (1, ("champion",))
    store.archive("fraud", 3, "alice")
    assert store.resolve(ModelRef("fraud")).version == 2, "latest skips archived versions"
    assert store.resolve(ModelRef.parse("fraud@3")).status == "archived", "pins still resolve"
    with pytest.raises(
        NotFound,
        match=r"^model 'fraud' has no alias 'staging'; aliases: "
        r"'champion'$",
    ):
        store.resolve(ModelRef.parse("fraud@staging"))
    with pytest.raises(NotFound, match=r"has no version 9; versions: 1, 2, 3$"):
        store.resolve(ModelRef.parse("fraud@9"))


def test_resolve_when_every_version_is_archived(store: MetadataStore) -> None:
    store.create_version(new_version())
    store.archive("fraud", 1, "alice")
    with pytest.raises(
        NotFound, match=r"^model 'fraud' has no active version; archived versions: 1$"
    ):
        store.resolve(ModelRef("fraud"))


def test_archive(store: MetadataStore, clock: FakeClock) -> None:
    store.create_version(new_version())
    store.create_version(new_version())
    when = clock.advance(60)
    archived = store.archive("fraud", 1, "bob")
    assert (archived.status, archived.archived_by, archived.archived_at) == (
        "archived",
        "bob",
        when,
    )
    assert store.get_version("fraud", 1) == archived
    clock.advance(60)
    assert store.archive("fraud", 1, "carol") == archived, "archiving twice changes nothing"
    assert store.list_models()[0].active_count == 1


def test_archive_refuses_a_version_behind_an_alias(store: MetadataStore) -> None:
    for _ in range(3):
        store.create_version(new_version())
    store.set_alias("fraud", "champion", 3, "alice")
    with pytest.raises(
        Conflict,
        match=r"^version 3 of 'fraud' is behind alias 'champion'; "
        r"move the alias first$",
    ):
        store.archive("fraud", 3, "alice")
    store.set_alias("fraud", "backup", 3, "alice")
    with pytest.raises(Conflict, match=r"behind aliases 'backup', 'champion'; move the aliases"):
        store.archive("fraud", 3, "alice")
    assert store.get_version("fraud", 3).status == "active"
    with pytest.raises(NotFound, match=r"no version 4"):
        store.archive("fraud", 4, "alice")
    with pytest.raises(InvalidInput, match="actor"):
        store.archive("fraud", 1, "")


def test_records_are_plain_values(store: MetadataStore) -> None:
    created = store.create_version(new_version(tags={"a": "b"}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        created.version = 2  # type: ignore[misc]
    created.tags["a"] = "changed"
    assert store.get_version("fraud", 1).tags == {"a": "b"}
