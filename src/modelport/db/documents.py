"""A table of named, versioned resource documents: apply by digest, read, list, delete.

Deployments (the experiments package) and alert rules (monitoring) are kept alike, one row per
name: the validated document (camelCase, defaults filled in), a SHA-256 of its canonical JSON
(:func:`document_digest`), a generation that grows by one with every change, and when and by whom
the row was created and last changed. :class:`DocumentTable` reads and writes such a table; each
store keeps what is its own: its record type, any column of its own, its docstrings.

Applying is idempotent: a document equal to the stored one (the same digest) changes nothing and
keeps the generation; any other change raises the generation by one. Readers notice changes by
comparing generations, and a deleted document by its absence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, Row, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from modelport.core.errors import Conflict, InvalidInput, NotFound
from modelport.core.errors import IntegrityError as CorruptData
from modelport.db.engine import read, write

__all__ = ["Applied", "Document", "DocumentTable", "document_digest"]


class Document(Protocol):
    """A validated resource document, as the table needs it."""

    @property
    def name(self) -> str:
        """The primary key."""
        ...

    def document(self) -> dict[str, Any]:
        """The JSON form stored (and digested)."""
        ...


D = TypeVar("D", bound=Document)
"""The parsed document (``Deployment``, ``AlertRule``)."""
S = TypeVar("S")
"""The store's record of a stored document (``StoredDeployment``, ``StoredAlertRule``)."""


@dataclass(frozen=True, slots=True)
class Applied(Generic[D, S]):
    """What an apply did.

    Attributes:
        stored: The record as it is now stored.
        previous: The document it replaced; ``None`` when the document is new.
        changed: Whether anything was written (``False``: the same document was applied again).
    """

    stored: S
    previous: D | None
    changed: bool


def document_digest(document: dict[str, Any]) -> str:
    """The SHA-256 (hex) of a document's canonical JSON: its keys sorted, so equal documents match.

    Args:
        document: A document's JSON form.

    Returns:
        64 lowercase hex digits.
    """
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


class DocumentTable(Generic[D, S]):
    """The rows of one kind of document, read and written in the metadata database.

    The table has the columns ``name`` (its primary key), ``generation``, ``document`` (JSON),
    ``digest``, ``created_at``, ``created_by``, ``updated_at`` and ``updated_by``; columns of its
    own are the caller's to fill (:meth:`apply`) and filter on (:meth:`list`).

    Args:
        engine: The metadata database, its schema migrated.
        table: The table.
        kind: The resource's name in messages (``deployment``, ``alert rule``); "a" or "an"
            goes before it by its first letter.
        parse: Validates a stored document; raises ``InvalidInput`` when it is not valid.
        record: Makes the store's record from the parsed document, ``generation``,
            ``created_at``, ``created_by``, ``updated_at`` and ``updated_by``, in that order (the
            record class itself, when its fields come in that order).
    """

    def __init__(
        self,
        engine: Engine,
        table: Table,
        kind: str,
        parse: Callable[[Any], D],
        record: Callable[[D, int, datetime, str, datetime, str], S],
    ) -> None:
        self._engine = engine
        self._table = table
        self._kind = kind
        self._a_kind = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
        self._parse = parse
        self._record = record

    def apply(self, document: D, actor: str, now: datetime, **columns: Any) -> Applied[D, S]:
        """Create the document, or replace the stored one with the same name.

        Args:
            document: A validated document.
            actor: Who applies it (recorded as creator or last changer).
            now: When (recorded as creation or change time).
            **columns: The values of the table's own columns, taken from the document: they are
                written when it is (a document applied again unchanged writes nothing).

        Raises:
            Conflict: Another writer created the same document at the same moment; apply again.
            IntegrityError: The stored document is not valid.
        """
        name = document.name
        body = document.document()
        digest = document_digest(body)
        try:
            with write(self._engine) as conn:
                row = self._row(conn, name, lock=True)
                if row is None:
                    conn.execute(
                        insert(self._table).values(
                            name=name,
                            generation=1,
                            document=body,
                            digest=digest,
                            created_at=now,
                            created_by=actor,
                            updated_at=now,
                            updated_by=actor,
                            **columns,
                        )
                    )
                    return Applied(self._stored(self._row(conn, name)), None, changed=True)
                previous = self._document(row)
                if row.digest == digest:
                    return Applied(self._stored(row), previous, changed=False)
                conn.execute(
                    update(self._table)
                    .where(self._table.c.name == name)
                    .values(
                        generation=row.generation + 1,
                        document=body,
                        digest=digest,
                        updated_at=now,
                        updated_by=actor,
                        **columns,
                    )
                )
                return Applied(self._stored(self._row(conn, name)), previous, changed=True)
        except IntegrityError:
            raise Conflict(
                f"{self._kind} {name!r} was created by another writer at the same moment; "
                "apply again"
            ) from None

    def get(self, name: str) -> S:
        """The record of the document called ``name``.

        Raises:
            NotFound: There is none.
            IntegrityError: The stored document is not valid.
        """
        with read(self._engine) as conn:
            row = self._row(conn, name)
        if row is None:
            raise NotFound(f"no {self._kind} {name!r}")
        return self._stored(row)

    def find(self, name: str) -> S | None:
        """The record of the document called ``name``, or ``None`` when there is none.

        Raises:
            IntegrityError: The stored document is not valid.
        """
        with read(self._engine) as conn:
            row = self._row(conn, name)
        return None if row is None else self._stored(row)

    def generations(self) -> dict[str, int]:
        """Each document's generation, by name: what readers poll to notice changes cheaply."""
        with read(self._engine) as conn:
            rows = conn.execute(select(self._table.c.name, self._table.c.generation)).all()
        return {row.name: row.generation for row in rows}

    def delete(self, name: str) -> S:
        """Remove the document called ``name``; return its record.

        Raises:
            NotFound: There is none.
            IntegrityError: The stored document is not valid (it is removed all the same).
        """
        with write(self._engine) as conn:
            row = self._row(conn, name, lock=True)
            if row is None:
                raise NotFound(f"no {self._kind} {name!r}")
            conn.execute(delete(self._table).where(self._table.c.name == name))
        return self._stored(row)

    def list(self, where: ColumnElement[bool] | None = None) -> list[S]:
        """Every document's record, or those whose row matches ``where``, by name.

        Raises:
            IntegrityError: A stored document is not valid.
        """
        query = select(self._table).order_by(self._table.c.name)
        if where is not None:
            query = query.where(where)
        with read(self._engine) as conn:
            rows = conn.execute(query).all()
        return [self._stored(row) for row in rows]

    def _row(self, conn: Connection, name: str, lock: bool = False) -> Row[Any] | None:
        query = select(self._table).where(self._table.c.name == name)
        if lock:
            query = query.with_for_update()
        return conn.execute(query).one_or_none()

    def _stored(self, row: Row[Any] | None) -> S:
        if row is None:  # only after an insert in the same transaction, which cannot be
            raise CorruptData(f"{self._a_kind} written in this transaction cannot be read back")
        return self._record(
            self._document(row),
            row.generation,
            row.created_at,
            row.created_by,
            row.updated_at,
            row.updated_by,
        )

    def _document(self, row: Row[Any]) -> D:
        try:
            return self._parse(row.document)
        except InvalidInput as exc:
            raise CorruptData(f"the stored {self._kind} {row.name!r} is not valid: {exc}") from None
