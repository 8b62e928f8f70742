"""Registering model versions and turning registered versions into servable sources.

Registration composes the runtimes (to check that the artifact loads and to find its signature)
with the registry (to store the artifact content-addressed and record the version).

scikit-learn versions are also compiled to ONNX when skl2onnx can convert them and the compiled
model is equivalent on the registration sample (see :mod:`modelport.runtimes.compile`). Both
artifacts are stored; the version records the ONNX one as its *serving artifact*, which
:meth:`Registrar.source_for` serves by default, and the report of the attempt either way. The
original stays the fallback a user chooses explicitly (``prefer_original``); a compiled artifact
that fails to load is an error, never a silent switch to the original (fail closed: what is
served is what the registry says is served).
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelport.core.errors import ConfigError, Conflict, ModelportError
from modelport.core.refs import ModelRef, validate_model_name
from modelport.core.settings import RuntimeSettings
from modelport.core.signature import Signature
from modelport.registry import ArtifactStore, MetadataStore, digest_file
from modelport.registry.records import (
    CompileReport,
    Lineage,
    ModelVersion,
    NewVersion,
    ServingArtifact,
)
from modelport.runtimes.base import RuntimeConfig
from modelport.runtimes.catalog import detect_framework, runtime_class
from modelport.runtimes.compile import CompileResult, compile_sklearn
from modelport.runtimes.describe import describe, load_sample
from modelport.service.models import ModelSource

__all__ = ["COMPILE_OFF", "ArtifactRef", "Registrar", "RegistrationRequest", "split_artifact"]


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
    compile: bool = True
    """Compile a scikit-learn model to ONNX and serve that when it is equivalent on the sample."""


COMPILE_OFF = "compilation turned off (--no-compile)"
"""The compile report's reason when the request opted out."""


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

        A scikit-learn artifact is compiled to ONNX as well (unless ``request.compile`` is false);
        the version serves the ONNX copy only when it was proven equivalent on the sample.

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
        sample = load_sample(request.sample) if request.sample is not None else None
        # Check the artifact loads (and runs on the sample) before anything is stored.
        signature = self._signature(ref.framework, source, entrypoint, sample, request.sample)
        serving, report = self._compile(ref.framework, source, signature, sample, request.compile)
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
                serving=serving,
                compile_report=report,
            )
        )

    def _compile(
        self,
        framework: str,
        artifact: Path,
        signature: Signature,
        sample: Mapping[str, np.ndarray] | None,
        enabled: bool,
    ) -> tuple[ServingArtifact | None, CompileReport | None]:
        """Compile a scikit-learn artifact; store the ONNX copy when it is equivalent."""
        if framework != "sklearn":
            return None, None
        if not enabled:
            return None, CompileReport(compiled=False, reason=COMPILE_OFF)
        with tempfile.TemporaryDirectory(prefix="modelport-compile-") as folder:
            out = Path(folder) / "model.onnx"
            result = compile_sklearn(artifact, sample, signature, out)
            report = _report(result)
            if not result.compiled:
                return None, report
            stored = self.artifacts.put(out)
        return ServingArtifact(framework="onnx", digest=stored.digest, size=stored.size), report

    def _signature(
        self,
        framework: str,
        artifact: Path,
        entrypoint: str | None,
        sample: Mapping[str, np.ndarray] | None,
        sample_path: Path | None,
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
                described = describe(runtime, sample)
            except ModelportError as exc:
                raise ConfigError(
                    f"the model failed on the sample {str(sample_path)!r}: {exc}"
                ) from exc
            # ONNX artifacts declare their own signature exactly; samples only check they run.
            return own if framework == "onnx" and own.inputs else described
        finally:
            runtime.unload()

    def source_for(
        self, ref: ModelRef, served_name: str | None = None, prefer_original: bool = False
    ) -> ModelSource:
        """Return a servable source for a registered version; loading verifies its digest.

        The version's serving artifact (its ONNX compilation) is served when it has one, the
        registered artifact otherwise. Both expose the registered signature. Loading the serving
        artifact verifies its own digest, and if it is missing, corrupt or fails to load, loading
        fails: there is no silent fallback to the original.

        Args:
            ref: The registered version.
            served_name: Name to serve it under; the model's name by default.
            prefer_original: Serve the registered artifact even when a compiled one exists
                (``modelport serve --original``).

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
        framework, digest = version.framework, version.artifact_digest
        if version.serving is not None and not prefer_original:
            framework, digest = version.serving.framework, version.serving.digest
        return ModelSource(
            name=served_name or version.name,
            version=str(version.version),
            framework=framework,
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


def _report(result: CompileResult) -> CompileReport:
    return CompileReport(
        compiled=result.compiled,
        reason=result.reason,
        max_abs_diff=result.max_abs_diff,
        atol=result.atol,
        rows=result.rows,
        precision=result.precision.value if result.precision is not None else None,
        converter=result.converter,
    )


def _module_file(entrypoint: str) -> Path:
    module = entrypoint.rpartition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"cannot import python model module {module!r}: {exc}") from None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ConfigError(f"python model module {module!r} was not found as a .py file")
    return Path(spec.origin)
