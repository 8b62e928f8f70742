"""Registry records: model versions, their lineage, serving artifacts and alias moves."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from modelport.core.signature import Signature

__all__ = [
    "DEFAULT_JURISDICTION",
    "AliasEvent",
    "ArtifactSigner",
    "CompileReport",
    "Lineage",
    "ModelSummary",
    "ModelVersion",
    "NewVersion",
    "ReferenceProfile",
    "ServingArtifact",
    "VersionStatus",
]

VersionStatus = Literal["active", "archived"]

DEFAULT_JURISDICTION = "global"
"""The jurisdiction of versions registered without one (and of every version before 0003)."""


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a version came from."""

    registered_by: str
    training_data_digest: str | None = None
    code_version: str | None = None
    parent_version: int | None = None


@dataclass(frozen=True, slots=True)
class ServingArtifact:
    """The artifact served instead of the registered one (for example its ONNX compilation).

    It exposes the same signature as the registered artifact; the registered one stays in the
    store as the fallback a user can ask for explicitly.
    """

    framework: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class ArtifactSigner:
    """Who signed a version's artifact manifest at registration.

    Attributes:
        identity: The signer identity written into the manifest (a user or service name).
        key_id: The signing key, ``ed25519:<sha256 of the public key>``.
    """

    identity: str
    key_id: str


@dataclass(frozen=True, slots=True)
class CompileReport:
    """What happened when registration tried to compile the artifact.

    Attributes:
        compiled: Whether an equivalent compiled artifact is served.
        reason: Why it was not compiled (``None`` when it was).
        max_abs_diff: Largest absolute difference between the original and the compiled model's
            floating-point outputs on the registration sample, when they were compared.
        atol: The tolerance the difference was held to.
        rows: Sample rows the equivalence was checked on.
        precision: Datatype the compiled graph computes in (``FP32``, ``FP64``).
        converter: The converter and its version, e.g. ``skl2onnx 1.20.0``.
    """

    compiled: bool
    reason: str | None = None
    max_abs_diff: float | None = None
    atol: float | None = None
    rows: int = 0
    precision: str | None = None
    converter: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data (how the store keeps it)."""
        return {
            "compiled": self.compiled,
            "reason": self.reason,
            "max_abs_diff": self.max_abs_diff,
            "atol": self.atol,
            "rows": self.rows,
            "precision": self.precision,
            "converter": self.converter,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CompileReport:
        """Build a report from its stored form; keys this version does not know are ignored."""

        def number(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

        def text(key: str) -> str | None:
            value = raw.get(key)
            return value if isinstance(value, str) else None

        rows = raw.get("rows")
        return cls(
            compiled=raw.get("compiled") is True,
            reason=text("reason"),
            max_abs_diff=number("max_abs_diff"),
            atol=number("atol"),
            rows=rows if isinstance(rows, int) and not isinstance(rows, bool) else 0,
            precision=text("precision"),
            converter=text("converter"),
        )


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
    serving: ServingArtifact | None = None
    compile_report: CompileReport | None = None
    jurisdiction: str = DEFAULT_JURISDICTION
    signer: ArtifactSigner | None = None


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version of a model.

    ``aliases`` are the aliases pointing at this version, sorted; ``archived_at`` and
    ``archived_by`` say when and by whom it was archived (``None`` while it is active).
    ``serving`` is the artifact served instead of the registered one (``None``: serve the
    registered artifact); ``compile_report`` says how registration tried to compile it (``None``
    for versions registered before compilation existed, and for frameworks it does not apply to).
    ``jurisdiction`` is where the version's data may live (bound into its artifacts' encryption);
    ``signer`` who signed its artifact manifest (``None``: registered before artifacts were
    signed, so it cannot be loaded).
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
    serving: ServingArtifact | None = None
    compile_report: CompileReport | None = None
    jurisdiction: str = DEFAULT_JURISDICTION
    signer: ArtifactSigner | None = None


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


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """A version's reference data profile for drift detection, as stored.

    Attributes:
        name: The model.
        version: The version it profiles.
        profile: The profile as JSON-ready data (``modelport.drift.Profile.to_dict()``).
        rows: Reference rows it was made from.
        source: What it was made from: ``sample`` or ``reference sha256:...``.
        created_at: When it was stored.
        created_by: Who stored it.
    """

    name: str
    version: int
    profile: dict[str, Any]
    rows: int
    source: str
    created_at: datetime
    created_by: str
