"""The audit hash chain: sealing, and naming each kind of tampering with its sequence number."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelport.core.errors import InvalidInput
from modelport.security.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditHead,
    ChainProblem,
    Checkpoint,
    ProblemKind,
    canonical,
    chain_is_intact,
    entry_from_dict,
    entry_to_dict,
    seal,
    to_json_line,
    verify_chain,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
EDITED, DELETED, INSERTED = ProblemKind.EDITED, ProblemKind.DELETED, ProblemKind.INSERTED
REORDERED, TRUNCATED = ProblemKind.REORDERED, ProblemKind.TRUNCATED
RESEALED, HEAD_REWRITTEN = ProblemKind.RESEALED, ProblemKind.HEAD_REWRITTEN


def build(n: int = 5) -> tuple[list[AuditEntry], AuditHead]:
    head = AuditHead()
    entries = []
    for i in range(n):
        entry = seal(
            head,
            T0 + timedelta(seconds=i),
            f"user{i}",
            "key.create",
            f"key{i}",
            "ok",
            f"req-{i}",
            {"i": i, "name": f"k{i}"},
        )
        entries.append(entry)
        head = AuditHead(entry.seq, entry.hash)
    return entries, head


def found(entries: list[AuditEntry], head: AuditHead | None) -> list[tuple[int, ProblemKind]]:
    return [(p.seq, p.kind) for p in verify_chain(entries, head)]


def reseal(entry: AuditEntry, **changes: Any) -> AuditEntry:
    """Change an entry and recompute its hash, as a tamperer who knows the scheme would."""
    changed = replace(entry, **changes)
    body = canonical(
        changed.seq,
        changed.at,
        changed.actor,
        changed.action,
        changed.target,
        changed.outcome,
        changed.request_id,
        changed.details,
    )
    return replace(changed, hash=hashlib.sha256(changed.prev_hash.encode() + body).hexdigest())


# -- sealing ----------------------------------------------------------------------------------


def test_entries_are_numbered_and_chained() -> None:
    entries, head = build(3)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert head == AuditHead(3, entries[-1].hash)


def test_the_hash_is_sha256_over_the_previous_hash_and_the_canonical_entry() -> None:
    entry = build(1)[0][0]
    body = orjson.dumps(
        {
            "action": "key.create",
            "actor": "user0",
            "at": "2025-03-01T12:00:00.123456+00:00",
            "details": {"i": 0, "name": "k0"},
            "outcome": "ok",
            "request_id": "req-0",
            "seq": 1,
            "target": "key0",
        }
    )
    assert body == canonical(
        1, entry.at, "user0", "key.create", "key0", "ok", "req-0", {"name": "k0", "i": 0}
    )
    assert entry.hash == hashlib.sha256(GENESIS_HASH.encode() + body).hexdigest()


def test_canonical_form_ignores_key_order_and_time_zone() -> None:
    in_paris = T0.astimezone(timezone(timedelta(hours=1)))
    a = canonical(1, T0, "a", "x", None, "ok", None, {"b": {"y": 1, "x": 2}, "a": [1]})
    b = canonical(1, in_paris, "a", "x", None, "ok", None, {"a": [1], "b": {"x": 2, "y": 1}})
    assert a == b


def test_details_are_stored_as_json_reads_them_back() -> None:
    entry = seal(AuditHead(), T0, "a", "x", None, "ok", None, {"t": (1, 2), "f": 1.5})
    assert entry.details == {"t": [1, 2], "f": 1.5}
    assert verify_chain([entry], AuditHead(1, entry.hash)) == []


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"actor": " "}, "actor"),
        ({"action": ""}, "action"),
        ({"target": ""}, "target"),
        ({"request_id": "x" * 2000}, "request id"),
        ({"outcome": "maybe"}, "expected one of started, ok, denied, failed"),
        ({"at": datetime(2025, 1, 1)}, "timezone-aware"),
        ({"details": {1: "x"}}, "JSON data"),
        ({"details": {"x": object()}}, "JSON data"),
    ],
)
def test_seal_refuses_bad_fields(changes: dict[str, Any], fragment: str) -> None:
    fields: dict[str, Any] = {
        "at": T0,
        "actor": "alice",
        "action": "key.create",
        "target": "k",
        "outcome": "ok",
        "request_id": None,
        "details": None,
    }
    fields.update(changes)
    with pytest.raises(InvalidInput) as err:
        seal(AuditHead(), **fields)
    assert fragment in err.value.message


# -- verifying --------------------------------------------------------------------------------


def test_an_intact_chain_has_no_problems() -> None:
    entries, head = build()
    assert verify_chain(entries, head) == []
    assert verify_chain([], AuditHead()) == []
    assert verify_chain(entries, None) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"actor": "mallory"},
        {"action": "key.list"},
        {"target": None},
        {"outcome": "failed"},
        {"request_id": "req-x"},
        {"details": {"i": 2, "name": "other"}},
        {"at": T0 + timedelta(hours=1)},
        {"prev_hash": "f" * 64},
        {"hash": "e" * 64},
    ],
)
def test_an_edited_field_is_named(changes: dict[str, Any]) -> None:
    entries, head = build()
    entries[2] = replace(entries[2], **changes)
    assert found(entries, head) == [(3, EDITED)]


def test_an_edit_with_a_recomputed_hash_is_caught_by_the_next_link() -> None:
    entries, head = build()
    entries[2] = reseal(entries[2], actor="mallory")
    problems = verify_chain(entries, head)
    assert [(p.seq, p.kind) for p in problems] == [(3, EDITED)]
    assert "re-hashed" in problems[0].message


def test_a_re_hashed_last_entry_is_caught_by_the_head_record() -> None:
    entries, head = build()
    entries[-1] = reseal(entries[-1], outcome="denied")
    assert found(entries, head) == [(5, EDITED)]


@pytest.mark.parametrize(("gone", "first"), [([2], 3), ([1, 2], 2), ([0], 1)])
def test_deleted_entries_are_named_by_the_first_missing(gone: list[int], first: int) -> None:
    entries, head = build()
    kept = [e for i, e in enumerate(entries) if i not in gone]
    problems = verify_chain(kept, head)
    assert [(p.seq, p.kind) for p in problems] == [(first, DELETED)]
    if len(gone) > 1:
        assert f"entries {first}-{first + len(gone) - 1} are missing" in problems[0].message


def test_a_deleted_tail_is_caught_by_the_head_record() -> None:
    entries, head = build()
    problems = verify_chain(entries[:3], head)
    assert [(p.seq, p.kind) for p in problems] == [(4, TRUNCATED)]
    assert "entries 4-5 are missing from the end" in problems[0].message
    assert found(entries[:4], head) == [(5, TRUNCATED)]
    assert found([], head) == [(1, TRUNCATED)]


def test_without_the_head_record_a_deleted_tail_goes_unseen() -> None:
    entries, _ = build()
    assert verify_chain(entries[:3], None) == []


def test_an_inserted_entry_with_a_taken_number_is_named() -> None:
    entries, head = build()
    forged = seal(
        AuditHead(2, entries[1].hash), T0, "mallory", "key.create", "evil", "ok", None, {}
    )
    tampered = [*entries[:2], forged, *entries[2:]]
    problems = verify_chain(tampered, head)
    assert [(p.seq, p.kind) for p in problems] == [(3, INSERTED)]
    assert "second entry 3" in problems[0].message


def test_an_inserted_entry_that_renumbers_the_rest_is_named() -> None:
    entries, head = build()
    forged = seal(
        AuditHead(2, entries[1].hash), T0, "mallory", "key.create", "evil", "ok", None, {}
    )
    shifted = [replace(e, seq=e.seq + 1) for e in entries[2:]]
    problems = found([*entries[:2], forged, *shifted], head)
    assert (3, INSERTED) in problems
    assert set(problems) == {(3, INSERTED), (4, EDITED), (5, EDITED), (6, EDITED)}


def test_a_chain_of_forged_entries_is_told_apart_by_the_head_record() -> None:
    entries, head = build()
    x3 = seal(AuditHead(2, entries[1].hash), T0, "mallory", "a", None, "ok")
    x4 = seal(AuditHead(3, x3.hash), T0, "mallory", "b", None, "ok")
    tampered = [*entries[:2], x3, x4, *entries[2:]]
    assert found(tampered, head) == [(3, INSERTED), (4, INSERTED)]


def test_an_entry_appended_without_moving_the_head_is_inserted() -> None:
    entries, head = build()
    forged = seal(head, T0, "mallory", "key.create", "evil", "ok")
    problems = verify_chain([*entries, forged], head)
    assert [(p.seq, p.kind) for p in problems] == [(6, INSERTED)]
    assert "head record" in problems[0].message


def test_a_copied_entry_is_inserted() -> None:
    entries, head = build()
    copy = replace(entries[1], seq=6)
    assert found([*entries, copy], head) == [(6, INSERTED)]


def test_two_swapped_entries_are_reordered() -> None:
    entries, head = build()
    swapped = [entries[0], entries[1], entries[3], entries[2], entries[4]]
    problems = verify_chain(swapped, head)
    assert [(p.seq, p.kind) for p in problems] == [(3, REORDERED), (4, REORDERED)]


def test_two_swapped_sequence_numbers_are_reordered() -> None:
    # What swapping the seq column of two rows looks like when the rows are read by seq.
    entries, head = build()
    swapped = [entries[0], entries[1], replace(entries[3], seq=3), replace(entries[2], seq=4)]
    swapped.append(entries[4])
    problems = verify_chain(swapped, head)
    assert [(p.seq, p.kind) for p in problems] == [(3, REORDERED), (4, REORDERED)]
    assert "sealed as entry 4" in problems[0].message


def test_several_kinds_at_once_are_all_reported() -> None:
    entries, head = build(8)
    tampered = [
        entries[0],
        replace(entries[1], actor="mallory"),  # edited 2
        # 3 deleted
        entries[3],
        entries[5],  # 5 and 6 swapped
        entries[4],
        entries[6],
        # 8 cut off
    ]
    assert found(tampered, head) == [
        (2, EDITED),
        (3, DELETED),
        (5, REORDERED),
        (6, REORDERED),
        (8, TRUNCATED),
    ]


def test_a_problem_reads_as_one_line() -> None:
    problem = ChainProblem(3, EDITED, "its content does not match its hash")
    assert str(problem) == "seq 3: edited: its content does not match its hash"


def test_a_hash_cycle_made_by_a_tamperer_does_not_hang() -> None:
    entries, head = build(3)
    a = replace(entries[1], prev_hash="a" * 64, hash="b" * 64)
    b = replace(entries[2], prev_hash="b" * 64, hash="a" * 64)
    problems = found([entries[0], a, b], head)
    assert (2, EDITED) in problems and (3, EDITED) in problems


@given(
    n=st.integers(min_value=2, max_value=12),
    data=st.data(),
)
def test_any_single_tampering_is_detected(n: int, data: st.DataObject) -> None:
    entries, head = build(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    how = data.draw(st.sampled_from(["edit", "delete", "reseal", "duplicate"]))
    tampered = list(entries)
    if how == "edit":
        tampered[i] = replace(entries[i], actor="mallory")
    elif how == "delete":
        del tampered[i]
    elif how == "reseal":
        tampered[i] = reseal(entries[i], outcome="denied")
    else:
        tampered.insert(i, entries[i])
    assert verify_chain(tampered, head), (how, i)
    assert not chain_is_intact(tampered, head), (how, i)


def test_the_fast_path_agrees_on_intact_chains() -> None:
    entries, head = build()
    assert chain_is_intact(entries, head)
    assert chain_is_intact(iter(entries), None)
    assert chain_is_intact([], AuditHead())
    assert not chain_is_intact(entries[:4], head)
    assert chain_is_intact(entries[:4], None)
    assert not chain_is_intact([entries[0], entries[2], entries[1]], None)


# -- signed checkpoints: what someone who can write to the database cannot hide --------------


def checkpoints(entries: list[AuditEntry], *seqs: int) -> list[Checkpoint]:
    """Checkpoints of the given entries, as the store would have signed them."""
    return [
        Checkpoint(e.seq, e.hash, e.at + timedelta(seconds=1)) for e in entries if e.seq in seqs
    ]


def rebuild(entries: list[AuditEntry]) -> tuple[list[AuditEntry], AuditHead]:
    """Seal ``entries`` again from the start with :func:`seal`, as a tamperer can."""
    head, out = AuditHead(), []
    for e in entries:
        entry = seal(head, e.at, e.actor, e.action, e.target, e.outcome, e.request_id, e.details)
        out.append(entry)
        head = AuditHead(entry.seq, entry.hash)
    return out, head


def with_checkpoints(
    entries: list[AuditEntry], head: AuditHead | None, signed: list[Checkpoint]
) -> list[tuple[int, ProblemKind]]:
    found_here = [(p.seq, p.kind) for p in verify_chain(entries, head, signed)]
    assert chain_is_intact(entries, head, signed) == (not found_here)
    return found_here


def test_a_cut_tail_with_a_moved_head_needs_a_checkpoint_to_be_seen() -> None:
    entries, _ = build(6)
    cut = entries[:4]
    moved = AuditHead(4, cut[-1].hash)
    assert found(cut, moved) == [], "the chain alone cannot tell"
    signed = checkpoints(entries, 2, 6)
    assert with_checkpoints(cut, moved, signed) == [(4, HEAD_REWRITTEN), (5, TRUNCATED)]
    problem = verify_chain(cut, moved, signed)[1]
    assert "entries 5-6 are missing from the end" in problem.message
    assert "checkpoint signed at" in problem.message


def test_a_deleted_entry_with_the_rest_sealed_again_is_resealed() -> None:
    entries, _ = build(6)
    forged, forged_head = rebuild(entries[:2] + entries[3:])
    assert found(forged, forged_head) == [], "the chain alone cannot tell"
    signed = checkpoints(entries, 1, 2, 3, 4, 5, 6)
    assert with_checkpoints(forged, forged_head, signed) == [
        (3, RESEALED),
        (5, HEAD_REWRITTEN),
        (6, TRUNCATED),
    ]
    (resealed,) = [p for p in verify_chain(forged, forged_head, signed) if p.kind is RESEALED]
    assert resealed.message.startswith("entries 3-5 no longer have the hash signed at")


def test_a_rewrite_that_keeps_the_length_is_resealed() -> None:
    entries, head = build(5)
    changed = [*entries[:2], replace(entries[2], actor="mallory"), *entries[3:]]
    forged, forged_head = rebuild(changed)
    assert forged_head.seq == head.seq
    assert with_checkpoints(forged, forged_head, checkpoints(entries, 5)) == [
        (5, RESEALED),
        (5, HEAD_REWRITTEN),
    ]


def test_a_rewritten_head_hash_is_named_as_such() -> None:
    entries, head = build(4)
    rewritten = AuditHead(4, "ab" * 32)
    assert found(entries, rewritten) == [(4, EDITED)], "without a checkpoint: which one?"
    assert with_checkpoints(entries, rewritten, checkpoints(entries, 4)) == [(4, HEAD_REWRITTEN)]


def test_a_head_moved_back_over_entries_still_there() -> None:
    entries, _ = build(5)
    back = AuditHead(3, entries[2].hash)
    assert with_checkpoints(entries, back, checkpoints(entries, 5)) == [(3, HEAD_REWRITTEN)]


def test_a_checkpoint_stands_in_for_a_missing_head_record() -> None:
    entries, _ = build(5)
    assert found(entries[:3], None) == []
    assert with_checkpoints(entries[:3], None, checkpoints(entries, 5)) == [(4, TRUNCATED)]


def test_entries_after_the_last_checkpoint_are_fine() -> None:
    entries, head = build(6)
    assert with_checkpoints(entries, head, checkpoints(entries, 1, 4)) == []
    assert with_checkpoints(entries, head, checkpoints(entries, 1, 4, 4, 6)) == []


def test_tampering_the_chain_sees_is_reported_once_with_checkpoints() -> None:
    entries, head = build(5)
    signed = checkpoints(entries, 1, 2, 3, 4, 5)
    assert with_checkpoints([*entries[:2], *entries[3:]], head, signed) == [(3, DELETED)]
    edited = [*entries[:2], replace(entries[2], actor="mallory"), *entries[3:]]
    assert with_checkpoints(edited, head, signed) == [(3, EDITED)]
    assert with_checkpoints(entries[:3], head, signed) == [(4, TRUNCATED)]


@given(
    n=st.integers(min_value=2, max_value=10),
    data=st.data(),
)
def test_any_rewrite_sealed_again_is_caught_by_the_last_checkpoint(
    n: int, data: st.DataObject
) -> None:
    entries, _ = build(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    how = data.draw(st.sampled_from(["edit", "delete", "cut"]))
    if how == "edit":
        changed = [*entries[:i], replace(entries[i], target="elsewhere"), *entries[i + 1 :]]
    elif how == "delete":
        changed = [*entries[:i], *entries[i + 1 :]]
    else:
        changed = entries[: max(i, 1) - 1] if i else []
    forged, forged_head = rebuild(changed)
    assert found(forged, forged_head) == []
    signed = checkpoints(entries, n)
    assert verify_chain(forged, forged_head, signed), (how, i)
    assert not chain_is_intact(forged, forged_head, signed), (how, i)


# -- export -----------------------------------------------------------------------------------


def test_exported_lines_read_back_into_the_same_chain() -> None:
    entries, head = build()
    lines = b"".join(to_json_line(e) for e in entries).splitlines()
    assert len(lines) == 5
    back = [entry_from_dict(orjson.loads(line)) for line in lines]
    assert back == entries
    assert verify_chain(back, head) == []
    assert set(entry_to_dict(entries[0])) == {
        "seq",
        "at",
        "actor",
        "action",
        "target",
        "outcome",
        "request_id",
        "details",
        "prev_hash",
        "hash",
    }


@pytest.mark.parametrize(
    "data",
    [{}, {"seq": "1"}, {**entry_to_dict(build(1)[0][0]), "at": "yesterday"}],
)
def test_a_line_that_is_not_an_entry_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        entry_from_dict(data)
