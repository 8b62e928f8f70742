"""The metadata store: models, their numbered versions, aliases and alias history.

One implementation on SQLAlchemy Core serves SQLite (embedded default) and PostgreSQL (at scale);
the dialect differences live in :mod:`modelport.db`.

Rules the store enforces:

* Versions of a model are numbered 1, 2, 3... in registration order, with no gaps, even when
  several processes register the same name at once (the model row is locked, or on SQLite the
  database, for the length of the registration).
* An alias points at one active version. Pointing it at the version it already points at changes
  nothing and records nothing (re-applying the same desired state is common in GitOps); every
  real move and every removal is recorded in the alias history.
* A version behind an alias cannot be archived; archiving an archived version is a no-op.
  Archived versions stay readable by number, but an unqualified reference resolves to the newest
  *active* version.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from modelport import db
from modelport.core.clock import Clock
from modelport.core.errors import Conflict, InvalidInput, NotFound
from modelport.core.refs import ModelRef, validate_alias
from modelport.registry import _queries as q
from modelport.registry._schema import (
    MIGRATIONS,
    aliases,
    model_versions,
    models,
    reference_profiles,
)
from modelport.registry._validate import (
    check_new_version,
    check_text,
    format_versions,
    quoted,
    utc_time,
)
from modelport.registry.records import (
    AliasEvent,
    ModelSummary,
    ModelVersion,
    NewVersion,
    ReferenceProfile,
)

__all__ = ["MetadataStore"]

_JURISDICTION = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")


def _check_security(new: NewVersion) -> None:
    """Validate the jurisdiction and manifest signer of a registration request.

    Raises:
        InvalidInput: The jurisdiction is not 1-63 lowercase letters, digits, '.', '_' or '-'
            (starting and ending with a letter or digit), or the signer is blank.
    """
    if not isinstance(new.jurisdiction, str) or not _JURISDICTION.fullmatch(new.jurisdiction):
        raise InvalidInput(
            f"invalid jurisdiction {new.jurisdiction!r}: expected 1-63 lowercase letters, digits, "
            "'.', '_' or '-', starting and ending with a letter or digit (e.g. 'eu', 'us-east')"
        )
    if new.signer is not None:
        check_text(new.signer.identity, "signer.identity")
        check_text(new.signer.key_id, "signer.key_id")


class MetadataStore(db.MigratedDatabase):
    """Registry metadata in SQLite or PostgreSQL.

    Opening the store creates a SQLite file's folder when needed and migrates the schema to the
    newest revision (safe when several processes open a new database at once).

    Args:
        url: SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DB``.
        clock: Source of every timestamp the store records; it must return aware datetimes.

    Raises:
        ConfigError: The URL is unsupported or the database cannot be reached.
        DependencyMissing: The PostgreSQL driver is not installed.
    """

    def __init__(self, url: str, clock: Clock) -> None:
        super().__init__(url, MIGRATIONS)
        self._clock = clock

    def _now(self) -> datetime:
        return utc_time(self._clock.now())

    # -- versions ---------------------------------------------------------------------------

    def create_version(
        self, new: NewVersion, before_commit: Callable[[int], None] | None = None
    ) -> ModelVersion:
        """Register a new version of ``new.name``, creating the model on its first version.

        Args:
            new: The artifact, framework, signature, lineage, tags and metrics of the version.
            before_commit: Called with the assigned version number inside the registration's
                transaction, before it commits (the artifact layer places the version's sealed
                artifacts and signed manifest, which bind the number). If it raises, nothing is
                recorded. It runs while the model (on SQLite: the database) is locked for
                writing, so it must be quick.

        Returns:
            The stored version with its assigned number (previous highest + 1) and time.

        Raises:
            InvalidInput: A field is malformed, or ``lineage.parent_version`` is not an existing
                version of the same model.
        """
        check_new_version(new)
        _check_security(new)
        now = self._now()
        with db.write(self._engine) as conn:
            # The dialects' upserts are imported here, on the write path, not by every reader.
            from sqlalchemy.dialects import postgresql, sqlite

            pg = conn.dialect.name == "postgresql"
            dialect_insert = postgresql.insert if pg else sqlite.insert
            conn.execute(
                dialect_insert(models)
                .values(name=new.name, created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            model_id = q.find_model(conn, new.name, lock=True)
            latest = (
                conn.execute(
                    select(func.max(model_versions.c.version)).where(
                        model_versions.c.model_id == model_id
                    )
                ).scalar_one_or_none()
                or 0
            )
            parent = new.lineage.parent_version
            if parent is not None and parent > latest:
                raise InvalidInput(
                    f"lineage.parent_version {parent} is not a version of {new.name!r}; "
                    f"versions: {format_versions(range(1, latest + 1))}"
                )
            version = latest + 1
            conn.execute(
                insert(model_versions).values(
                    model_id=model_id,
                    version=version,
                    artifact_digest=new.artifact_digest,
                    artifact_size=new.artifact_size,
                    artifact_filename=new.artifact_filename,
                    framework=new.framework,
                    entrypoint=new.entrypoint,
                    signature=new.signature.to_dict() if new.signature is not None else None,
                    tags=dict(new.tags),
                    metrics={k: float(v) for k, v in new.metrics.items()},
                    description=new.description,
                    registered_by=new.lineage.registered_by,
                    training_data_digest=new.lineage.training_data_digest,
                    code_version=new.lineage.code_version,
                    parent_version=parent,
                    created_at=now,
                    status="active",
                    **q.serving_values(new.serving, new.compile_report),
                    **q.security_values(new.jurisdiction, new.signer),
                )
            )
            if before_commit is not None:
                before_commit(version)
            q.touch(conn, model_id, now)
            row = q.version_row(conn, new.name, model_id, version)
            return q.to_version(new.name, row, ())

    def get_version(self, name: str, version: int) -> ModelVersion:
        """Return version ``version`` of model ``name`` (archived or not).

        Raises:
            NotFound: The model or the version does not exist.
        """
        with db.read(self._engine) as conn:
            model_id = q.find_model(conn, name)
            return q.load_version(conn, name, model_id, version)

    def resolve(self, ref: ModelRef) -> ModelVersion:
        """Return the version a reference means.

        ``NAME`` is the newest active version, ``NAME@3`` version 3 (even when archived, so a
        pinned deployment keeps working), ``NAME@champion`` the version the alias points at.

        Raises:
            NotFound: The model, version or alias does not exist, or every version is archived.
        """
        with db.read(self._engine) as conn:
            model_id = q.find_model(conn, ref.name)
            if ref.version is not None:
                return q.load_version(conn, ref.name, model_id, ref.version)
            if ref.alias is not None:
                version = q.alias_target(conn, ref.name, model_id, ref.alias)
                return q.load_version(conn, ref.name, model_id, version)
            active = conn.execute(
                select(func.max(model_versions.c.version)).where(
                    model_versions.c.model_id == model_id, model_versions.c.status == "active"
                )
            ).scalar_one_or_none()
            if active is None:
                raise NotFound(
                    f"model {ref.name!r} has no active version; archived versions: "
                    f"{format_versions(q.versions(conn, model_id))}"
                )
            return q.load_version(conn, ref.name, model_id, active)

    def list_models(self) -> list[ModelSummary]:
        """Return every model with its latest version, counts and aliases, sorted by name."""
        mv = model_versions
        with db.read(self._engine) as conn:
            rows = conn.execute(
                select(
                    models.c.id,
                    models.c.name,
                    models.c.created_at,
                    models.c.updated_at,
                    func.max(mv.c.version).label("latest"),
                    func.count().label("total"),
                    func.count().filter(mv.c.status == "active").label("active"),
                )
                .join(mv, mv.c.model_id == models.c.id)
                .group_by(models.c.id, models.c.name, models.c.created_at, models.c.updated_at)
                .order_by(models.c.name)
            ).all()
            by_model: dict[int, dict[str, int]] = defaultdict(dict)
            for model_id, alias, version in conn.execute(
                select(aliases.c.model_id, aliases.c.alias, aliases.c.version).order_by(
                    aliases.c.alias
                )
            ):
                by_model[model_id][alias] = version
        return [
            ModelSummary(
                name=row.name,
                latest_version=row.latest,
                version_count=row.total,
                active_count=row.active,
                aliases=dict(by_model.get(row.id, {})),
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
            for row in rows
        ]

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Return every version of model ``name``, oldest first.

        Raises:
            NotFound: The model does not exist.
        """
        with db.read(self._engine) as conn:
            model_id = q.find_model(conn, name)
            rows = conn.execute(
                select(model_versions)
                .where(model_versions.c.model_id == model_id)
                .order_by(model_versions.c.version)
            ).all()
            by_version = q.aliases_by_version(conn, model_id)
        return [q.to_version(name, row, by_version.get(row.version, ())) for row in rows]

    def archive(self, name: str, version: int, actor: str) -> ModelVersion:
        """Retire a version: it keeps its record but no longer resolves as the latest.

        Args:
            name: The model.
            version: The version to archive.
            actor: Who archives it (recorded on the version).

        Returns:
            The archived version; unchanged when it was already archived.

        Raises:
            NotFound: The model or version does not exist.
            Conflict: An alias points at the version.
            InvalidInput: ``actor`` is blank.
        """
        check_text(actor, "actor")
        now = self._now()
        with db.write(self._engine) as conn:
            model_id = q.find_model(conn, name, lock=True)
            row = q.version_row(conn, name, model_id, version)
            if row.status == "archived":
                return q.to_version(name, row, ())
            behind = q.aliases_by_version(conn, model_id).get(version, ())
            if behind:
                noun = "alias" if len(behind) == 1 else "aliases"
                raise Conflict(
                    f"version {version} of {name!r} is behind {noun} {quoted(behind)}; "
                    f"move the {noun} first"
                )
            conn.execute(
                update(model_versions)
                .where(model_versions.c.model_id == model_id, model_versions.c.version == version)
                .values(status="archived", archived_at=now, archived_by=actor)
            )
            q.touch(conn, model_id, now)
            return q.to_version(name, q.version_row(conn, name, model_id, version), ())

    # -- aliases ----------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, actor: str) -> AliasEvent:
        """Point ``alias`` at ``version``, creating the alias or moving it.

        Args:
            name: The model.
            alias: The alias, e.g. ``champion``.
            version: An active version of the model.
            actor: Who moves the alias (recorded in the history).

        Returns:
            The recorded move. When the alias already points at ``version`` nothing is recorded
            and the move that put it there is returned.

        Raises:
            InvalidInput: The alias or actor is malformed.
            NotFound: The model or version does not exist.
            Conflict: The version is archived.
        """
        validate_alias(alias)
        check_text(actor, "actor")
        now = self._now()
        with db.write(self._engine) as conn:
            model_id = q.find_model(conn, name, lock=True)
            row = q.version_row(conn, name, model_id, version)
            if row.status == "archived":
                raise Conflict(
                    f"version {version} of {name!r} is archived; archived versions cannot take an "
                    "alias"
                )
            current = conn.execute(
                select(aliases.c.version).where(
                    aliases.c.model_id == model_id, aliases.c.alias == alias
                )
            ).scalar_one_or_none()
            if current == version:
                last = q.events(conn, name, model_id, alias)
                if last:
                    return last[-1]
            if current is None:
                conn.execute(
                    insert(aliases).values(model_id=model_id, alias=alias, version=version)
                )
            else:
                conn.execute(
                    update(aliases)
                    .where(aliases.c.model_id == model_id, aliases.c.alias == alias)
                    .values(version=version)
                )
            return q.record(conn, name, model_id, alias, version, current, actor, now)

    def remove_alias(self, name: str, alias: str, actor: str) -> AliasEvent:
        """Delete ``alias``; the history keeps its past moves.

        Returns:
            The recorded removal (``version`` is ``None``).

        Raises:
            InvalidInput: The alias or actor is malformed.
            NotFound: The model or alias does not exist.
        """
        validate_alias(alias)
        check_text(actor, "actor")
        now = self._now()
        with db.write(self._engine) as conn:
            model_id = q.find_model(conn, name, lock=True)
            current = q.alias_target(conn, name, model_id, alias)
            conn.execute(
                aliases.delete().where(aliases.c.model_id == model_id, aliases.c.alias == alias)
            )
            return q.record(conn, name, model_id, alias, None, current, actor, now)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Return the moves of every alias of ``name``, or only of ``alias``, oldest first.

        An alias that was never set has an empty history (not an error).

        Raises:
            InvalidInput: ``alias`` is malformed.
            NotFound: The model does not exist.
        """
        if alias is not None:
            validate_alias(alias)
        with db.read(self._engine) as conn:
            return q.events(conn, name, q.find_model(conn, name), alias)

    def set_profile(
        self,
        name: str,
        version: int,
        profile: Mapping[str, Any],
        rows: int,
        source: str,
        actor: str,
    ) -> ReferenceProfile:
        """Store (or replace) the reference data profile of ``name`` version ``version``.

        Raises:
            InvalidInput: ``rows`` is below 1, or the source or actor is malformed.
            NotFound: The model or the version does not exist.
        """
        if rows < 1:
            raise InvalidInput(f"a reference profile needs at least 1 row, got {rows}")
        check_text(source, "source")
        check_text(actor, "actor")
        now = self._now()
        with db.write(self._engine) as conn:
            model_id = q.find_model(conn, name)
            q.version_row(conn, name, model_id, version)
            key = (reference_profiles.c.model_id == model_id) & (
                reference_profiles.c.version == version
            )
            conn.execute(reference_profiles.delete().where(key))
            conn.execute(
                insert(reference_profiles).values(
                    model_id=model_id,
                    version=version,
                    profile=dict(profile),
                    rows=rows,
                    source=source,
                    created_at=now,
                    created_by=actor,
                )
            )
        return ReferenceProfile(name, version, dict(profile), rows, source, now, actor)

    def get_profile(self, name: str, version: int) -> ReferenceProfile | None:
        """The reference data profile of ``name`` version ``version``; ``None`` without one.

        Raises:
            NotFound: The model or the version does not exist.
        """
        with db.read(self._engine) as conn:
            model_id = q.find_model(conn, name)
            q.version_row(conn, name, model_id, version)
            row = conn.execute(
                select(reference_profiles).where(
                    (reference_profiles.c.model_id == model_id)
                    & (reference_profiles.c.version == version)
                )
            ).one_or_none()
        if row is None:
            return None
        return ReferenceProfile(
            name, version, dict(row.profile), row.rows, row.source, row.created_at, row.created_by
        )
