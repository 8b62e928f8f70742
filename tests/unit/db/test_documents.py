"""The versioned document table on its own (in-memory SQLite): digests, generations, messages.

The deployment and alert rule stores' contract tests cover it on PostgreSQL too; here a table of
its own checks what they cannot reach: its own columns, corrupt documents, the messages' kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import JSON, BigInteger, Column, Engine, MetaData, String, Table, Text, update

from modelport.core.errors import Conflict, InvalidInput, NotFound
from modelport.core.errors import IntegrityError as CorruptData
from modelport.db import Applied, DocumentTable, UTCDateTime, document_digest, open_engine, write

T0 = datetime(2026, 1, 1, tzinfo=UTC)

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("topic", String(63), nullable=False, unique=True),  # unique: a stand-in for a race
    Column("generation", BigInteger, nullable=False),
    Column("document", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", Text, nullable=False),
)


@dataclass(frozen=True)
class Note:
    name: str
    text: str

    def document(self) -> dict[str, Any]:
        return {"name": self.name, "text": self.text}


@dataclass(frozen=True)
class StoredNote:
    note: Note
    generation: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


def parse_note(document: Any) -> Note:
    if not isinstance(document.get("text"), str):
        raise InvalidInput("text: not a string")
    return Note(document["name"], document["text"])


@pytest.fixture
def engine() -> Iterator[Engine]:
    opened = open_engine("sqlite://")
    metadata.create_all(opened)
    yield opened
    opened.dispose()


@pytest.fixture
def table(engine: Engine) -> DocumentTable[Note, StoredNote]:
    return DocumentTable(engine, notes, "internal note", parse_note, StoredNote)


def test_the_digest_is_of_the_canonical_json() -> None:
    expected = hashlib.sha256(b'{"a":[1,2],"b":{"c":null}}').hexdigest()
    assert document_digest({"b": {"c": None}, "a": [1, 2]}) == expected


def test_apply_creates_keeps_and_raises_the_generation(
    table: DocumentTable[Note, StoredNote],
) -> None:
    first = table.apply(Note("n", "one"), "alice", T0, topic="t")
    assert (first.previous, first.changed) == (None, True)
    assert first.stored == StoredNote(Note("n", "one"), 1, T0, "alice", T0, "alice")

    again = table.apply(Note("n", "one"), "bob", T0 + timedelta(1), topic="t")
    assert again == Applied(first.stored, Note("n", "one"), changed=False)

    later = T0 + timedelta(2)
    second = table.apply(Note("n", "two"), "bob", later, topic="u")
    assert (second.previous, second.changed) == (Note("n", "one"), True)
    assert second.stored == StoredNote(Note("n", "two"), 2, T0, "alice", later, "bob")
    assert table.generations() == {"n": 2}


def test_own_columns_are_written_and_filtered_on(table: DocumentTable[Note, StoredNote]) -> None:
    table.apply(Note("b", "x"), "a", T0, topic="red")
    table.apply(Note("a", "x"), "a", T0, topic="blue")
    assert [s.note.name for s in table.list()] == ["a", "b"]
    assert [s.note.name for s in table.list(notes.c.topic == "red")] == ["b"]
    table.apply(Note("b", "y"), "a", T0, topic="green")
    assert table.list(notes.c.topic == "red") == []
    assert [s.note.text for s in table.list(notes.c.topic == "green")] == ["y"]


def test_missing_documents(table: DocumentTable[Note, StoredNote]) -> None:
    assert table.find("nope") is None
    with pytest.raises(NotFound, match="^no internal note 'nope'$"):
        table.get("nope")
    with pytest.raises(NotFound, match="^no internal note 'nope'$"):
        table.delete("nope")


def test_delete_returns_what_was_stored(table: DocumentTable[Note, StoredNote]) -> None:
    stored = table.apply(Note("n", "x"), "a", T0, topic="t").stored
    assert table.find("n") == stored
    assert table.delete("n") == stored
    assert table.find("n") is None
    assert table.generations() == {}


def test_an_integrity_error_on_insert_is_a_conflict(
    table: DocumentTable[Note, StoredNote],
) -> None:
    table.apply(Note("a", "x"), "a", T0, topic="t")
    with pytest.raises(Conflict) as caught:
        table.apply(Note("b", "x"), "a", T0, topic="t")
    assert str(caught.value) == (
        "internal note 'b' was created by another writer at the same moment; apply again"
    )
    assert table.find("b") is None


def test_a_corrupt_stored_document_is_an_integrity_error(
    engine: Engine, table: DocumentTable[Note, StoredNote]
) -> None:
    table.apply(Note("n", "x"), "a", T0, topic="t")
    with write(engine) as conn:
        conn.execute(update(notes).values(document={"name": "n", "text": 1}))
    message = "^the stored internal note 'n' is not valid: text: not a string$"
    for read in (table.get, table.find, lambda name: table.list()):
        with pytest.raises(CorruptData, match=message):
            read("n")
    with pytest.raises(CorruptData, match=message):
        table.apply(Note("n", "y"), "a", T0, topic="t")
    with pytest.raises(CorruptData, match=message):
        table.delete("n")
    assert table.generations() == {}  # removed all the same
