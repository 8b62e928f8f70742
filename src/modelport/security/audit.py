"""The tamper-evident audit log: entries, their hash chain, and checking the chain.

Every entry is sealed with ``hash = SHA-256(prev_hash + canonical(entry))``, where ``prev_hash``
is the previous entry's hash (:data:`GENESIS_HASH` for the first) and the canonical form is the
entry's fields (``seq`` included) as JSON with sorted keys (:func:`canonical`). A separate head
record holds the last sequence number and hash and is updated in the same transaction as each
append, so cutting entries off the end is visible too.

The head record lives in the same database as the entries, so on its own the chain does not stop
someone who can write to the database from cutting entries off the end and moving the head, or
from deleting an entry and sealing the rest again (:func:`seal` is public, and the hash has no
key). Signed checkpoints close that gap: ``(seq, hash, time)`` of an entry, signed with a key kept
outside the database and written outside it (:mod:`modelport.security.checkpoints`). A
checkpoint vouches for its entry and, through the chain, for every entry before it.

:func:`verify_chain` is pure: it takes the stored entries in storage order, the head record and
the checkpoints whose signatures verified, and reports every problem it finds, each with the
sequence number it is about and its kind:

====================  ===========================================================================
kind                  meaning
====================  ===========================================================================
edited                an entry's content no longer matches its hash; or it was re-hashed after the
                      change, so the next entry (or the head record) no longer points at it; or
                      it was renumbered
deleted               entries are missing from the middle of the chain (the ``seq`` named is the
                      first)
inserted              an entry the chain does not account for: a second entry for a sequence
                      number the chain already has, or an entry after the last one the head record
                      (or a checkpoint) names
reordered             an entry stands out of order (including two entries whose numbers were
                      swapped)
truncated             entries are missing from the end: the head record or a signed checkpoint
                      names a later entry
resealed              an entry's hash is not the one a signed checkpoint holds for its position,
                      and no stored entry has that hash: the log was rewritten from there (or
                      earlier) and sealed again; one problem per run of such checkpoints
head-rewritten        the head record is behind the last signed checkpoint, or at the same entry
                      with another hash
head-missing          the head record itself is gone
bad-checkpoint        a line of the checkpoint file is not a checkpoint, or its signature does
                      not verify with a trusted key (forged or altered)
checkpoints-missing   the database holds entries but there is no checkpoint file (or it is empty)
====================  ===========================================================================

What checkpoints cannot catch: changes to entries after the last checkpoint (a tail that was
never checkpointed can be cut off unnoticed); entries someone adds after the last one with
:func:`seal` (the chain has no key, and the next checkpoint vouches for what it chains onto);
and anything done by someone who holds both the
database and the signing key (or can write the data directory where the key and checkpoints
live): they can rewrite the log and sign new checkpoints. Exporting the checkpoints regularly
to a place they cannot reach, and verifying with the public key kept there, bounds that.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from modelport.core.errors import InvalidInput

__all__ = [
    "GENESIS_HASH",
    "OUTCOMES",
    "AuditEntry",
    "AuditHead",
    "AuditReport",
    "ChainProblem",
    "Checkpoint",
    "ProblemKind",
    "canonical",
    "chain_is_intact",
    "entry_from_dict",
    "entry_to_dict",
    "seal",
    "to_json_line",
    "verify_chain",
]

GENESIS_HASH: Final = "0" * 64
"""The ``prev_hash`` of the first entry."""

OUTCOMES: Final = ("started", "ok", "denied", "failed")
"""What became of an audited action: a control action is written as ``started`` before it runs
(so an action whose entry cannot be written is not performed), then as ``ok`` or ``failed``."""

_MAX_TEXT: Final = 1024


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One sealed entry of the audit log.

    Args:
        seq: Position in the log: 1, 2, 3... without gaps.
        at: When it was recorded (UTC).
        actor: Who acted (``key:<id>``, ``jwt:<sub>``, ``cert:<subject>``, a local user).
        action: What was done (``key.create``, ``key.revoke``, ``deny.infer``...).
        target: What it was done to (a key id, a model name, ``*``); ``None`` when nothing.
        outcome: ``ok``, ``denied`` or ``failed``.
        request_id: The request it belongs to, when there was one.
        details: More about it, JSON data.
        prev_hash: The previous entry's hash (hex), :data:`GENESIS_HASH` for the first.
        hash: SHA-256 (hex) over ``prev_hash`` and :func:`canonical` of this entry.
    """

    seq: int
    at: datetime
    actor: str
    action: str
    target: str | None
    outcome: str
    request_id: str | None
    details: dict[str, Any] = field(hash=False)
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The head record: the last entry's sequence number and hash (0 and genesis when empty)."""

    seq: int = 0
    hash: str = GENESIS_HASH


