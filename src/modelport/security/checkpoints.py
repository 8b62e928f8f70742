"""Signed checkpoints of the audit chain, kept in a file outside the metadata database.

A checkpoint says "entry ``seq`` of the audit log had hash ``hash``" at a time, signed with the
installation's Ed25519 signing key (``HOME/keys/signing.pem``, the key that signs artifact
manifests). Someone who can write to the database but holds neither that key nor the data
directory cannot cut entries off the end, rewrite the head record, or delete an entry and seal
the rest again without ``modelport audit verify`` noticing: the checkpoints name entries and
hashes the database no longer has (see :mod:`modelport.security.audit` for the checks).

The file (``HOME/audit/checkpoints.jsonl`` by default) is append-only JSON lines, created with
mode 0600 in a 0700 folder; each line is one checkpoint::

    {"format": "modelport.audit-checkpoint/v1", "seq": 12, "hash": "<64 hex>",
     "at": "2025-03-01T12:00:00.000000+00:00", "key_id": "ed25519:<hex>", "sig": "<base64>"}

The signature covers ``modelport.audit-checkpoint/v1``, a zero byte, and the canonical JSON
(sorted keys, no whitespace) of ``{"at", "hash", "seq"}``; the prefix keeps a checkpoint
signature from being mistaken for a manifest signature (those sign DSSE's ``DSSEv1 ...``).

When the store writes one (:func:`checkpoint_due`): after every entry that is not a denial
(control actions: key changes, registrations, loads and unloads), after the first entry a process
appends, and for denials after :data:`EVERY_ENTRIES` entries or :data:`EVERY_SECONDS` seconds
since the process's last checkpoint, whichever comes first (checked at each append, and by a
timer when no append comes), and when the store is closed. Denials appended since the last
checkpoint are covered by the next one only.

Lines are appended after the entry's transaction commits, so a checkpoint never names an entry
that does not exist; several processes may append to one file (each line is one ``write`` with
``O_APPEND``), so lines need not be in ``seq`` order.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import orjson

from modelport.core.errors import ConfigError
from modelport.security.audit import ChainProblem, Checkpoint, ProblemKind

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "EVERY_ENTRIES",
    "EVERY_SECONDS",
    "FORMAT",
    "CheckpointFile",
    "CheckpointRead",
    "checkpoint_due",
    "checkpoint_line",
    "parse_checkpoints",
    "signed_message",
]

FORMAT: Final = "modelport.audit-checkpoint/v1"
"""The ``format`` of every checkpoint line, and the prefix of what its signature covers."""

EVERY_ENTRIES: Final = 100
"""A process checkpoints at least once per this many entries (denials included)."""

EVERY_SECONDS: Final = 60.0
"""...and a denial waits at most this many seconds for its checkpoint."""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def signed_message(seq: int, hash: str, at: datetime) -> bytes:
    """Return the bytes a checkpoint's signature covers."""
    body = orjson.dumps({"seq": seq, "hash": hash, "at": _iso(at)}, option=orjson.OPT_SORT_KEYS)
    return FORMAT.encode() + b"\x00" + body


def checkpoint_line(seq: int, hash: str, at: datetime, key: Ed25519PrivateKey) -> bytes:
    """Return one signed checkpoint as a JSON line (newline included).

    Args:
        seq: The entry's sequence number.
        hash: The entry's hash (hex).
        at: When (timezone-aware).
        key: The installation's signing key.
    """
    from modelport.security.signing import key_id

    signature = key.sign(signed_message(seq, hash, at))
    record = {
        "format": FORMAT,
        "seq": seq,
        "hash": hash,
        "at": _iso(at),
        "key_id": key_id(key.public_key()),
        "sig": base64.b64encode(signature).decode(),
    }
    return orjson.dumps(record) + b"\n"


