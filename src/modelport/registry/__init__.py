"""The model registry: numbered model versions, aliases and lineage, and their artifacts.

:class:`MetadataStore` keeps the metadata in SQLite or PostgreSQL; :class:`ArtifactStore` keeps
each version's sealed (encrypted) artifacts, their key records and signed manifest, filed by
version and SHA-256 (the service layer encrypts, signs and verifies them).
"""

from __future__ import annotations

from modelport.registry.artifacts import ArtifactStore, StoredArtifact, digest_file, parse_digest
from modelport.registry.records import (
    DEFAULT_JURISDICTION,
    AliasEvent,
    ArtifactSigner,
    CompileReport,
    Lineage,
    ModelSummary,
    ModelVersion,
    NewVersion,
    ReferenceProfile,
    ServingArtifact,
    VersionStatus,
)
from modelport.registry.store import MetadataStore

__all__ = [
    "DEFAULT_JURISDICTION",
    "AliasEvent",
    "ArtifactSigner",
    "ArtifactStore",
    "CompileReport",
    "Lineage",
    "MetadataStore",
    "ModelSummary",
    "ModelVersion",
    "NewVersion",
    "ReferenceProfile",
    "ServingArtifact",
    "StoredArtifact",
    "VersionStatus",
    "digest_file",
    "parse_digest",
]
