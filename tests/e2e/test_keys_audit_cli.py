"""``modelport keys`` and ``modelport audit`` as a user runs them: a real process, a real home."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelport.core.clock import SystemClock
from modelport.security.audit import AuditHead, seal
from modelport.security.identity import AuthMethod, Grant, Role
from modelport.security.store import SecurityStore
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow


def ok(home: Path, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    done = modelport(home, *args, user=user)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done


def fails(home: Path, code: int, fragment: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = modelport(home, *args)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    return done


def create(home: Path, *args: str) -> tuple[str, str]:
    """Create a key; return the printed key and its id."""
    done = ok(home, "keys", "create", *args)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "standard output holds the key and nothing else"
    token = lines[0]
    assert token.startswith("mpk_")
    assert "only time the key is shown" in done.stderr
    return token, token.split("_")[1]


def store(home: Path) -> SecurityStore:
    return SecurityStore(f"sqlite:///{home / 'modelport.db'}", SystemClock())


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def test_create_list_revoke(home: Path) -> None:
    token, key_id = create(
        home,
        *("--role", "predictor", "--scope", "fraud-*", "--scope", "churn"),
        *("--expires", "30d", "--name", "ci runner"),
    )
    with store(home) as opened:
        identity = opened.resolve_api_key(token)
    assert identity.subject == f"key:{key_id}"
    assert identity.method is AuthMethod.API_KEY
    assert identity.grants == (Grant(Role.PREDICTOR, "fraud-*"), Grant(Role.PREDICTOR, "churn"))
    assert identity.expires_at is not None

    table = ok(home, "keys", "list").stdout
    assert key_id in table and "ci runner" in table
    assert token.split("_", 2)[2] not in table
    listed = json.loads(ok(home, "keys", "list", "--json").stdout)
    (mine,) = [k for k in listed if k["key_id"] == key_id]
    assert mine["grants"] == ["predictor:fraud-*", "predictor:churn"]
    assert mine["status"] == "active" and mine["revoked_at"] is None
    assert mine["created_by"] == "alice" and mine["expires_at"] is not None
    assert set(mine) == {
        "key_id",
        "name",
        "grants",
        "created_at",
        "created_by",
        "expires_at",
        "revoked_at",
        "revoked_by",
        "status",
    }

    assert f"revoked API key {key_id}" in ok(home, "keys", "revoke", key_id, user="bob").stdout
    listed = json.loads(ok(home, "keys", "list", "--json").stdout)
    (mine,) = [k for k in listed if k["key_id"] == key_id]
    assert mine["status"] == "revoked" and mine["revoked_by"] == "bob"
    assert "already revoked" in ok(home, "keys", "revoke", key_id).stdout
    with store(home) as opened, pytest.raises(Exception, match="revoked"):
        opened.resolve_api_key(token)


def test_create_json_prints_the_key_once_with_a_warning(home: Path) -> None:
    done = ok(home, "keys", "create", "--role", "admin", "--json")
    payload = json.loads(done.stdout)
    assert payload["key"].startswith(f"mpk_{payload['key_id']}_")
    assert payload["grants"] == ["admin:*"]
    assert payload["expires_at"] is None
    assert "only time the key is shown" in payload["warning"]
    listed = ok(home, "keys", "list", "--json").stdout
    assert payload["key"] not in listed


def test_an_iso_expiry(home: Path) -> None:
    _, key_id = create(home, "--role", "viewer", "--expires", "2099-01-31T12:00:00Z")
    listed = json.loads(ok(home, "keys", "list", "--json").stdout)
    (mine,) = [k for k in listed if k["key_id"] == key_id]
    assert mine["expires_at"] == "2099-01-31T12:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--role", "superuser"], 2, "unknown role 'superuser': expected one of viewer"),
        (["--role", "admin", "--expires", "soon"], 2, "--expires 'soon': expected a duration"),
        (["--role", "admin", "--expires", "0d"], 2, "longer than zero"),
        (["--role", "admin", "--expires", "2001-01-01"], 2, "in the past"),
        (["--role", "admin", "--scope", " "], 2, "--scope must not be empty"),
    ],
)
def test_bad_create_arguments(home: Path, args: list[str], code: int, fragment: str) -> None:
    with store(home) as opened:
        before = opened.list_keys()
    fails(home, code, fragment, "keys", "create", *args)
    with store(home) as opened:
        assert opened.list_keys() == before, "nothing was created"


def test_revoking_an_unknown_key(home: Path) -> None:
    fails(home, 3, "no API key 'feedfacecafe'", "keys", "revoke", "feedfacecafe")


def test_audit_list_verify_export(home: Path, tmp_path: Path) -> None:
    _, key_id = create(home, "--role", "viewer", "--name", "audited")
    ok(home, "keys", "revoke", key_id, user="carol")

    entries = json.loads(ok(home, "audit", "list", "--json", "--limit", "1000").stdout)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert {e["action"] for e in entries} == {"key.create", "key.revoke"}
    revokes = json.loads(
        ok(home, "audit", "list", "--json", "--action", "key.revoke", "--actor", "carol").stdout
    )
    assert [(e["target"], e["outcome"]) for e in revokes] == [(key_id, "ok")]
    (last,) = json.loads(ok(home, "audit", "list", "--json", "--limit", "1").stdout)
    assert last == entries[-1]
    recent = json.loads(ok(home, "audit", "list", "--json", "--since", "1h").stdout)
    assert len(recent) == min(len(entries), 100)
    assert json.loads(ok(home, "audit", "list", "--json", "--since", "2099-01-01").stdout) == []
    table = ok(home, "audit", "list", "--action", "key.*").stdout
    assert "key.revoke" in table and "carol" in table

    verified = ok(home, "audit", "verify").stdout.strip()
    assert verified == f"audit log intact: {len(entries)} entries"

    exported = ok(home, "audit", "export").stdout.splitlines()
    assert [json.loads(line) for line in exported] == entries
    target = tmp_path / "audit.jsonl"
    assert (
        f"exported {len(entries)} audit entries" in ok(home, "audit", "export", str(target)).stdout
    )
    assert target.read_text().splitlines() == exported


def test_bad_audit_arguments(home: Path) -> None:
    fails(home, 2, "--since 'last week'", "audit", "list", "--since", "last week")
    fails(home, 2, "is a folder", "audit", "export", str(home))
    missing = str(home / "missing.jsonl")
    fails(home, 3, "no such file", "audit", "verify", "--checkpoints", missing)
    fails(home, 3, "no such file", "audit", "verify", "--public-key", missing)


def test_a_tampered_row_fails_verify_naming_the_entry(tmp_path: Path) -> None:
    create(tmp_path, "--role", "admin")
    create(tmp_path, "--role", "viewer")
    _, third = create(tmp_path, "--role", "predictor")
    ok(tmp_path, "keys", "revoke", third)
    assert ok(tmp_path, "audit", "verify").stdout.strip() == "audit log intact: 4 entries"

    with sqlite3.connect(tmp_path / "modelport.db") as db:
        db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    done = fails(tmp_path, 6, "tampered with: 1 problem in 4 entries", "audit", "verify")
    assert done.stdout.strip().splitlines() == [
        "seq 2: edited: its content does not match its hash"
    ]

    with sqlite3.connect(tmp_path / "modelport.db") as db:
        db.execute("DELETE FROM audit_log WHERE seq >= 3")
    done = fails(tmp_path, 6, "2 problems in 2 entries", "audit", "verify")
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("seq 2: edited:")
    assert lines[1].startswith("seq 3: truncated: entries 3-4 are missing from the end")
    report = json.loads(modelport(tmp_path, "audit", "verify", "--json").stdout)
    assert report["intact"] is False and report["entries"] == 2
    assert [(p["seq"], p["kind"]) for p in report["problems"]] == [(2, "edited"), (3, "truncated")]


# -- an attacker who can write to the database (but not the data directory) -------------------


def _four_entries(home: Path) -> None:
    create(home, "--role", "admin")
    create(home, "--role", "viewer")
    _, third = create(home, "--role", "predictor")
    ok(home, "keys", "revoke", third)
    assert ok(home, "audit", "verify").stdout.strip() == "audit log intact: 4 entries"


def _kinds(home: Path) -> list[tuple[int, str]]:
    done = modelport(home, "audit", "verify", "--json")
    assert done.returncode == 6, (done.stdout, done.stderr)
    return [(p["seq"], p["kind"]) for p in json.loads(done.stdout)["problems"]]


def test_truncating_the_tail_and_moving_the_head_is_detected(tmp_path: Path) -> None:
    _four_entries(tmp_path)
    with sqlite3.connect(tmp_path / "modelport.db") as db:
        (hash2,) = db.execute("SELECT hash FROM audit_log WHERE seq = 2").fetchone()
        db.execute("DELETE FROM audit_log WHERE seq >= 3")
        db.execute("UPDATE audit_head SET last_seq = 2, last_hash = ?", (hash2,))
    assert _kinds(tmp_path) == [(2, "head-rewritten"), (3, "truncated")]
    done = fails(tmp_path, 6, "tampered with", "audit", "verify")
    assert "entries 3-4 are missing from the end" in done.stdout


def test_deleting_an_entry_and_resealing_the_rest_is_detected(tmp_path: Path) -> None:
    _four_entries(tmp_path)
    with sqlite3.connect(tmp_path / "modelport.db") as db:
        db.row_factory = sqlite3.Row
        rows = [r for r in db.execute("SELECT * FROM audit_log ORDER BY seq") if r["seq"] != 2]
        db.execute("DELETE FROM audit_log")
        head = AuditHead()
        for row in rows:  # what a tamperer who knows the scheme does: seal() the rest again
            at = datetime.fromisoformat(row["at"]).replace(tzinfo=UTC)
            entry = seal(
                head,
                at,
                row["actor"],
                row["action"],
                row["target"],
                row["outcome"],
                row["request_id"],
                json.loads(row["details"]),
            )
            db.execute(
                "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.seq, row["at"], entry.actor, entry.action, entry.target, entry.outcome)
                + (entry.request_id, json.dumps(entry.details), entry.prev_hash, entry.hash),
            )
            head = AuditHead(entry.seq, entry.hash)
        db.execute("UPDATE audit_head SET last_seq = ?, last_hash = ?", (head.seq, head.hash))
    kinds = _kinds(tmp_path)
    assert kinds == [(2, "resealed"), (3, "head-rewritten"), (4, "truncated")]


def test_rewriting_the_head_hash_is_detected(tmp_path: Path) -> None:
    _four_entries(tmp_path)
    with sqlite3.connect(tmp_path / "modelport.db") as db:
        db.execute("UPDATE audit_head SET last_hash = ?", ("ab" * 32,))
    assert _kinds(tmp_path) == [(4, "head-rewritten")]


def test_a_forged_checkpoint_is_detected(tmp_path: Path) -> None:
    _four_entries(tmp_path)
    path = tmp_path / "audit" / "checkpoints.jsonl"
    lines = path.read_bytes().splitlines()
    forged = json.loads(lines[-1])
    forged["hash"] = "cd" * 32
    path.write_bytes(b"\n".join([*lines, json.dumps(forged).encode()]) + b"\n")
    kinds = _kinds(tmp_path)
    assert kinds == [(4, "bad-checkpoint")]


def test_a_missing_checkpoint_file_is_detected(tmp_path: Path) -> None:
    _four_entries(tmp_path)
    (tmp_path / "audit" / "checkpoints.jsonl").unlink()
    assert _kinds(tmp_path) == [(0, "checkpoints-missing")]


def test_checkpoints_export_and_verify_with_a_public_key_kept_elsewhere(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _four_entries(home)
    kept = tmp_path / "kept.pub.pem"
    kept.write_bytes((home / "keys" / "signing.pub.pem").read_bytes())
    entries, cps = tmp_path / "audit.jsonl", tmp_path / "checkpoints.jsonl"
    out = ok(home, "audit", "export", str(entries), "--checkpoints", str(cps)).stdout
    assert "exported 4 audit checkpoints" in out and "exported 4 audit entries" in out
    assert cps.read_bytes() == (home / "audit" / "checkpoints.jsonl").read_bytes()
    assert len(ok(home, "audit", "export", "--checkpoints", "-", str(entries)).stdout.split()) == 4
    checked = ok(home, "audit", "verify", "--checkpoints", str(cps)).stdout.strip()
    assert checked == "audit log intact: 4 entries"

    # Someone with the data directory replaces the key and signs a checkpoint of their own.
    (home / "keys" / "signing.pem").unlink()
    (home / "keys" / "signing.pub.pem").unlink()
    report = json.loads(modelport(home, "audit", "verify", "--json").stdout)
    assert {p["kind"] for p in report["problems"]} == {"bad-checkpoint"}
    assert "not a trusted key" in report["problems"][0]["message"]
    report = json.loads(ok(home, "audit", "verify", "--json", "--public-key", str(kept)).stdout)
    assert report["intact"] is True and report["checkpoints"] == 4
    assert report["last_checkpoint"]["seq"] == 4


def test_audit_checkpoint_anchors_a_log_from_before_checkpoints(tmp_path: Path) -> None:
    _four_entries(tmp_path)
    (tmp_path / "audit" / "checkpoints.jsonl").unlink()  # as an older modelport left it
    fails(tmp_path, 6, "tampered with: 1 problem", "audit", "verify")
    assert "checkpointed audit entry 4" in ok(tmp_path, "audit", "checkpoint").stdout
    assert ok(tmp_path, "audit", "verify").stdout.strip() == "audit log intact: 4 entries"
    with sqlite3.connect(tmp_path / "modelport.db") as db:
        db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    fails(tmp_path, 6, "not intact", "audit", "checkpoint")
