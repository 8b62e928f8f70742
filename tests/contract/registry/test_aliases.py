"""Aliases and their history, on every store backend."""

from __future__ import annotations

import pytest

from modelport.core.errors import Conflict, InvalidInput, NotFound
from modelport.registry import AliasEvent, MetadataStore

from ._support import START, FakeClock, new_version


@pytest.fixture
def three(store: MetadataStore) -> MetadataStore:
    for _ in range(3):
        store.create_version(new_version())
    return store


def test_set_alias_creates_then_moves(three: MetadataStore, clock: FakeClock) -> None:
    first = three.set_alias("fraud", "champion", 1, "alice")
    assert first == AliasEvent("fraud", "champion", 1, None, "alice", START)
    moved_at = clock.advance(5)
    moved = three.set_alias("fraud", "champion", 2, "bob")
    assert moved == AliasEvent("fraud", "champion", 2, 1, "bob", moved_at)
    assert three.get_version("fraud", 1).aliases == ()
    assert three.get_version("fraud", 2).aliases == ("champion",)


def test_setting_the_current_target_records_nothing(three: MetadataStore, clock: FakeClock) -> None:
    first = three.set_alias("fraud", "champion", 1, "alice")
    clock.advance(5)
    assert three.set_alias("fraud", "champion", 1, "bob") == first
    assert three.alias_history("fraud") == [first]


def test_set_alias_errors(three: MetadataStore) -> None:
    with pytest.raises(InvalidInput, match="invalid alias '7'"):
        three.set_alias("fraud", "7", 1, "alice")
    with pytest.raises(InvalidInput, match="actor"):
        three.set_alias("fraud", "champion", 1, " ")
    with pytest.raises(NotFound, match=r"^unknown model 'churn'$"):
        three.set_alias("churn", "champion", 1, "alice")
    with pytest.raises(NotFound, match=r"^model 'fraud' has no version 4; versions: 1, 2, 3$"):
        three.set_alias("fraud", "champion", 4, "alice")
    three.archive("fraud", 2, "alice")
    with pytest.raises(
        Conflict,
        match=r"^version 2 of 'fraud' is archived; archived versions "
        r"cannot take an alias$",
    ):
        three.set_alias("fraud", "champion", 2, "alice")
    assert three.alias_history("fraud") == []


def test_remove_alias(three: MetadataStore, clock: FakeClock) -> None:
    three.set_alias("fraud", "champion", 3, "alice")
    removed_at = clock.advance(1)
    removed = three.remove_alias("fraud", "champion", "bob")
    assert removed == AliasEvent("fraud", "champion", None, 3, "bob", removed_at)
    assert three.get_version("fraud", 3).aliases == ()
    assert three.list_models()[0].aliases == {}
    three.archive("fraud", 3, "bob")  # nothing points at it any more


def test_remove_unknown_alias(three: MetadataStore) -> None:
    three.set_alias("fraud", "challenger", 2, "alice")
    with pytest.raises(
        NotFound,
        match=r"^model 'fraud' has no alias 'champion'; aliases: "
        r"'challenger'$",
    ):
        three.remove_alias("fraud", "champion", "alice")
    three.remove_alias("fraud", "challenger", "alice")
    with pytest.raises(NotFound, match=r"aliases: none$"):
        three.remove_alias("fraud", "challenger", "alice")


def test_history_is_oldest_first_and_filterable(three: MetadataStore, clock: FakeClock) -> None:
    # Same timestamp for several moves: the order must still be the order of the moves.
    three.set_alias("fraud", "champion", 1, "alice")
    three.set_alias("fraud", "challenger", 2, "alice")
    three.set_alias("fraud", "champion", 2, "alice")
    clock.advance(1)
    three.remove_alias("fraud", "challenger", "bob")
    three.set_alias("fraud", "challenger", 3, "bob")
    moves = [(e.alias, e.previous_version, e.version) for e in three.alias_history("fraud")]
    assert moves == [
        ("champion", None, 1),
        ("challenger", None, 2),
        ("champion", 1, 2),
        ("challenger", 2, None),
        ("challenger", None, 3),
    ]
    champion = three.alias_history("fraud", "champion")
    assert [(e.previous_version, e.version) for e in champion] == [(None, 1), (1, 2)]
    assert three.alias_history("fraud", "never-set") == []


def test_history_errors(three: MetadataStore) -> None:
    with pytest.raises(NotFound, match=r"^unknown model 'churn'$"):
        three.alias_history("churn")
    with pytest.raises(InvalidInput, match="invalid alias"):
        three.alias_history("fraud", "Bad Alias")


def test_aliases_are_per_model(three: MetadataStore) -> None:
    three.create_version(new_version("churn"))
    three.set_alias("fraud", "champion", 3, "alice")
    three.set_alias("churn", "champion", 1, "alice")
    assert three.alias_history("churn")[0].version == 1
    assert three.get_version("fraud", 3).aliases == ("champion",)
    assert three.get_version("churn", 1).aliases == ("champion",)
