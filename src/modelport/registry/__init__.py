"""The model registry: numbered model versions, aliases and lineage, and their artifacts.

:class:`MetadataStore` keeps the metadata in SQLite or PostgreSQL; :class:`ArtifactStore` keeps
artifact files content-addressed by SHA-256 and verifies them before they are loaded.
"""

from __future__ import annotations

from modelport.registry.artifacts import ArtifactStore, StoredArtifact, digest_file, parse_digest
from modelport.registry.records import (
    AliasEvent,
    CompileReport,
    Lineage,
    ModelSummary,
    ModelVersion,
    NewVersion,
    ServingArtifact,
    VersionStatus,
)
from modelport.registry.store import MetadataStore

__all__ = [
    "AliasEvent",
    "ArtifactStore",
    "CompileReport",
    "Lineage",
    "MetadataStore",
    "ModelSummary",
    "ModelVersion",
    "NewVersion",
    "ServingArtifact",
    "StoredArtifact",
    "VersionStatus",
    "digest_file",
    "parse_digest",
]
