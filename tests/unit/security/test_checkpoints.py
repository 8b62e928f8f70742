"""Signed audit checkpoints: when they are due, their lines, their file and its signatures."""

from __future__ import annotations

import base64
import io
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelport.core.errors import ConfigError
from modelport.security.audit import Checkpoint, ProblemKind
from modelport.security.checkpoints import (
    FORMAT,
    CheckpointFile,
    checkpoint_due,
    checkpoint_line,
    parse_checkpoints,
    signed_message,
)
from modelport.security.signing import (
    key_id,
    load_or_create_signing_key,
    public_key_pem,
    trusted_keys,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
H = "ab" * 32


@pytest.mark.parametrize(
    ("seq", "outcome", "last_seq", "since", "due"),
    [
        (5, "ok", 4, 0.0, True),  # every control action
        (5, "failed", 4, 0.0, True),
        (5, "started", 4, 0.0, True),
        (5, "denied", 0, 0.0, True),  # a process's first entry
        (5, "denied", 4, 0.0, False),
        (13, "denied", 4, 59.9, False),
        (14, "denied", 4, 0.0, True),  # every 10 entries
        (6, "denied", 4, 60.0, True),  # or every 60 s
    ],
)
def test_when_a_checkpoint_is_due(
    seq: int, outcome: str, last_seq: int, since: float, due: bool
) -> None:
    assert checkpoint_due(seq, outcome, last_seq, since, every=10, every_s=60.0) is due


def test_a_line_is_signed_json_that_parses_back() -> None:
    key = Ed25519PrivateKey.generate()
    line = checkpoint_line(7, H, T0, key)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    data = orjson.loads(line)
    assert data["format"] == FORMAT and (data["seq"], data["hash"]) == (7, H)
    assert data["at"] == "2025-03-01T12:00:00.123456+00:00"
    assert data["key_id"] == key_id(key.public_key())
    key.public_key().verify(base64.b64decode(data["sig"]), signed_message(7, H, T0))
    good, problems = parse_checkpoints([line, b"  "], trusted_keys([key.public_key()]), "f")
    assert good == [Checkpoint(7, H, T0)] and problems == []


def test_the_signature_covers_a_prefix_apart_from_manifests() -> None:
    assert signed_message(1, H, T0).startswith(b"modelport.audit-checkpoint/v1\x00{")
    assert signed_message(1, H, T0) != signed_message(2, H, T0)


def _altered(line: bytes, **changes: object) -> bytes:
    return orjson.dumps({**orjson.loads(line), **changes})


@pytest.mark.parametrize(
    ("change", "seq", "fragment"),
    [
        ({"hash": "cd" * 32}, 3, "signature does not verify: it was forged or altered"),
        ({"seq": 4}, 4, "signature does not verify"),
        ({"at": "2025-03-02T12:00:00+00:00"}, 3, "signature does not verify"),
        ({"sig": base64.b64encode(bytes(64)).decode()}, 3, "signature does not verify"),
        ({"key_id": "ed25519:" + "0" * 64}, 3, "not a trusted key"),
        ({"seq": 0}, 0, "seq, a number of 1 or more"),
        ({"seq": "3"}, 0, "seq, a number of 1 or more"),
        ({"hash": None}, 0, "hash, at, key_id and sig as text"),
        ({"format": "other"}, 0, "not a checkpoint"),
        ({"sig": "not base64!"}, 0, "malformed"),
        ({"at": "yesterday"}, 0, "malformed"),
        ({"at": "2025-03-01T12:00:00"}, 0, "no zone"),
    ],
)
def test_an_altered_or_malformed_line_is_a_bad_checkpoint(
    change: dict[str, object], seq: int, fragment: str
) -> None:
    key = Ed25519PrivateKey.generate()
    line = checkpoint_line(3, H, T0, key)
    good, problems = parse_checkpoints(
        [line, _altered(line, **change)], trusted_keys([key.public_key()]), "cp.jsonl"
    )
    assert good == [Checkpoint(3, H, T0)]
    (problem,) = problems
    assert (problem.seq, problem.kind) == (seq, ProblemKind.BAD_CHECKPOINT)
    assert fragment in problem.message and "line 2 of cp.jsonl" in problem.message


def test_a_checkpoint_signed_by_another_key_is_not_trusted() -> None:
    mine, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    line = checkpoint_line(3, H, T0, theirs)
    _, problems = parse_checkpoints([line], trusted_keys([mine.public_key()]), "f")
    assert "not a trusted key" in problems[0].message
    good, _ = parse_checkpoints([line, b"not json"], trusted_keys([theirs.public_key()]), "f")
    assert good == [Checkpoint(3, H, T0)]


def test_the_file_is_private_append_only_and_checked_on_reading(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cp = CheckpointFile.in_home(home)
    assert cp.path == home / "audit" / "checkpoints.jsonl"
    assert cp.read().found is False
    cp.append(1, H, T0)
    cp.append(2, "cd" * 32, T0 + timedelta(seconds=1))
    assert stat.S_IMODE(cp.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cp.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(cp.key_path.stat().st_mode) == 0o600, "the key is made on first use"
    read = cp.read()
    assert read.found and read.lines == 2 and read.problems == ()
    assert [c.seq for c in read.checkpoints] == [1, 2]
    out = io.BytesIO()
    assert cp.export(out) == 2
    assert out.getvalue() == cp.path.read_bytes()


def test_a_key_replaced_since_is_not_trusted_unless_given(tmp_path: Path) -> None:
    cp = CheckpointFile.in_home(tmp_path)
    cp.append(1, H, T0)
    old = load_or_create_signing_key(cp.key_path).public_key()
    cp.key_path.unlink()
    cp.key_path.with_name("signing.pub.pem").unlink()
    fresh = CheckpointFile.in_home(tmp_path)
    assert fresh.read().checkpoints == ()
    (problem,) = fresh.read().problems
    assert "not a trusted key" in problem.message
    assert fresh.read([old]).checkpoints == (Checkpoint(1, H, T0),)


def test_the_public_half_alone_checks_the_signatures(tmp_path: Path) -> None:
    cp = CheckpointFile.in_home(tmp_path)
    cp.append(1, H, T0)
    public = load_or_create_signing_key(cp.key_path).public_key()
    cp.key_path.unlink()
    pub = cp.key_path.with_name("signing.pub.pem")
    assert pub.read_bytes() == public_key_pem(public)
    assert CheckpointFile.in_home(tmp_path).read().checkpoints == (Checkpoint(1, H, T0),)


def test_an_unwritable_file_says_the_entry_was_recorded(tmp_path: Path) -> None:
    cp = CheckpointFile(tmp_path / "audit", tmp_path / "keys" / "signing.pem")
    (tmp_path / "audit").mkdir()
    with pytest.raises(ConfigError, match="audit entry 9 was recorded, but its checkpoint"):
        cp.append(9, H, T0)


def test_bad_policy_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both must be positive"):
        CheckpointFile(tmp_path / "c", tmp_path / "k", every=0)
    with pytest.raises(ConfigError, match="both must be positive"):
        CheckpointFile(tmp_path / "c", tmp_path / "k", every_s=0)
