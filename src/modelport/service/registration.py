"""Registering model versions and turning registered versions into servable sources.

Registration composes the runtimes (to check that the artifact loads and to find its signature)
with the registry (to store the artifact content-addressed and record the version).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from modelport.core.errors import ConfigError, Conflict, ModelportError
from modelport.core.refs import ModelRef, validate_model_name
from modelport.core.settings import RuntimeSettings
from modelport.core.signature import Signature
from modelport.registry import ArtifactStore, MetadataStore, digest_file
from modelport.registry.records import Lineage, ModelVersion, NewVersion
from modelport.runtimes.base import RuntimeConfig
from modelport.runtimes.catalog import detect_framework, runtime_class
from modelport.runtimes.describe import describe, load_sample
from modelport.service.models import ModelSource

__all__ = ["ArtifactRef", "Registrar", "RegistrationRequest", "split_artifact"]


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """An artifact as a user names it: a file, ``file.py:Class`` or ``module:Class``."""

    path: Path | None
    entrypoint: str | None
    framework: str


def split_artifact(text: str, framework: str | None = None) -> ArtifactRef:
    """Interpret a user's artifact argument.

    ``model.onnx`` is a file; ``model.py:Class`` is a class in a file; ``package.module:Class`` is
    an importable class (its module's source file is what gets stored when registering).

    Raises:
        ConfigError: The file does not exist or the framework cannot be told from the name.
    """
    kind = framework or detect_framework(text)
    if kind != "python":
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"artifact {text!r} is not a file")
        return ArtifactRef(path=path, entrypoint=None, framework=kind)
    target, sep, cls = text.rpartition(":")
    if not sep or not cls.isidentifier():
        raise ConfigError(
            f"python model {text!r}: expected 'file.py:ClassName' or 'package.module:ClassName'"
        )
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"python model file {target!r} does not exist")
        return ArtifactRef(path=path, entrypoint=cls, framework="python")
    return ArtifactRef(path=None, entrypoint=text, framework="python")


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    """What ``modelport register`` asks for."""

    name: str
    artifact: str
    registered_by: str
    framework: str | None = None
    sample: Path | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    description: str = ""
    training_data: Path | None = None
    code_version: str | None = None
    parent_version: int | None = None


class Registrar:
    """Registers versions and resolves them for serving.

    Args:
        store: Registry metadata.
        artifacts: Content-addressed artifact store.
        runtime_settings: Settings used when loading an artifact to check it.
    """

    def __init__(
        self, store: MetadataStore, artifacts: ArtifactStore, runtime_settings: RuntimeSettings
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self._runtime_settings = runtime_settings

    def register(self, request: RegistrationRequest) -> ModelVersion:
        """Check the artifact loads (and runs on the sample), store it, and record a new version.

        Raises:
            ConfigError: Bad artifact reference, sample or missing signature.
            IntegrityError: The artifact cannot be loaded by its framework.
            NotFound: ``parent_version`` does not exist.
        """
        validate_model_name(request.name)
        ref = split_artifact(request.artifact, request.framework)
        source = ref.path if ref.path is not None else _module_file(ref.entrypoint or "")
        if request.parent_version is not None:
            self.store.get_version(request.name, request.parent_version)
        entrypoint = ref.entrypoint
        if ref.path is None and entrypoint is not None:
            entrypoint = entrypoint.rpartition(":")[2]
        # Check the artifact loads (and runs on the sample) before anything is stored.
        signature = self._signature(ref.framework, source, entrypoint, request.sample)
        stored = self.artifacts.put(source)
        return self.store.create_version(
            NewVersion(
                name=request.name,
                artifact_digest=stored.digest,
                artifact_size=stored.size,
                artifact_filename=source.name,
                framework=ref.framework,
                entrypoint=entrypoint,
                signature=signature,
                tags=dict(request.tags),
                metrics=dict(request.metrics),
                description=request.description,
                lineage=Lineage(
                    registered_by=request.registered_by,
                    training_data_digest=(
                        digest_file(request.training_data) if request.training_data else None
                    ),
                    code_version=request.code_version,
                    parent_version=request.parent_version,
                ),
            )
        )

    def _signature(
        self, framework: str, artifact: Path, entrypoint: str | None, sample: Path | None
    ) -> Signature:
        runtime = runtime_class(framework)(
            RuntimeConfig(
                artifact=artifact,
                entrypoint=entrypoint,
                device=self._runtime_settings.device,
                threads=self._runtime_settings.threads,
            )
        )
        runtime.load()
        try:
            own = runtime.metadata().signature
            if sample is None:
                if not own.inputs or not own.outputs:
                    raise ConfigError(
                        f"cannot tell the signature of this {framework} model from the artifact; "
                        "give a sample input with --sample FILE (.npy, .npz, .json or .csv)"
                    )
                return own
            try:
                described = describe(runtime, load_sample(sample))
            except ModelportError as exc:
                raise ConfigError(f"the model failed on the sample {str(sample)!r}: {exc}") from exc
            # ONNX artifacts declare their own signature exactly; samples only check they run.
            return own if framework == "onnx" and own.inputs else described
        finally:
            runtime.unload()

    def source_for(self, ref: ModelRef, served_name: str | None = None) -> ModelSource:
        """Return a servable source for a registered version; loading verifies its digest.

        Raises:
            NotFound: Unknown model, version or alias.
            Conflict: The version is archived.
        """
        version = self.store.resolve(ref)
        if version.status == "archived":
            raise Conflict(
                f"version {version.version} of {version.name!r} is archived; "
                "archived versions cannot be served"
            )
        digest = version.artifact_digest
        return ModelSource(
            name=served_name or version.name,
            version=str(version.version),
            framework=version.framework,
            artifact=self.artifacts.path_for(digest),
            prepare=lambda: self.artifacts.open_verified(digest),
            entrypoint=version.entrypoint,
            signature=version.signature,
        )

    def resolve_for_load(self, name: str, parameters: dict[str, object]) -> list[ModelSource]:
        """Resolve a repository-extension load: ``version`` or ``alias`` parameter, else latest.

        Raises:
            InvalidInput: Bad ``version``/``alias`` parameter.
            NotFound: Nothing registered under that reference.
            Conflict: The version is archived.
        """
        selector = parameters.get("version", parameters.get("alias"))
        text = name if selector is None else f"{name}@{selector}"
        return [self.source_for(ModelRef.parse(text))]


def _module_file(entrypoint: str) -> Path:
    module = entrypoint.rpartition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"cannot import python model module {module!r}: {exc}") from None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ConfigError(f"python model module {module!r} was not found as a .py file")
    return Path(spec.origin)