def checkpoint_due(
    seq: int, outcome: str, last_seq: int, since_last_s: float, every: int, every_s: float
) -> bool:
    """Whether an entry just appended gets a checkpoint of its own (pure policy).

    Args:
        seq: The entry's sequence number.
        outcome: Its outcome; everything but ``denied`` is a control action.
        last_seq: The entry this process last checkpointed (0: none yet).
        since_last_s: Seconds since that checkpoint.
        every: Checkpoint at least once per this many entries.
        every_s: ...or when this many seconds have passed.
    """
    return (
        outcome != "denied" or last_seq == 0 or seq - last_seq >= every or since_last_s >= every_s
    )


@dataclass(frozen=True, slots=True)
class CheckpointRead:
    """What a checkpoint file holds.

    Args:
        path: The file read.
        found: Whether it exists.
        lines: How many non-blank lines it has.
        checkpoints: The checkpoints whose signature verified with a trusted key.
        problems: One ``bad-checkpoint`` problem per line that did not.
    """

    path: Path
    found: bool
    lines: int
    checkpoints: tuple[Checkpoint, ...]
    problems: tuple[ChainProblem, ...]


def parse_checkpoints(
    lines: Iterable[bytes], trusted: Mapping[str, Ed25519PublicKey], where: str
) -> tuple[list[Checkpoint], list[ChainProblem]]:
    """Check each checkpoint line's signature; return the good ones and a problem for each other.

    Args:
        lines: The file's lines (blank ones are skipped).
        trusted: Public keys whose signatures are accepted, by key id.
        where: The file's name, for messages.
    """
    from cryptography.exceptions import InvalidSignature

    good: list[Checkpoint] = []
    problems: list[ChainProblem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parsed = _parse(line)
        if isinstance(parsed, str):
            problems.append(
                ChainProblem(0, ProblemKind.BAD_CHECKPOINT, f"line {number} of {where}: {parsed}")
            )
            continue
        checkpoint, kid, signature = parsed
        public = trusted.get(kid)
        why = ""
        if public is None:
            why = f"it is signed by {kid}, which is not a trusted key"
        else:
            try:
                public.verify(
                    signature, signed_message(checkpoint.seq, checkpoint.hash, checkpoint.at)
                )
            except InvalidSignature:
                why = "its signature does not verify: it was forged or altered"
        if why:
            problems.append(
                ChainProblem(
                    checkpoint.seq,
                    ProblemKind.BAD_CHECKPOINT,
                    f"the checkpoint on line {number} of {where}: {why}",
                )
            )
        else:
            good.append(checkpoint)
    return good, problems


def _parse(line: bytes) -> tuple[Checkpoint, str, bytes] | str:
    """Return a line's checkpoint, key id and signature, or why it is not a checkpoint."""
    try:
        data: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not JSON (a checkpoint is one JSON object per line)"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return f"not a checkpoint (expected an object with format {FORMAT!r})"
    seq, hash_, at, kid, sig = (data.get(k) for k in ("seq", "hash", "at", "key_id", "sig"))
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return "a checkpoint needs seq, a number of 1 or more"
    if not (
        isinstance(hash_, str)
        and isinstance(at, str)
        and isinstance(kid, str)
        and isinstance(sig, str)
    ):
        return "a checkpoint needs hash, at, key_id and sig as text"
    try:
        when = datetime.fromisoformat(at)
        signature = base64.b64decode(sig, validate=True)
    except (ValueError, binascii.Error) as exc:
        return f"a malformed checkpoint: {exc}"
    if when.tzinfo is None:
        return "a malformed checkpoint: its time has no zone"
    return Checkpoint(seq, hash_, when.astimezone(UTC)), kid, signature


class CheckpointFile:
    """The append-only file of signed checkpoints, and the key that signs them.

    The signing key is read (created, mode 0600, when missing) at the first checkpoint, not
    when this object is made.

    Args:
        path: The checkpoint file (``HOME/audit/checkpoints.jsonl``).
        key_path: The installation's Ed25519 signing key (``HOME/keys/signing.pem``); its
            public half also checks the signatures.
        every: Checkpoint at least once per this many entries.
        every_s: ...and a denial waits at most this many seconds for one.
    """

    def __init__(
        self,
        path: Path,
        key_path: Path,
        every: int = EVERY_ENTRIES,
        every_s: float = EVERY_SECONDS,
    ) -> None:
        if every < 1 or every_s <= 0:
            raise ConfigError(
                f"audit checkpoints every {every} entries / {every_s} s: both must be positive"
            )
        self.path = Path(path)
        self.key_path = Path(key_path)
        self.every = every
        self.every_s = every_s
        self._key: Ed25519PrivateKey | None = None

    @classmethod
    def in_home(
        cls,
        home: Path,
        key_path: Path | None = None,
        every: int = EVERY_ENTRIES,
        every_s: float = EVERY_SECONDS,
    ) -> CheckpointFile:
        """Return the checkpoint file of the data directory ``home``.

        Args:
            home: The data directory.
            key_path: The signing key; ``None`` means ``home/keys/signing.pem``.
            every: Checkpoint at least once per this many entries.
            every_s: ...and a denial waits at most this many seconds for one.
        """
        return cls(
            home / "audit" / "checkpoints.jsonl",
            key_path or home / "keys" / "signing.pem",
            every,
            every_s,
        )

    def append(self, seq: int, hash: str, at: datetime) -> None:
        """Sign a checkpoint of entry ``seq`` and append it to the file (then ``fsync``).

        Raises:
            ConfigError: The key cannot be read or made, or the file cannot be written.
        """
        from modelport.security.signing import load_or_create_signing_key

        if self._key is None:
            self._key = load_or_create_signing_key(self.key_path)
        line = checkpoint_line(seq, hash, at, self._key)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ConfigError(
                f"audit entry {seq} was recorded, but its checkpoint cannot be written to "
                f"{self.path}: {exc}"
            ) from None

    def trusted(self, extra: Iterable[Ed25519PublicKey] = ()) -> dict[str, Ed25519PublicKey]:
        """Return the keys whose checkpoints are accepted: this installation's, and ``extra``.

        This installation's public key comes from the private key file or, when only the
        public half is there, from ``NAME.pub.pem`` beside it; neither being there is not an
        error (every checkpoint then fails to verify unless ``extra`` has its key).
        """
        from modelport.security.signing import load_public_key, trusted_keys

        own: list[Ed25519PublicKey] = []
        public = self.key_path.with_name(self.key_path.name.removesuffix(".pem") + ".pub.pem")
        for candidate in (self.key_path, public):
            if candidate.exists():
                own.append(load_public_key(candidate))
                break
        return trusted_keys([*own, *extra])

    def read(
        self, extra: Iterable[Ed25519PublicKey] = (), path: Path | None = None
    ) -> CheckpointRead:
        """Read and check every checkpoint in the file.

        Args:
            extra: Public keys trusted besides this installation's own (a key kept elsewhere).
            path: Read this file instead (checkpoints exported and kept elsewhere).

        Raises:
            ConfigError: The file or a key cannot be read.
        """
        path = path or self.path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return CheckpointRead(path, False, 0, (), ())
        except OSError as exc:
            raise ConfigError(f"cannot read the audit checkpoints {path}: {exc}") from None
        lines = raw.splitlines()
        good, problems = parse_checkpoints(lines, self.trusted(extra), str(path))
        count = sum(1 for line in lines if line.strip())
        return CheckpointRead(path, True, count, tuple(good), tuple(problems))

    def export(self, out: IO[bytes]) -> int:
        """Copy the checkpoint file to ``out`` as it is; return how many lines it has.

        Raises:
            ConfigError: The file cannot be read.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise ConfigError(f"cannot read the audit checkpoints {self.path}: {exc}") from None
        out.write(raw)
        return sum(1 for line in raw.splitlines() if line.strip())