class ProblemKind(enum.Enum):
    """What kind of tampering a :class:`ChainProblem` shows."""

    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    RESEALED = "resealed"
    """Entries no longer have the hashes signed checkpoints hold: rewritten and sealed again."""
    HEAD_REWRITTEN = "head-rewritten"
    """The head record disagrees with the last signed checkpoint."""
    HEAD_MISSING = "head-missing"
    """The head record itself is gone, so truncation cannot be checked."""
    BAD_CHECKPOINT = "bad-checkpoint"
    """A checkpoint that is malformed or whose signature does not verify."""
    CHECKPOINTS_MISSING = "checkpoints-missing"
    """The database has entries but no checkpoint anchors them."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that entry ``seq`` of the log had hash ``hash`` at time ``at``.

    Only checkpoints whose signature verified are built (see
    :mod:`modelport.security.checkpoints`).

    Args:
        seq: The entry's sequence number.
        hash: The entry's hash (hex).
        at: When the checkpoint was signed (UTC).
    """

    seq: int
    hash: str
    at: datetime


_KIND_ORDER: Final = {kind: i for i, kind in enumerate(ProblemKind)}


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One thing wrong with the chain.

    Args:
        seq: The sequence number the problem is about (as stored, or the first missing one).
        kind: What is wrong.
        message: The problem in words.
    """

    seq: int
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.kind.value}: {self.message}"


_Report = Callable[[int, ProblemKind, str], None]
"""Records one problem: ``report(seq, kind, message)``."""


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The outcome of checking the whole log.

    Args:
        entries: How many entries were read.
        head: The head record (``None`` when it is missing).
        problems: Everything found wrong, by sequence number; empty when the log is intact.
        checkpoints: How many checkpoints verified; ``None`` when the log has no checkpoint file
            configured (nothing outside the database anchors it).
        last_checkpoint: The newest checkpoint that verified, if any.
    """

    entries: int
    head: AuditHead | None
    problems: tuple[ChainProblem, ...]
    checkpoints: int | None = None
    last_checkpoint: Checkpoint | None = None

    @property
    def intact(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str | None,
    outcome: str,
    request_id: str | None,
    details: Mapping[str, Any],
) -> bytes:
    """Return the bytes an entry's hash covers: its fields as JSON with sorted keys.

    ``at`` is written in UTC with microseconds, so the same instant always reads the same.
    """
    return orjson.dumps(
        {
            "seq": seq,
            "at": _iso(at),
            "actor": actor,
            "action": action,
            "target": target,
            "outcome": outcome,
            "request_id": request_id,
            "details": dict(details),
        },
        option=orjson.OPT_SORT_KEYS,
    )


def _hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("utf-8") + body).hexdigest()


def _entry_canonical(entry: AuditEntry, seq: int) -> bytes:
    return canonical(
        seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.target,
        entry.outcome,
        entry.request_id,
        entry.details,
    )


def _seals(entry: AuditEntry, seq: int) -> bool:
    """Whether ``entry``'s hash is right for its content at position ``seq``."""
    try:
        return _hash(entry.prev_hash, _entry_canonical(entry, seq)) == entry.hash
    except (TypeError, ValueError):  # details a tamperer made unserialisable
        return False


