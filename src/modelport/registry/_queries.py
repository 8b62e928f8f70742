"""Queries the store's methods share; each runs inside the caller's transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, insert, select, update

from modelport.core.errors import NotFound
from modelport.core.refs import validate_model_name
from modelport.registry._schema import alias_events, aliases, model_versions, models
from modelport.registry._validate import format_versions, quoted
from modelport.registry.records import (
    AliasEvent,
    ArtifactSigner,
    CompileReport,
    Lineage,
    ModelVersion,
    ServingArtifact,
)

if TYPE_CHECKING:
    from modelport.core.signature import Signature

__all__ = [
    "alias_target",
    "aliases_by_version",
    "events",
    "find_model",
    "load_version",
    "record",
    "security_values",
    "serving_values",
    "to_version",
    "touch",
    "version_row",
    "versions",
]


def find_model(conn: Connection, name: str, *, lock: bool = False) -> int:
    """Return the id of model ``name``; ``lock`` holds its row until the transaction ends.

    Raises:
        InvalidInput: The name is malformed.
        NotFound: No such model.
    """
    validate_model_name(name)
    query = select(models.c.id).where(models.c.name == name)
    if lock:
        # Serialises writers of one model on PostgreSQL; SQLite already holds the write lock.
        query = query.with_for_update()
    found = conn.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFound(f"unknown model {name!r}")
    return int(found)


def touch(conn: Connection, model_id: int, now: datetime) -> None:
    """Set the model's ``updated_at``."""
    conn.execute(update(models).where(models.c.id == model_id).values(updated_at=now))


def versions(conn: Connection, model_id: int) -> list[int]:
    """Return the model's version numbers in order."""
    return list(
        conn.execute(
            select(model_versions.c.version)
            .where(model_versions.c.model_id == model_id)
            .order_by(model_versions.c.version)
        ).scalars()
    )


def version_row(conn: Connection, name: str, model_id: int, version: int) -> Row[Any]:
    """Return the row of one version.

    Raises:
        NotFound: No such version (the message lists the versions there are).
    """
    row = conn.execute(
        select(model_versions).where(
            model_versions.c.model_id == model_id, model_versions.c.version == version
        )
    ).one_or_none()
    if row is None:
        raise NotFound(
            f"model {name!r} has no version {version}; "
            f"versions: {format_versions(versions(conn, model_id))}"
        )
    return row


def load_version(conn: Connection, name: str, model_id: int, version: int) -> ModelVersion:
    """Return one version as a record, with its aliases."""
    row = version_row(conn, name, model_id, version)
    return to_version(name, row, aliases_by_version(conn, model_id).get(version, ()))


def aliases_by_version(conn: Connection, model_id: int) -> dict[int, tuple[str, ...]]:
    """Return the model's aliases grouped by the version they point at, each sorted."""
    found: dict[int, list[str]] = defaultdict(list)
    for alias, version in conn.execute(
        select(aliases.c.alias, aliases.c.version)
        .where(aliases.c.model_id == model_id)
        .order_by(aliases.c.alias)
    ):
        found[version].append(alias)
    return {version: tuple(names) for version, names in found.items()}


def alias_target(conn: Connection, name: str, model_id: int, alias: str) -> int:
    """Return the version ``alias`` points at.

    Raises:
        NotFound: No such alias (the message lists the aliases there are).
    """
    targets = {
        a: v
        for a, v in conn.execute(
            select(aliases.c.alias, aliases.c.version).where(aliases.c.model_id == model_id)
        )
    }
    if alias not in targets:
        raise NotFound(f"model {name!r} has no alias {alias!r}; aliases: {quoted(sorted(targets))}")
    return int(targets[alias])


