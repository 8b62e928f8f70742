"""The audit log in the store: appends, queries, export, concurrent writers and SQL tampering.

Every store here anchors its chain in a checkpoint file (in the test's temporary folder, for
PostgreSQL too), as an installation does in its data directory.
"""

from __future__ import annotations

import io
import multiprocessing
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Connection, insert, text

from modelport.core.clock import SystemClock
from modelport.core.errors import ConfigError, IntegrityError, InvalidInput
from modelport.db import open_engine
from modelport.security._schema import audit_log
from modelport.security.audit import (
    AuditHead,
    ProblemKind,
    entry_from_dict,
    seal,
    verify_chain,
)
from modelport.security.checkpoints import CheckpointFile
from modelport.security.store import SecurityStore

from ._append_worker import append_many
from ._support import START, FakeClock

PROCESSES = 4
EACH = 25


@pytest.fixture
def checkpoints(tmp_path: Path) -> CheckpointFile:
    return CheckpointFile.in_home(tmp_path / "home")


@pytest.fixture
def store(
    backend_url: str, clock: FakeClock, checkpoints: CheckpointFile
) -> Iterator[SecurityStore]:
    with SecurityStore(backend_url, clock, checkpoints) as opened:
        yield opened


@contextmanager
def raw(url: str) -> Iterator[Connection]:
    """A plain connection, as someone editing the database by hand would use."""
    engine = open_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def fill(store: SecurityStore, clock: FakeClock, n: int = 5) -> None:
    for i in range(n):
        store.append_audit(f"user{i % 2}", f"action.{i}", f"t{i}", "ok", f"r{i}", {"i": i})
        clock.advance(60)


def problems(store: SecurityStore) -> list[tuple[int, ProblemKind]]:
    return [(p.seq, p.kind) for p in store.verify_audit().problems]


def test_appends_are_chained_and_verified(store: SecurityStore, clock: FakeClock) -> None:
    assert store.verify_audit().intact and store.verify_audit().entries == 0
    first = store.append_audit("alice", "key.create", "k1", "ok", "req-1", {"name": "ci"})
    clock.advance(1)
    second = store.append_audit("key:abc", "deny.infer", None, "denied")
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev_hash == first.hash
    assert first.at == START and first.at.utcoffset() == timedelta(0)
    assert store.audit_head() == AuditHead(2, second.hash)
    assert store.list_audit() == [first, second]
    report = store.verify_audit()
    assert report.intact and report.entries == 2 and report.head == AuditHead(2, second.hash)


def test_details_round_trip_exactly(store: SecurityStore) -> None:
    details = {
        "name": "zürich ✓",
        "nested": {"b": [1, 2.5, None, True], "a": "x"},
        "big": 2**62,
        "small": 1e-300,
        "float": 0.1,
    }
    entry = store.append_audit("alice", "x", "t", "ok", None, details)
    assert store.list_audit() == [entry]
    assert entry.details == details
    assert store.verify_audit().intact


def test_bad_entries_are_refused_and_change_nothing(store: SecurityStore) -> None:
    with pytest.raises(InvalidInput):
        store.append_audit("alice", "x", "t", "maybe", None)
    with pytest.raises(InvalidInput):
        store.append_audit("", "x", "t", "ok", None)
    assert store.audit_head() == AuditHead()
    assert store.verify_audit().entries == 0


def test_list_filters(store: SecurityStore, clock: FakeClock) -> None:
    fill(store, clock, 6)
    store.append_audit("user0", "deny.infer", "m", "denied")
    assert [e.seq for e in store.list_audit()] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.seq for e in store.list_audit(actor="user1")] == [2, 4, 6]
    assert [e.seq for e in store.list_audit(action="action.3")] == [4]
    assert [e.seq for e in store.list_audit(action="deny.*")] == [7]
    assert [e.seq for e in store.list_audit(action="action.*", limit=2)] == [5, 6]
    assert [e.seq for e in store.list_audit(since=START + timedelta(minutes=4))] == [5, 6, 7]
    assert [e.seq for e in store.list_audit(limit=3)] == [5, 6, 7]
    assert store.list_audit(action="action_%") == []  # LIKE wildcards are escaped
    assert store.list_audit(action="act%*") == []
    with pytest.raises(InvalidInput):
        store.list_audit(limit=0)


def test_export_is_json_lines_that_verify_on_their_own(
    store: SecurityStore, clock: FakeClock
) -> None:
    fill(store, clock, 3)
    out = io.BytesIO()
    assert store.export_audit(out) == 3
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and out.getvalue().endswith(b"\n")
    entries = [entry_from_dict(orjson.loads(line)) for line in lines]
    assert entries == store.list_audit()
    assert verify_chain(entries, store.audit_head()) == []


