"""Registry records: model versions, their lineage, and alias moves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from modelport.core.signature import Signature

__all__ = ["AliasEvent", "Lineage", "ModelSummary", "ModelVersion", "NewVersion", "VersionStatus"]

VersionStatus = Literal["active", "archived"]


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a version came from."""

    registered_by: str
    training_data_digest: str | None = None
    code_version: str | None = None
    parent_version: int | None = None


@dataclass(frozen=True, slots=True)
class NewVersion:
    """What a caller supplies to register a version; the store assigns the number and time."""

    name: str
    artifact_digest: str
    artifact_size: int
    artifact_filename: str
    framework: str
    lineage: Lineage
    entrypoint: str | None = None
    signature: Signature | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version of a model.

    ``aliases`` are the aliases pointing at this version, sorted; ``archived_at`` and
    ``archived_by`` say when and by whom it was archived (``None`` while it is active).
    """

    name: str
    version: int
    artifact_digest: str
    artifact_size: int
    artifact_filename: str
    framework: str
    lineage: Lineage
    created_at: datetime
    status: VersionStatus
    entrypoint: str | None = None
    signature: Signature | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    description: str = ""
    aliases: tuple[str, ...] = ()
    archived_at: datetime | None = None
    archived_by: str | None = None


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias: from ``previous_version`` to ``version`` by ``actor`` at ``at``."""

    name: str
    alias: str
    version: int | None
    previous_version: int | None
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """A model name with its latest version and current aliases."""

    name: str
    latest_version: int
    version_count: int
    active_count: int
    aliases: dict[str, int]
    created_at: datetime
    updated_at: datetime