def _text(value: str, what: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
        raise InvalidInput(f"audit {what} must be non-blank text of at most {_MAX_TEXT} characters")


def _json_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``details`` as the JSON data the database will hand back (what gets hashed)."""
    try:
        data = orjson.loads(orjson.dumps(dict(details or {})))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"audit details must be JSON data with text keys: {exc}") from None
    if not isinstance(data, dict):  # pragma: no cover - a dict always round-trips to a dict
        raise InvalidInput("audit details must be a JSON object")
    return data


def seal(
    head: AuditHead,
    at: datetime,
    actor: str,
    action: str,
    target: str | None,
    outcome: str,
    request_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Build the entry that follows ``head``, with its sequence number and hash.

    Args:
        head: The head record before this entry.
        at: When (timezone-aware).
        actor: Who acted.
        action: What was done.
        target: What it was done to, or ``None``.
        outcome: ``ok``, ``denied`` or ``failed``.
        request_id: The request it belongs to.
        details: JSON data; it is normalised to what a JSON round trip returns.

    Returns:
        The sealed entry; the new head is ``AuditHead(entry.seq, entry.hash)``.

    Raises:
        InvalidInput: A field is blank or too long, ``at`` is naive, the outcome is unknown, or
            the details are not JSON data.
    """
    _text(actor, "actor")
    _text(action, "action")
    if target is not None:
        _text(target, "target")
    if request_id is not None:
        _text(request_id, "request id")
    if outcome not in OUTCOMES:
        raise InvalidInput(f"audit outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
    if at.tzinfo is None:
        raise InvalidInput("audit time must be timezone-aware")
    at = at.astimezone(UTC)
    data = _json_details(details)
    seq = head.seq + 1
    body = canonical(seq, at, actor, action, target, outcome, request_id, data)
    return AuditEntry(
        seq, at, actor, action, target, outcome, request_id, data, head.hash, _hash(head.hash, body)
    )


# -- checking the chain ----------------------------------------------------------------------


def _sealed_positions(entries: Sequence[AuditEntry]) -> list[int | None]:
    """Return the position each entry was sealed at, or ``None`` when its content was changed.

    An entry whose hash fits its stored ``seq`` was sealed there. One whose hash does not may
    have been renumbered: it was sealed right after the entry its ``prev_hash`` names, so that
    position is tried too. Chains of renumbered entries are resolved iteratively.
    """
    first_by_hash: dict[str, int] = {}
    for i, entry in enumerate(entries):
        first_by_hash.setdefault(entry.hash, i)
    result: list[int | None] = [e.seq if _seals(e, e.seq) else None for e in entries]
    done = [r is not None for r in result]
    for start in range(len(entries)):
        if done[start]:
            continue
        path: list[int] = []
        on_path: set[int] = set()
        j = start
        base: int | None
        while True:
            path.append(j)
            on_path.add(j)
            prev = entries[j].prev_hash
            k = first_by_hash.get(prev)
            if prev == GENESIS_HASH:
                base = 0
                break
            if k is None or k in on_path:
                base = None
                break
            if done[k]:
                base = result[k]
                break
            j = k
        for j in reversed(path):
            base = base + 1 if base is not None and _seals(entries[j], base + 1) else None
            result[j] = base
            done[j] = True
    return result


def _span(first: int, last: int) -> str:
    return f"entry {first} is" if first == last else f"entries {first}-{last} are"


def chain_is_intact(
    entries: Iterable[AuditEntry],
    head: AuditHead | None,
    checkpoints: Sequence[Checkpoint] = (),
) -> bool:
    """Whether the chain is exactly as sealed, in one pass and constant memory.

    The fast path for the usual case: when it says ``False``, :func:`verify_chain` (which holds
    every entry) says what is wrong.

    Args:
        entries: The entries as stored, by ``seq``.
        head: The head record; ``None`` skips the comparison with it.
        checkpoints: Signed checkpoints (verified); each entry they name must have their hash.
    """
    signed: dict[int, set[str]] = {}
    for checkpoint in checkpoints:
        signed.setdefault(checkpoint.seq, set()).add(checkpoint.hash)
    expected_prev, expected_seq = GENESIS_HASH, 1
    for entry in entries:
        if (
            entry.seq != expected_seq
            or entry.prev_hash != expected_prev
            or not _seals(entry, entry.seq)
            or signed.get(entry.seq, {entry.hash}) != {entry.hash}
        ):
            return False
        expected_prev, expected_seq = entry.hash, expected_seq + 1
    if signed and max(signed) >= expected_seq:
        return False
    return head is None or (head.seq == expected_seq - 1 and head.hash == expected_prev)


def _anchor(
    head: AuditHead | None, checkpoints: Sequence[Checkpoint], report: _Report
) -> tuple[AuditHead | None, str]:
    """Return the record that names the log's last entry, and what it is, for the checks.

    That is the head record unless the newest checkpoint is ahead of it, or at the same entry
    with another hash: then the head was rewritten (reported here) and the checkpoint is used.
    """
    if not checkpoints:
        return head, "the head record"
    latest = max(checkpoints, key=lambda c: c.seq)
    signed = f"the checkpoint signed at {_iso(latest.at)}"
    if head is None:
        return AuditHead(latest.seq, latest.hash), signed
    if head.seq < latest.seq:
        report(
            head.seq,
            ProblemKind.HEAD_REWRITTEN,
            f"the head record names entry {head.seq}, but {signed} names entry {latest.seq}: "
            "the head was moved back",
        )
    elif head.seq == latest.seq and head.hash != latest.hash:
        report(
            head.seq,
            ProblemKind.HEAD_REWRITTEN,
            f"the head record's hash for entry {head.seq} is not the one {signed} holds",
        )
    else:
        return head, "the head record"
    return AuditHead(latest.seq, latest.hash), signed


def _check_checkpoints(
    listed: Sequence[AuditEntry],
    by_pos: Mapping[int, int],
    checkpoints: Sequence[Checkpoint],
    report: _Report,
) -> None:
    """Report entries whose hash is not the one a checkpoint holds (runs as one problem).

    A checkpointed hash that some stored entry still has is fine here (a moved entry is
    reported by the chain checks); one past the last stored entry is truncation; one whose
    position is empty is a deletion the chain checks report.
    """
    hashes = {entry.hash for entry in listed}
    last = max(by_pos, default=0)
    run: list[Checkpoint] = []

    def close_run() -> None:
        if run:
            first, final = run[0], run[-1]
            span = (
                f"entry {first.seq}"
                if first.seq == final.seq
                else (f"entries {first.seq}-{final.seq}")
            )
            report(
                first.seq,
                ProblemKind.RESEALED,
                f"{span} no longer {'has' if len(run) == 1 else 'have'} the hash signed at "
                f"{_iso(first.at)}: the log was rewritten from here (or earlier) and sealed again",
            )
            run.clear()

    for checkpoint in sorted(set(checkpoints), key=lambda c: (c.seq, c.hash)):
        if checkpoint.hash in hashes:
            close_run()
        elif checkpoint.seq > last:
            close_run()
            report(
                last + 1,
                ProblemKind.TRUNCATED,
                f"{_span(last + 1, checkpoint.seq)} missing from the end (the checkpoint signed "
                f"at {_iso(checkpoint.at)} names entry {checkpoint.seq})",
            )
        elif checkpoint.seq in by_pos:
            run.append(checkpoint)
    close_run()


def verify_chain(
    entries: Iterable[AuditEntry],
    head: AuditHead | None,
    checkpoints: Sequence[Checkpoint] = (),
) -> list[ChainProblem]:
    """Check a log's hash chain and report every problem, by sequence number.

    Args:
        entries: The entries as stored, in storage order (by ``seq``).
        head: The head record; ``None`` skips the checks that need it (an exported file has
            none), so truncation cannot be seen unless a checkpoint names a later entry.
        checkpoints: Signed checkpoints whose signatures verified; the entries they name must
            still be there with the hashes they hold, and the head must not be behind them.

    Returns:
        The problems, sorted by sequence number; empty when the chain is intact.
    """
    listed = list(entries)
    sealed = _sealed_positions(listed)
    pos = [s if s is not None else e.seq for s, e in zip(sealed, listed, strict=True)]
    problems: dict[tuple[int, ProblemKind], ChainProblem] = {}

    def report(seq: int, kind: ProblemKind, message: str) -> None:
        problems.setdefault((seq, kind), ChainProblem(seq, kind, message))

    head, named_by = _anchor(head, checkpoints, report)
    inserted = _inserted(listed, pos, head, named_by)
    for i in inserted:
        report(listed[i].seq, ProblemKind.INSERTED, inserted[i])
    genuine = [i for i in range(len(listed)) if i not in inserted]
    by_pos = {pos[i]: i for i in genuine}
    edited: set[int] = set()
    for i in genuine:
        if sealed[i] is None:
            edited.add(i)
            report(listed[i].seq, ProblemKind.EDITED, "its content does not match its hash")

    present = sorted(by_pos)
    _check_links(listed, pos, genuine, by_pos, edited, report)
    if head is not None:
        last = present[-1] if present else 0
        _check_tail(listed, by_pos, edited, head, named_by, last, checkpoints, report)
    _check_checkpoints(listed, by_pos, checkpoints, report)
    _check_order(listed, pos, sealed, genuine, report)
    return sorted(problems.values(), key=lambda p: (p.seq, _KIND_ORDER[p.kind]))


Report = Callable[[int, ProblemKind, str], None]
"""Records one problem: ``report(seq, kind, message)``."""


def _check_links(
    listed: Sequence[AuditEntry],
    pos: Sequence[int],
    genuine: Sequence[int],
    by_pos: dict[int, int],
    edited: set[int],
    report: Report,
) -> None:
    """Report gaps (deleted) and entries whose successor was chained to another hash."""
    previous = 0
    for p in sorted(by_pos):
        if p > previous + 1:
            report(previous + 1, ProblemKind.DELETED, f"{_span(previous + 1, p - 1)} missing")
        previous = max(previous, p)
    for i in genuine:
        entry, p = listed[i], pos[i]
        if i in edited:  # its own prev_hash may be what was changed
            continue
        if p == 1 and entry.prev_hash != GENESIS_HASH:
            report(entry.seq, ProblemKind.EDITED, "the first entry does not start the chain")
        pred = by_pos.get(p - 1)
        if pred is not None and entry.prev_hash != listed[pred].hash and pred not in edited:
            report(
                listed[pred].seq,
                ProblemKind.EDITED,
                f"its hash is not the one entry {p} was chained to: it was changed and re-hashed",
            )


def _check_tail(
    listed: Sequence[AuditEntry],
    by_pos: dict[int, int],
    edited: set[int],
    head: AuditHead,
    named_by: str,
    last: int,
    checkpoints: Sequence[Checkpoint],
    report: Report,
) -> None:
    """Report a truncated tail and a last entry whose hash is not the one the head holds."""
    if last < head.seq:
        report(
            last + 1,
            ProblemKind.TRUNCATED,
            f"{_span(last + 1, head.seq)} missing from the end ({named_by} names entry {head.seq})",
        )
    tail = by_pos.get(head.seq)
    # A checkpoint of the tail entry says more than this (resealed, in _check_checkpoints).
    if (
        tail is not None
        and listed[tail].hash != head.hash
        and tail not in edited
        and not any(c.seq == head.seq for c in checkpoints)
    ):
        report(
            listed[tail].seq,
            ProblemKind.EDITED,
            f"its hash is not the one {named_by} holds: it was changed and re-hashed",
        )


def _check_order(
    listed: Sequence[AuditEntry],
    pos: Sequence[int],
    sealed: Sequence[int | None],
    genuine: Sequence[int],
    report: Report,
) -> None:
    """Report entries out of order, and entries renumbered in place."""
    order = [pos[i] for i in genuine]
    reordered: set[int] = set()
    for i, expected in zip(genuine, sorted(order), strict=True):
        if pos[i] != expected:
            reordered.add(i)
            report(
                listed[i].seq,
                ProblemKind.REORDERED,
                f"out of order: sealed as entry {pos[i]}, found where entry {expected} belongs",
            )
    for i in genuine:
        s = sealed[i]
        if s is not None and s != listed[i].seq and i not in reordered:
            report(listed[i].seq, ProblemKind.EDITED, f"renumbered: it was sealed as entry {s}")


def _inserted(
    listed: Sequence[AuditEntry], pos: Sequence[int], head: AuditHead | None, named_by: str
) -> dict[int, str]:
    """Return the entries the chain does not account for, with why, by index.

    ``head`` names the last entry (the head record, or the checkpoint ``named_by`` says).
    Of several entries at one position, the genuine one is the one the head's chain
    reaches by following ``prev_hash`` back, else one a later entry points at, else the first.
    """
    first_by_hash: dict[str, int] = {}
    for i, entry in enumerate(listed):
        first_by_hash.setdefault(entry.hash, i)
    anchored: set[str] = set()
    walk = head.hash if head is not None else GENESIS_HASH
    while walk != GENESIS_HASH and walk not in anchored and walk in first_by_hash:
        anchored.add(walk)
        walk = listed[first_by_hash[walk]].prev_hash
    referenced = {entry.prev_hash for entry in listed}

    groups: dict[int, list[int]] = {}
    for i, p in enumerate(pos):
        groups.setdefault(p, []).append(i)
    found: dict[int, str] = {}
    for p, members in groups.items():
        if head is not None and p > head.seq:
            for i in members:
                found[i] = f"it comes after entry {head.seq}, the last one {named_by} names"
            continue
        if len(members) == 1:
            continue
        keep = next(
            (i for i in members if listed[i].hash in anchored),
            next((i for i in members if listed[i].hash in referenced), members[0]),
        )
        for i in members:
            if i != keep:
                found[i] = (
                    f"a second entry {p}; the chain runs through the one stored as seq "
                    f"{listed[keep].seq}"
                )
    return found


# -- export ----------------------------------------------------------------------------------


def entry_to_dict(entry: AuditEntry) -> dict[str, Any]:
    """Return an entry as JSON-ready data (what an export line holds)."""
    return {
        "seq": entry.seq,
        "at": _iso(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "request_id": entry.request_id,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def to_json_line(entry: AuditEntry) -> bytes:
    """Return an entry as one JSON line (newline included) for export."""
    return orjson.dumps(entry_to_dict(entry)) + b"\n"


def entry_from_dict(data: Mapping[str, Any]) -> AuditEntry:
    """Rebuild an entry from :func:`entry_to_dict` data (an exported line), as it was stored.

    Nothing is re-hashed here: pass the entries to :func:`verify_chain` to check them.

    Raises:
        InvalidInput: A field is missing or of the wrong type.
    """
    try:
        at = datetime.fromisoformat(data["at"])
        entry = AuditEntry(
            seq=data["seq"],
            at=at if at.tzinfo is not None else at.replace(tzinfo=UTC),
            actor=data["actor"],
            action=data["action"],
            target=data["target"],
            outcome=data["outcome"],
            request_id=data["request_id"],
            details=data["details"],
            prev_hash=data["prev_hash"],
            hash=data["hash"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"not an audit entry: {exc!r}") from None
    texts = (entry.actor, entry.action, entry.outcome, entry.prev_hash, entry.hash)
    if (
        not isinstance(entry.seq, int)
        or not all(isinstance(t, str) for t in texts)
        or not isinstance(entry.details, dict)
    ):
        raise InvalidInput("not an audit entry: seq must be a number, details an object")
    return entry