def test_export_reads_in_batches(store: SecurityStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("modelport.security.store._EXPORT_BATCH", 2)
    for i in range(5):
        store.append_audit("alice", "x", str(i), "ok")
    out = io.BytesIO()
    assert store.export_audit(out) == 5
    assert [orjson.loads(line)["seq"] for line in out.getvalue().splitlines()] == [1, 2, 3, 4, 5]
    assert store.verify_audit().entries == 5


def test_concurrent_appenders_keep_one_chain(backend_url: str, clock: FakeClock) -> None:
    SecurityStore(backend_url, clock).close()  # migrate once; the workers race on appends
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    procs = [
        ctx.Process(target=append_many, args=(backend_url, n, EACH, barrier))
        for n in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    with SecurityStore(backend_url, clock) as store:
        report = store.verify_audit()
        entries = store.list_audit(limit=None)
    assert report.problems == ()
    assert report.entries == PROCESSES * EACH
    assert [e.seq for e in entries] == list(range(1, PROCESSES * EACH + 1))
    for n in range(PROCESSES):
        mine = [e.details["i"] for e in entries if e.actor == f"worker-{n}"]
        assert mine == list(range(EACH)), "each worker's entries keep its order"


# -- tampering with the database directly ---------------------------------------------------


@pytest.fixture
def filled(store: SecurityStore, clock: FakeClock, backend_url: str) -> str:
    fill(store, clock, 5)
    return backend_url


def test_an_edited_row(store: SecurityStore, filled: str) -> None:
    with raw(filled) as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"))
    assert problems(store) == [(3, ProblemKind.EDITED)]


def test_edited_details(store: SecurityStore, filled: str) -> None:
    with raw(filled) as conn:
        conn.execute(text("""UPDATE audit_log SET details = '{"i": 99}' WHERE seq = 2"""))
    assert problems(store) == [(2, ProblemKind.EDITED)]


def test_a_deleted_row(store: SecurityStore, filled: str) -> None:
    with raw(filled) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    assert problems(store) == [(3, ProblemKind.DELETED)]


def test_a_deleted_tail(store: SecurityStore, filled: str) -> None:
    with raw(filled) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq >= 4"))
    report = store.verify_audit()
    assert [(p.seq, p.kind) for p in report.problems] == [(4, ProblemKind.TRUNCATED)]
    assert report.entries == 3


def test_a_row_appended_behind_the_heads_back(store: SecurityStore, filled: str) -> None:
    head = store.audit_head()
    assert head is not None
    forged = seal(head, START + timedelta(hours=1), "mallory", "key.create", "evil", "ok")
    with raw(filled) as conn:
        conn.execute(insert(audit_log).values(**_row(forged)))
    assert problems(store) == [(6, ProblemKind.INSERTED)]


def test_a_row_inserted_in_the_middle(store: SecurityStore, filled: str) -> None:
    second = store.list_audit()[1]
    forged = seal(AuditHead(2, second.hash), START, "mallory", "key.create", "evil", "ok")
    with raw(filled) as conn:
        # Make room at seq 3 (two steps: the primary key is checked row by row).
        conn.execute(text("UPDATE audit_log SET seq = -seq WHERE seq >= 3"))
        conn.execute(text("UPDATE audit_log SET seq = 1 - seq WHERE seq < 0"))
        conn.execute(insert(audit_log).values(**_row(forged)))
    found = problems(store)
    assert (3, ProblemKind.INSERTED) in found
    assert {kind for _, kind in found} == {ProblemKind.INSERTED, ProblemKind.EDITED}


def test_two_rows_swapped(store: SecurityStore, filled: str) -> None:
    with raw(filled) as conn:
        conn.execute(text("UPDATE audit_log SET seq = -3 WHERE seq = 3"))
        conn.execute(text("UPDATE audit_log SET seq = 3 WHERE seq = 4"))
        conn.execute(text("UPDATE audit_log SET seq = 4 WHERE seq = -3"))
    assert problems(store) == [(3, ProblemKind.REORDERED), (4, ProblemKind.REORDERED)]


def test_a_moved_head_record(store: SecurityStore, filled: str) -> None:
    with raw(filled) as conn:
        conn.execute(text("UPDATE audit_head SET last_seq = 7"))
    assert problems(store) == [(6, ProblemKind.TRUNCATED)]


def test_a_deleted_head_record(store: SecurityStore, filled: str) -> None:
    with raw(filled) as conn:
        conn.execute(text("DELETE FROM audit_head"))
    assert problems(store) == [(0, ProblemKind.HEAD_MISSING)]
    with pytest.raises(IntegrityError):
        store.append_audit("alice", "x", None, "ok")


def _row(entry: object) -> dict[str, object]:
    names = ("seq", "at", "actor", "action", "target", "outcome", "request_id", "details")
    return {n: getattr(entry, n) for n in (*names, "prev_hash", "hash")}


# -- signed checkpoints: someone who can write the database but not the data directory -------


def checkpointed(checkpoints: CheckpointFile) -> list[int]:
    return [c.seq for c in checkpoints.read().checkpoints]


def test_control_actions_are_checkpointed_denials_now_and_then(
    backend_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    cp = CheckpointFile.in_home(tmp_path / "home", every=3, every_s=60)
    store = SecurityStore(backend_url, clock, cp)
    try:
        for _ in range(5):
            store.append_audit("anon", "deny.infer", "m", "denied")
        assert checkpointed(cp) == [1, 4], "the first entry, then every 3"
        store.append_audit("alice", "model.load", "m", "started")
        store.append_audit("alice", "model.load", "m", "ok")
        assert checkpointed(cp) == [1, 4, 6, 7], "every control action"
        store.append_audit("anon", "deny.infer", "m", "denied")
        clock.advance(61)
        store.append_audit("anon", "deny.infer", "m", "denied")
        assert checkpointed(cp) == [1, 4, 6, 7, 9], "or once 60 s have passed"
        store.append_audit("anon", "deny.infer", "m", "denied")
    finally:
        store.close()
    assert checkpointed(cp) == [1, 4, 6, 7, 9, 10], "closing anchors the last denials"
    assert stat.S_IMODE(cp.path.stat().st_mode) == 0o600
    with SecurityStore(backend_url, clock, cp) as again:
        report = again.verify_audit()
    assert report.intact and report.checkpoints == 6
    assert report.last_checkpoint is not None and report.last_checkpoint.seq == 10


def test_key_changes_are_checkpointed(store: SecurityStore, checkpoints: CheckpointFile) -> None:
    from modelport.security.identity import Grant, Role

    record, _ = store.create_key("ci", (Grant(Role.ADMIN),), None, "alice")
    store.revoke_key(record.key_id, "bob")
    assert checkpointed(checkpoints) == [1, 2]
    assert store.verify_audit().intact


def test_an_intact_log_verifies_against_its_checkpoints(store: SecurityStore, filled: str) -> None:
    report = store.verify_audit()
    assert report.problems == () and report.entries == 5 and report.checkpoints == 5


def test_a_cut_tail_and_a_moved_head_are_detected(store: SecurityStore, filled: str) -> None:
    third = store.list_audit()[2]
    with raw(filled) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq > 3"))
        conn.execute(text("UPDATE audit_head SET last_seq = 3, last_hash = :h"), {"h": third.hash})
    assert problems(store) == [(3, ProblemKind.HEAD_REWRITTEN), (4, ProblemKind.TRUNCATED)]


def test_a_deleted_entry_sealed_again_is_detected(store: SecurityStore, filled: str) -> None:
    # seal() is public: a tamperer can chain the rest again.
    _reseal_without_entry_2(store, filled)
    assert problems(store) == [
        (2, ProblemKind.RESEALED),
        (4, ProblemKind.HEAD_REWRITTEN),
        (5, ProblemKind.TRUNCATED),
    ]


def test_a_rewritten_head_is_detected(store: SecurityStore, filled: str) -> None:
    with raw(filled) as conn:
        conn.execute(text("UPDATE audit_head SET last_hash = :h"), {"h": "ab" * 32})
    assert problems(store) == [(5, ProblemKind.HEAD_REWRITTEN)]


def test_a_forged_checkpoint_is_detected(
    store: SecurityStore, filled: str, checkpoints: CheckpointFile
) -> None:
    lines = checkpoints.path.read_bytes().splitlines()
    forged = orjson.loads(lines[2])
    forged["hash"] = "cd" * 32
    checkpoints.path.write_bytes(b"\n".join([*lines, orjson.dumps(forged)]) + b"\n")
    found = store.verify_audit().problems
    assert [(p.seq, p.kind) for p in found] == [(3, ProblemKind.BAD_CHECKPOINT)]
    assert "line 6 of" in found[0].message and "forged or altered" in found[0].message


def test_a_missing_checkpoint_file_is_detected_and_can_be_started_again(
    store: SecurityStore, filled: str, checkpoints: CheckpointFile
) -> None:
    checkpoints.path.unlink()
    assert problems(store) == [(0, ProblemKind.CHECKPOINTS_MISSING)]
    checkpoints.path.write_bytes(b"")
    assert problems(store) == [(0, ProblemKind.CHECKPOINTS_MISSING)]
    made = store.checkpoint_audit()
    assert made is not None and made.seq == 5 and made.hash == store.list_audit()[-1].hash
    assert store.verify_audit().intact


def test_a_tampered_log_is_not_checkpointed(store: SecurityStore, filled: str) -> None:
    with raw(filled) as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"))
    before = store.verify_audit().checkpoints
    with pytest.raises(IntegrityError, match="not intact"):
        store.checkpoint_audit()
    assert store.verify_audit().checkpoints == before


def test_an_empty_log_needs_no_checkpoint(store: SecurityStore) -> None:
    report = store.verify_audit()
    assert report.intact and report.checkpoints == 0
    assert store.checkpoint_audit() is None
    assert store.verify_audit().checkpoints == 0


def test_checkpoints_export_as_stored(
    store: SecurityStore, filled: str, checkpoints: CheckpointFile
) -> None:
    out = io.BytesIO()
    assert store.export_checkpoints(out) == 5
    assert out.getvalue() == checkpoints.path.read_bytes()


def test_a_store_without_a_checkpoint_file(tmp_path: Path, clock: FakeClock) -> None:
    url = "sqlite://"  # in memory: nowhere to put checkpoints
    with SecurityStore(url, clock) as store:
        store.append_audit("alice", "x", None, "ok")
        report = store.verify_audit()
        assert report.intact and report.checkpoints is None
        with pytest.raises(ConfigError, match="no checkpoint file"):
            store.checkpoint_audit()


def test_a_rewrite_by_a_key_holder_shows_only_against_checkpoints_kept_elsewhere(
    store: SecurityStore, filled: str, checkpoints: CheckpointFile, tmp_path: Path
) -> None:
    kept = tmp_path / "elsewhere" / "checkpoints.jsonl"
    kept.parent.mkdir()
    with kept.open("wb") as out:
        store.export_checkpoints(out)
    # Someone with the database and the data directory (so the key) rewrites both.
    checkpoints.path.unlink()
    _reseal_without_entry_2(store, filled, checkpoints)
    assert store.verify_audit().intact, "the threat model's limit: nothing local can tell"
    found = store.verify_audit(against=kept).problems
    assert [(p.seq, p.kind) for p in found] == [
        (2, ProblemKind.RESEALED),
        (4, ProblemKind.HEAD_REWRITTEN),
        (5, ProblemKind.TRUNCATED),
    ]
    missing = store.verify_audit(against=tmp_path / "nowhere.jsonl").problems
    assert [(p.seq, p.kind) for p in missing] == [(0, ProblemKind.CHECKPOINTS_MISSING)]
    assert "nowhere.jsonl is missing" in missing[0].message


def test_denials_left_waiting_are_checkpointed_after_the_interval(
    backend_url: str, tmp_path: Path
) -> None:
    cp = CheckpointFile.in_home(tmp_path / "home", every=100, every_s=0.2)
    store = SecurityStore(backend_url, SystemClock(), cp)
    try:
        store.append_audit("anon", "deny.infer", "m", "denied")
        store.append_audit("anon", "deny.infer", "m", "denied")
        assert checkpointed(cp) == [1], "the second denial waits"
        deadline = time.monotonic() + 10
        while checkpointed(cp) != [1, 2] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointed(cp) == [1, 2], "no append came, yet the interval anchored it"
    finally:
        store.close()
    assert checkpointed(cp) == [1, 2], "nothing more to anchor on close"


def test_the_wired_store_anchors_the_log_in_the_data_directory_on_every_backend(
    backend_url: str, tmp_path: Path
) -> None:
    from modelport.core.settings import Settings
    from modelport.security.identity import parse_grants
    from modelport.service.wiring import open_security_store

    home = tmp_path / "home"
    with open_security_store(Settings(home=home, database_url=backend_url)) as store:
        store.create_key("ci", parse_grants(["viewer"]), None, "alice")
        assert store.verify_audit().intact
    checkpoints = home / "audit" / "checkpoints.jsonl"
    assert checkpoints.exists() and checkpoints.read_text().strip()


def _reseal_without_entry_2(
    store: SecurityStore, url: str, checkpoints: CheckpointFile | None = None
) -> None:
    """Delete entry 2 and chain the rest again with ``seal()``, moving the head record (and
    signing new checkpoints when given the key's file: an attacker holding the key)."""
    kept = [e for e in store.list_audit() if e.seq != 2]
    head = AuditHead()
    with raw(url) as conn:
        conn.execute(text("DELETE FROM audit_log"))
        for old in kept:
            entry = seal(
                head,
                old.at,
                old.actor,
                old.action,
                old.target,
                old.outcome,
                old.request_id,
                old.details,
            )
            conn.execute(insert(audit_log).values(**_row(entry)))
            head = AuditHead(entry.seq, entry.hash)
            if checkpoints is not None:
                checkpoints.append(entry.seq, entry.hash, entry.at)
        conn.execute(
            text("UPDATE audit_head SET last_seq = :s, last_hash = :h"),
            {"s": head.seq, "h": head.hash},
        )