def events(conn: Connection, name: str, model_id: int, alias: str | None) -> list[AliasEvent]:
    """Return alias moves of the model (or of one alias), oldest first."""
    query = select(alias_events).where(alias_events.c.model_id == model_id)
    if alias is not None:
        query = query.where(alias_events.c.alias == alias)
    return [
        AliasEvent(
            name=name,
            alias=row.alias,
            version=row.version,
            previous_version=row.previous_version,
            actor=row.actor,
            at=row.at,
        )
        for row in conn.execute(query.order_by(alias_events.c.id))
    ]


def record(
    conn: Connection,
    name: str,
    model_id: int,
    alias: str,
    version: int | None,
    previous: int | None,
    actor: str,
    now: datetime,
) -> AliasEvent:
    """Record one alias move and return it."""
    conn.execute(
        insert(alias_events).values(
            model_id=model_id,
            alias=alias,
            version=version,
            previous_version=previous,
            actor=actor,
            at=now,
        )
    )
    touch(conn, model_id, now)
    return AliasEvent(
        name=name, alias=alias, version=version, previous_version=previous, actor=actor, at=now
    )


def serving_values(serving: ServingArtifact | None, report: CompileReport | None) -> dict[str, Any]:
    """Return the ``model_versions`` column values of a serving artifact and compile report."""
    return {
        "serving_framework": serving.framework if serving is not None else None,
        "serving_artifact_digest": serving.digest if serving is not None else None,
        "serving_artifact_size": serving.size if serving is not None else None,
        "compile_report": report.to_dict() if report is not None else None,
    }


def security_values(jurisdiction: str, signer: ArtifactSigner | None) -> dict[str, Any]:
    """Return the ``model_versions`` column values of a jurisdiction and manifest signer."""
    return {
        "jurisdiction": jurisdiction,
        "signer": signer.identity if signer is not None else None,
        "signer_key_id": signer.key_id if signer is not None else None,
    }


def _signer(row: Row[Any]) -> ArtifactSigner | None:
    # Written together; NULL means registered before manifests were signed.
    if row.signer is None or row.signer_key_id is None:
        return None
    return ArtifactSigner(identity=row.signer, key_id=row.signer_key_id)


def _signature(stored: Mapping[str, Any] | None) -> Signature | None:
    """The stored signature, if any.

    Signatures need numpy, imported here only when there is one, so that listing models starts
    quickly.
    """
    if stored is None:
        return None
    from modelport.core.signature import Signature

    return Signature.from_dict(stored)


def _serving(row: Row[Any]) -> ServingArtifact | None:
    # The three columns are written together; NULL means "serve the registered artifact".
    if row.serving_artifact_digest is None or row.serving_framework is None:
        return None
    return ServingArtifact(
        framework=row.serving_framework,
        digest=row.serving_artifact_digest,
        size=int(row.serving_artifact_size or 0),
    )


def to_version(name: str, row: Row[Any], version_aliases: tuple[str, ...]) -> ModelVersion:
    """Build a :class:`ModelVersion` from a ``model_versions`` row."""
    signature: Mapping[str, Any] | None = row.signature
    report: Mapping[str, Any] | None = row.compile_report
    return ModelVersion(
        name=name,
        version=row.version,
        artifact_digest=row.artifact_digest,
        artifact_size=row.artifact_size,
        artifact_filename=row.artifact_filename,
        framework=row.framework,
        lineage=Lineage(
            registered_by=row.registered_by,
            training_data_digest=row.training_data_digest,
            code_version=row.code_version,
            parent_version=row.parent_version,
        ),
        created_at=row.created_at,
        status=row.status,
        entrypoint=row.entrypoint,
        signature=_signature(signature),
        tags=dict(row.tags),
        metrics={k: float(v) for k, v in row.metrics.items()},
        description=row.description,
        aliases=version_aliases,
        archived_at=row.archived_at,
        archived_by=row.archived_by,
        serving=_serving(row),
        compile_report=CompileReport.from_dict(report) if report is not None else None,
        jurisdiction=row.jurisdiction,
        signer=_signer(row),
    )
