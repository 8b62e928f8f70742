"""The security store: API keys and the audit log in the metadata database.

One implementation on SQLAlchemy Core serves SQLite (embedded default) and PostgreSQL (at scale);
the dialect differences live in :mod:`modelport.db`. The tables sit beside the
registry's in the same database, migrated separately (version table
``security_alembic_version``).

Rules the store enforces:

* Only a salted hash of each key's secret is stored; the full key is returned once, by
  :meth:`SecurityStore.create_key`.
* An unknown key id and a wrong secret are refused with the same message, after the same work
  (a hash comparison against a dummy record), so key ids cannot be probed. Only a caller holding
  the right secret learns that its key expired or was revoked.
* Audit entries form one hash chain even when several processes append at once: each append
  locks the head record (on SQLite the write lock of ``BEGIN IMMEDIATE``, on PostgreSQL
  ``SELECT ... FOR UPDATE`` of the head row), chains onto it and moves it, in one transaction.
* Creating and revoking keys records an audit entry in the same transaction as the change.
* The chain is anchored outside the database: after an entry commits, the store signs a
  checkpoint of it into a file in the data directory when the policy says so (after every
  control action; for denials at least every :data:`~modelport.security.checkpoints.EVERY_ENTRIES`
  entries and within :data:`~modelport.security.checkpoints.EVERY_SECONDS` seconds, by a timer
  when no append comes), and verifying the log checks the chain against those checkpoints
  (:mod:`modelport.security.checkpoints`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import orjson
from sqlalchemy import Connection, Row, Text, cast, insert, select, update
from sqlalchemy.engine import URL

from modelport import db
from modelport.core.clock import Clock
from modelport.core.errors import (
    ConfigError,
    IntegrityError,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from modelport.security._schema import HEAD_ID, MIGRATIONS, api_keys, audit_head, audit_log
from modelport.security.apikeys import (
    ApiKeyRecord,
    generate_key,
    hash_secret,
    parse_key,
    verify_secret,
)
from modelport.security.audit import (
    AuditEntry,
    AuditHead,
    AuditReport,
    ChainProblem,
    Checkpoint,
    ProblemKind,
    chain_is_intact,
    seal,
    to_json_line,
    verify_chain,
)
from modelport.security.checkpoints import CheckpointFile, CheckpointRead, checkpoint_due
from modelport.security.identity import AuthMethod, Grant, Identity, parse_grant

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["SecurityStore"]

log = logging.getLogger(__name__)

_INVALID_KEY: Final = "invalid API key"
# Compared against when the key id is unknown, so that path costs what a wrong secret costs.
_DUMMY_HASH: Final = hash_secret("0" * 43, bytes(16))
_MAX_NAME: Final = 200
_EXPORT_BATCH: Final = 1000

# Every audit column, with details read as the stored text: a tampered, unparsable value must
# not stop the log from being read and checked.
_AUDIT_COLUMNS: Final = (
    audit_log.c.seq,
    audit_log.c.at,
    audit_log.c.actor,
    audit_log.c.action,
    audit_log.c.target,
    audit_log.c.outcome,
    audit_log.c.request_id,
    cast(audit_log.c.details, Text).label("details"),
    audit_log.c.prev_hash,
    audit_log.c.hash,
)


class SecurityStore(db.MigratedDatabase):
    """API keys and the audit log in SQLite or PostgreSQL.

    Opening the store creates a SQLite file's folder when needed and migrates the security
    schema to the newest revision (safe when several processes open a new database at once).

    Args:
        url: SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DB``.
        clock: Source of every timestamp the store records and of "now" for expiry.
        checkpoints: Where the audit chain's signed checkpoints go, and the key that signs
            them. ``None``: for a SQLite file, ``audit/checkpoints.jsonl`` and
            ``keys/signing.pem`` in the database's folder (the data directory, for the default
            database); for PostgreSQL, none (the chain is then not anchored outside the
            database, and :meth:`verify_audit` reports ``checkpoints=None``).

    Raises:
        ConfigError: The URL is unsupported or the database cannot be reached.
        DependencyMissing: The PostgreSQL driver is not installed.
    """

    def __init__(self, url: str, clock: Clock, checkpoints: CheckpointFile | None = None) -> None:
        super().__init__(url, MIGRATIONS)
        self._clock = clock
        self._checkpoints = checkpoints or _default_checkpoints(self._engine.url)
        # What this process last checkpointed, and its newest entry not checkpointed yet.
        self._anchor_lock = threading.Lock()
        self._anchored_seq = 0
        self._anchored_at = -math.inf
        self._unanchored: AuditEntry | None = None
        # Checkpoints denials left waiting once every_s has passed, if no append does first.
        self._timer: threading.Timer | None = None

    @property
    def checkpoints(self) -> CheckpointFile | None:
        """Where the audit chain's signed checkpoints are kept; ``None`` when nowhere."""
        return self._checkpoints

    def close(self) -> None:
        """Checkpoint this process's last audit entries, then close every pooled connection."""
        with self._anchor_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        try:
            self._anchor_pending()
        except ConfigError as exc:
            log.warning("%s", exc.message)
        finally:
            super().close()

    def _now(self) -> datetime:
        now = self._clock.now()
        if now.tzinfo is None:
            raise ValueError("the clock returned a naive datetime; it must be timezone-aware")
        return now.astimezone(UTC)

    # -- API keys ---------------------------------------------------------------------------

    def create_key(
        self,
        name: str,
        grants: Sequence[Grant],
        expires_at: datetime | None,
        created_by: str,
    ) -> tuple[ApiKeyRecord, str]:
        """Create an API key and record ``key.create`` in the audit log.

        Args:
            name: What the key is for (may be empty; at most 200 characters).
            grants: What the key allows; at least one.
            expires_at: When it stops working (timezone-aware, in the future); ``None``: never.
            created_by: Who creates it.

        Returns:
            The key's record and the full key (``mpk_<id>_<secret>``). The key is not stored
            and cannot be shown again.

        Raises:
            InvalidInput: No grant, a name too long, a blank creator, or an expiry that is naive
                or not in the future.
        """
        name = name.strip()
        if len(name) > _MAX_NAME:
            raise InvalidInput(f"key name is {len(name)} characters long; at most {_MAX_NAME}")
        if not grants:
            raise InvalidInput("a key needs at least one grant (ROLE or ROLE:PATTERN)")
        _check_actor(created_by)
        now = self._now()
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InvalidInput("the expiry must be timezone-aware")
            expires_at = expires_at.astimezone(UTC)
            if expires_at <= now:
                raise InvalidInput(
                    f"the expiry {expires_at.isoformat()} is not in the future "
                    f"(now: {now.isoformat()})"
                )
        texts = [str(g) for g in grants]
        with db.write(self._engine) as conn:
            key = generate_key()
            while _key_row(conn, key.key_id) is not None:  # 48 random bits: hardly ever
                key = generate_key()
            conn.execute(
                insert(api_keys).values(
                    key_id=key.key_id,
                    name=name,
                    grants=texts,
                    secret_hash=hash_secret(key.secret),
                    created_at=now,
                    created_by=created_by,
                    expires_at=expires_at,
                )
            )
            details = {
                "name": name,
                "grants": texts,
                "expires_at": expires_at.isoformat() if expires_at else None,
            }
            entry = self._append(conn, created_by, "key.create", key.key_id, "ok", None, details)
            row = _key_row(conn, key.key_id)
        self._anchor(entry)
        if row is None:  # pragma: no cover - inserted in the same transaction
            raise NotFound(f"API key {key.key_id} vanished after it was created")
        return _to_record(row), key.token

    def get_key(self, key_id: str) -> ApiKeyRecord:
        """Return the record of key ``key_id``.

        Raises:
            NotFound: No such key.
        """
        with db.read(self._engine) as conn:
            row = _key_row(conn, key_id)
        if row is None:
            raise NotFound(f"no API key {key_id!r}; `modelport keys list` shows the keys")
        return _to_record(row)

    def list_keys(self) -> list[ApiKeyRecord]:
        """Return every key, revoked and expired ones included, oldest first (no secrets)."""
        with db.read(self._engine) as conn:
            rows = conn.execute(
                select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
            ).all()
        return [_to_record(row) for row in rows]

    def revoke_key(self, key_id: str, by: str) -> ApiKeyRecord:
        """Revoke a key for good and record ``key.revoke`` in the audit log.

        Servers that cache authentication decisions refuse the key at the latest
        ``security.auth.cache_ttl_s`` later.

        Args:
            key_id: The key's public id.
            by: Who revokes it.

        Returns:
            The revoked key; unchanged (and nothing recorded) when it was already revoked.

        Raises:
            NotFound: No such key.
            InvalidInput: ``by`` is blank.
        """
        _check_actor(by)
        now = self._now()
        with db.write(self._engine) as conn:
            row = _key_row(conn, key_id, lock=True)
            if row is None:
                raise NotFound(f"no API key {key_id!r}; `modelport keys list` shows the keys")
            if row.revoked_at is not None:
                return _to_record(row)
            conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id)
                .values(revoked_at=now, revoked_by=by)
            )
            entry = self._append(conn, by, "key.revoke", key_id, "ok", None, {"name": row.name})
            row = _key_row(conn, key_id)
        self._anchor(entry)
        if row is None:  # pragma: no cover - updated in the same transaction
            raise NotFound(f"API key {key_id} vanished while it was revoked")
        return _to_record(row)

    def resolve_api_key(self, token: str) -> Identity:
        """Authenticate an API key and return who it is.

        Args:
            token: The full key, ``mpk_<key_id>_<secret>``.

        Returns:
            The identity: subject ``key:<key_id>``, the key's grants, method ``API_KEY`` and
            the expiry as Unix time.

        Raises:
            Unauthenticated: The key is malformed, unknown, has the wrong secret (these two with
                the same message), has expired or was revoked.
        """
        key = parse_key(token)
        with db.read(self._engine) as conn:
            row = _key_row(conn, key.key_id)
        stored = row.secret_hash if row is not None else _DUMMY_HASH
        if not verify_secret(key.secret, stored) or row is None:
            raise Unauthenticated(_INVALID_KEY)
        if row.revoked_at is not None:
            raise Unauthenticated(f"API key {key.key_id} was revoked")
        if row.expires_at is not None and row.expires_at <= self._now():
            raise Unauthenticated(f"API key {key.key_id} expired at {row.expires_at.isoformat()}")
        return Identity(
            subject=f"key:{key.key_id}",
            grants=_grants(row.grants),
            method=AuthMethod.API_KEY,
            expires_at=row.expires_at.timestamp() if row.expires_at is not None else None,
        )

    # -- audit log --------------------------------------------------------------------------

    def append_audit(
        self,
        actor: str,
        action: str,
        target: str | None,
        outcome: str,
        request_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry to the audit log's hash chain.

        Safe when several processes append at once: appends are serialised on the head record.
        Once the entry is committed, a signed checkpoint of it is written when the checkpoint
        policy says so (every control action; denials now and then).

        Args:
            actor: Who acted.
            action: What was done (``key.create``, ``deny.infer``...).
            target: What it was done to, or ``None``.
            outcome: ``ok``, ``denied`` or ``failed``.
            request_id: The request it belongs to.
            details: More about it, as JSON data.

        Returns:
            The sealed entry.

        Raises:
            InvalidInput: A field is blank or too long, the outcome is unknown, or the details
                are not JSON data.
            IntegrityError: The head record is missing (run ``modelport audit verify``).
            ConfigError: The entry was recorded but its checkpoint could not be written.
        """
        with db.write(self._engine) as conn:
            entry = self._append(conn, actor, action, target, outcome, request_id, details)
        self._anchor(entry)
        return entry

    def _anchor(self, entry: AuditEntry) -> None:
        """Checkpoint a committed entry when the policy says so; else remember it for later."""
        checkpoints = self._checkpoints
        if checkpoints is None:
            return
        now = self._clock.monotonic()
        with self._anchor_lock:
            if entry.seq <= self._anchored_seq:
                return  # a later entry is checkpointed already, and vouches for this one
            due = checkpoint_due(
                entry.seq,
                entry.outcome,
                self._anchored_seq,
                now - self._anchored_at,
                checkpoints.every,
                checkpoints.every_s,
            )
            if not due:
                if self._unanchored is None or entry.seq > self._unanchored.seq:
                    self._unanchored = entry
                if self._timer is None:
                    wait = max(checkpoints.every_s - (now - self._anchored_at), 0.0)
                    self._timer = threading.Timer(wait, self._on_timer)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._write_checkpoint(checkpoints, entry.seq, entry.hash, now)

    def _on_timer(self) -> None:
        """Checkpoint the denials still waiting (runs on the timer's thread)."""
        with self._anchor_lock:
            self._timer = None
        try:
            self._anchor_pending()
        except Exception as exc:  # a timer thread must not die with a traceback
            log.warning("cannot write an audit checkpoint: %s", exc)

    def _anchor_pending(self) -> None:
        """Checkpoint the newest entry this process appended and has not checkpointed."""
        checkpoints = self._checkpoints
        if checkpoints is None:
            return
        with self._anchor_lock:
            pending = self._unanchored
            if pending is not None and pending.seq > self._anchored_seq:
                now = self._clock.monotonic()
                self._write_checkpoint(checkpoints, pending.seq, pending.hash, now)

    def _write_checkpoint(
        self, checkpoints: CheckpointFile, seq: int, hash: str, now: float
    ) -> datetime:
        """Append a checkpoint (the anchor lock is held); return the time it was signed."""
        at = self._now()
        checkpoints.append(seq, hash, at)
        self._anchored_seq, self._anchored_at = seq, now
        if self._unanchored is not None and self._unanchored.seq <= seq:
            self._unanchored = None
        return at

    def _append(
        self,
        conn: Connection,
        actor: str,
        action: str,
        target: str | None,
        outcome: str,
        request_id: str | None,
        details: Mapping[str, Any] | None,
    ) -> AuditEntry:
        head_row = conn.execute(
            select(audit_head.c.last_seq, audit_head.c.last_hash)
            .where(audit_head.c.id == HEAD_ID)
            .with_for_update()
        ).one_or_none()
        if head_row is None:
            raise IntegrityError(
                "the audit log's head record is missing, so the log cannot be extended; "
                "`modelport audit verify` checks what else was changed"
            )
        # The time is read under the lock, so entries' times follow their order.
        entry = seal(
            AuditHead(head_row.last_seq, head_row.last_hash),
            self._now(),
            actor,
            action,
            target,
            outcome,
            request_id,
            details,
        )
        conn.execute(
            insert(audit_log).values(
                seq=entry.seq,
                at=entry.at,
                actor=entry.actor,
                action=entry.action,
                target=entry.target,
                outcome=entry.outcome,
                request_id=entry.request_id,
                details=entry.details,
                prev_hash=entry.prev_hash,
                hash=entry.hash,
            )
        )
        conn.execute(
            update(audit_head)
            .where(audit_head.c.id == HEAD_ID)
            .values(last_seq=entry.seq, last_hash=entry.hash)
        )
        return entry

    def list_audit(
        self,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int | None = 100,
    ) -> list[AuditEntry]:
        """Return the newest entries that match, oldest first.

        Args:
            since: Only entries recorded at or after this time.
            actor: Only this actor's entries.
            action: Only this action; a trailing ``*`` matches a prefix (``deny.*``).
            limit: At most this many (the newest); ``None`` for all.

        Raises:
            InvalidInput: ``limit`` is below 1 or ``since`` is naive.
        """
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit {limit}: expected 1 or more")
        query = select(*_AUDIT_COLUMNS)
        if since is not None:
            if since.tzinfo is None:
                raise InvalidInput("since must be timezone-aware")
            query = query.where(audit_log.c.at >= since)
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        if action is not None:
            if action.endswith("*"):
                query = query.where(audit_log.c.action.startswith(action[:-1], autoescape=True))
            else:
                query = query.where(audit_log.c.action == action)
        query = query.order_by(audit_log.c.seq.desc())
        if limit is not None:
            query = query.limit(limit)
        with db.read(self._engine) as conn:
            rows = conn.execute(query).all()
        return [_to_entry(row) for row in reversed(rows)]

    def audit_head(self) -> AuditHead | None:
        """Return the head record (the last entry's number and hash); ``None`` if it is gone."""
        with db.read(self._engine) as conn:
            return _head(conn)

    def verify_audit(
        self, trusted: Iterable[Ed25519PublicKey] = (), against: Path | None = None
    ) -> AuditReport:
        """Check the whole audit log's hash chain against the head record and the checkpoints.

        The checkpoint file is read first and the entries and head then in one snapshot, so
        appends running meanwhile do not show up as problems (a checkpoint is written only after
        its entry commits). An intact log is checked in one streaming pass; only when that
        finds something wrong are all entries held at once to say exactly what.

        Args:
            trusted: Public keys whose checkpoint signatures are accepted besides this
                installation's own signing key (one kept elsewhere, to check with).
            against: Check against this checkpoint file instead of the store's own (an
                export kept where the data directory's owner cannot rewrite it). A missing
                file is reported as ``checkpoints-missing``.

        Returns:
            The number of entries, the checkpoints, and every problem found (see
            :func:`modelport.security.audit.verify_chain`).

        Raises:
            ConfigError: The checkpoint file or the signing key cannot be read, or ``against``
                is given to a store without checkpoints.
        """
        if against is not None and self._checkpoints is None:
            raise ConfigError("this audit log has no checkpoint file configured to check against")
        read = self._checkpoints.read(trusted, against) if self._checkpoints is not None else None
        signed = read.checkpoints if read is not None else ()
        found: list[ChainProblem] = list(read.problems) if read is not None else []
        with db.read(self._engine) as conn:
            head = _head(conn)
            if (
                head is not None
                and chain_is_intact((_to_entry(r) for r in _scan(conn)), head, signed)
                and not found
                and (read is None or head.seq == 0 or read.lines > 0)
            ):
                return _report(head.seq, head, (), read, signed)
            # Something is wrong: read everything (same snapshot) to say what.
            entries = [_to_entry(row) for row in _scan(conn)]
        problems = verify_chain(entries, head, signed) + found
        if head is None:
            unseen = "after the last checkpoint " if signed else ""
            problems.append(
                ChainProblem(
                    0,
                    ProblemKind.HEAD_MISSING,
                    f"the head record is missing, so entries cut off the end {unseen}cannot be "
                    "detected",
                ),
            )
        if read is not None and read.lines == 0 and (entries or (head is not None and head.seq)):
            state = "is empty" if read.found else "is missing"
            problems.append(
                ChainProblem(
                    0,
                    ProblemKind.CHECKPOINTS_MISSING,
                    f"the database holds entries but the checkpoint file {read.path} {state}: "
                    "nothing outside the database vouches for them",
                )
            )
        problems.sort(key=lambda p: (p.seq, list(ProblemKind).index(p.kind)))
        return _report(len(entries), head, tuple(problems), read, signed)

    def checkpoint_audit(self) -> Checkpoint | None:
        """Sign a checkpoint of the log's last entry now, after checking the whole log.

        For a log written before checkpoints existed (an upgrade), and for schedulers that want
        denials anchored sooner than the store's own policy does.

        Returns:
            The checkpoint written; ``None`` when the log is empty (nothing to vouch for).

        Raises:
            ConfigError: The store has no checkpoint file, or it cannot be written.
            IntegrityError: The log is not intact (nothing is signed then: signing a tampered
                log would vouch for the tampering).
        """
        checkpoints = self._checkpoints
        if checkpoints is None:
            raise ConfigError("this audit log has no checkpoint file configured")
        report = self.verify_audit()
        tolerated = {ProblemKind.CHECKPOINTS_MISSING}
        wrong = [p for p in report.problems if p.kind not in tolerated]
        if wrong:
            count = f"{len(wrong)} problem{'s' if len(wrong) != 1 else ''}"
            raise IntegrityError(
                f"the audit log is not intact ({count}; `modelport audit verify` lists them), "
                "so no checkpoint was signed"
            )
        if report.head is None or report.head.seq == 0:
            return None
        head = report.head
        with self._anchor_lock:
            at = self._write_checkpoint(checkpoints, head.seq, head.hash, self._clock.monotonic())
        return Checkpoint(head.seq, head.hash, at)

    def iter_audit(self) -> Iterator[AuditEntry]:
        """Yield every entry, oldest first, from one snapshot (read in batches)."""
        with db.read(self._engine) as conn:
            for row in _scan(conn):
                yield _to_entry(row)

    def export_audit(self, out: IO[bytes]) -> int:
        """Write every entry to ``out`` as JSON lines, oldest first.

        Each line holds the entry's fields with its ``prev_hash`` and ``hash``, so the export
        can be checked on its own (:func:`modelport.security.audit.entry_from_dict` and
        :func:`~modelport.security.audit.verify_chain`).

        Returns:
            How many entries were written.
        """
        count = 0
        for entry in self.iter_audit():
            out.write(to_json_line(entry))
            count += 1
        return count

    def export_checkpoints(self, out: IO[bytes]) -> int:
        """Copy the audit log's signed checkpoints to ``out`` (JSON lines, as stored).

        Kept with an export of the entries, and checked with this installation's public key
        (``keys/signing.pub.pem``), they show the entries were not rewritten before the export.

        Returns:
            How many checkpoint lines were written.

        Raises:
            ConfigError: The store has no checkpoint file, or it cannot be read.
        """
        if self._checkpoints is None:
            raise ConfigError("this audit log has no checkpoint file configured")
        return self._checkpoints.export(out)


def _default_checkpoints(url: URL) -> CheckpointFile | None:
    """Return the checkpoint file beside a SQLite database file; ``None`` for other databases."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if url.query.get("uri"):  # a file: URI, not a path
        return None
    return CheckpointFile.in_home(Path(database).expanduser().absolute().parent)


def _report(
    entries: int,
    head: AuditHead | None,
    problems: tuple[ChainProblem, ...],
    read: CheckpointRead | None,
    signed: Sequence[Checkpoint],
) -> AuditReport:
    latest = max(signed, key=lambda c: c.seq) if signed else None
    count = len(signed) if read is not None else None
    return AuditReport(entries, head, problems, count, latest)


def _check_actor(actor: str) -> None:
    if not actor.strip():
        raise InvalidInput("the acting user must not be blank")


def _key_row(conn: Connection, key_id: str, lock: bool = False) -> Row[Any] | None:
    query = select(api_keys).where(api_keys.c.key_id == key_id)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).one_or_none()


def _grants(texts: Sequence[str]) -> tuple[Grant, ...]:
    return tuple(parse_grant(text) for text in texts)


def _to_record(row: Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id,
        name=row.name,
        grants=_grants(row.grants),
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


def _head(conn: Connection) -> AuditHead | None:
    row = conn.execute(
        select(audit_head.c.last_seq, audit_head.c.last_hash).where(audit_head.c.id == HEAD_ID)
    ).one_or_none()
    return AuditHead(row.last_seq, row.last_hash) if row is not None else None


def _scan(conn: Connection) -> Iterator[Row[Any]]:
    """Yield every audit row by ``seq`` in batches (keyset pagination within one snapshot)."""
    last: int | None = None
    while True:
        query = select(*_AUDIT_COLUMNS).order_by(audit_log.c.seq).limit(_EXPORT_BATCH)
        if last is not None:
            query = query.where(audit_log.c.seq > last)
        rows = conn.execute(query).all()
        yield from rows
        if len(rows) < _EXPORT_BATCH:
            return
        last = rows[-1].seq


def _details(text: str) -> dict[str, Any]:
    """Parse stored details; text a tamperer made unreadable is kept so the hash check fails."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"unreadable": text}
    return data if isinstance(data, dict) else {"unreadable": text}


def _to_entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        request_id=row.request_id,
        details=_details(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
