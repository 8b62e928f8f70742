"""Registering model versions and turning registered versions into servable sources.

Registration composes the runtimes (to check that the artifact loads and to find its signature)
with the registry (to store the artifact, encrypted and signed, and record the version).

scikit-learn versions are also compiled to ONNX when skl2onnx can convert them and the compiled
model is equivalent on the registration sample (see :mod:`modelport.runtimes.compile`). Both
artifacts are stored; the version records the ONNX one as its *serving artifact*, which
:meth:`Registrar.source_for` serves by default, and the report of the attempt either way. The
original stays the fallback a user chooses explicitly (``prefer_original``); a compiled artifact
that fails to load is an error, never a silent switch to the original (fail closed: what is
served is what the registry says is served).

Every stored artifact is encrypted and the version's files are listed in a signed manifest
(:mod:`modelport.service.artifact_guard`): the artifacts are sealed before the version is
recorded, and bound to the version number and signed inside the registration's transaction, so
a version is recorded together with its sealed artifacts or not at all. Loading a version
verifies the signature and decrypts its artifact for the length of the runtime's load only.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np

from modelport.core.errors import ConfigError, Conflict, InvalidInput, ModelportError, NotFound
from modelport.core.refs import ModelRef, validate_model_name
from modelport.core.settings import RuntimeSettings
from modelport.core.signature import Signature
from modelport.registry import MetadataStore, digest_file
from modelport.registry.records import (
    DEFAULT_JURISDICTION,
    AliasEvent,
    CompileReport,
    Lineage,
    ModelVersion,
    NewVersion,
    ReferenceProfile,
    ServingArtifact,
)
from modelport.runtimes.base import RuntimeConfig
from modelport.runtimes.catalog import detect_framework, runtime_class
from modelport.runtimes.compile import CompileResult, compile_sklearn
from modelport.runtimes.sample_signature import load_sample, signature_from_sample
from modelport.service.access import AuditSink, run_audited
from modelport.service.artifact_guard import ArtifactGuard, StagedArtifact
from modelport.service.models import ModelSource
from modelport.service.reference import reference_profile

__all__ = ["COMPILE_OFF", "ArtifactRef", "Registrar", "RegistrationRequest", "split_artifact"]

T = TypeVar("T")


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
        NotFound: The file does not exist.
        ConfigError: The framework cannot be told from the name, or the path is not a file.
    """
    kind = framework or detect_framework(text)
    if kind != "python":
        path = Path(text)
        if not path.exists():
            raise NotFound(f"artifact {text!r}: no such file")
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
            raise NotFound(f"python model file {target!r} does not exist")
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
    jurisdiction: str = DEFAULT_JURISDICTION
    """Where the version's data may live; bound into the encryption of its artifacts."""
    reference: Path | None = None
    """Reference rows for drift detection (the sample's formats; more rows than the sample).
    Without one, the sample is the reference; without either, no profile is stored."""


log = logging.getLogger("modelport.registry")

COMPILE_OFF = "compilation turned off (--no-compile)"
"""The compile report's reason when the request opted out."""


class Registrar:
    """Registers versions and resolves them for serving.

    Args:
        store: Registry metadata.
        guard: Seals artifacts into the artifact store and opens them verified.
        runtime_settings: Settings used when loading an artifact to check it.
        audit: Where registrations, alias moves and archiving are recorded (whether they
            worked or not); ``None`` records nothing.
    """

    def __init__(
        self,
        store: MetadataStore,
        guard: ArtifactGuard,
        runtime_settings: RuntimeSettings,
        audit: AuditSink | None = None,
    ) -> None:
        self.store = store
        self.guard = guard
        self._runtime_settings = runtime_settings
        self._audit = audit

    def _audited(self, actor: str, action: str, target: str, work: Callable[[], T]) -> T:
        """Run a control action with its audit entries (:func:`run_audited`)."""
        return run_audited(self._audit, actor, action, target, lambda: (work(), None))

    def set_alias(self, name: str, alias: str, version: int, actor: str) -> AliasEvent:
        """Point ``alias`` of ``name`` at ``version`` (see :meth:`MetadataStore.set_alias`)."""
        return self._audited(
            actor,
            "alias.set",
            f"{_audit_name(name)}@{_audit_name(alias, _ALIAS_SHOWN)}",
            lambda: self.store.set_alias(name, alias, version, actor),
        )

    def remove_alias(self, name: str, alias: str, actor: str) -> AliasEvent:
        """Remove ``alias`` from ``name`` (see :meth:`MetadataStore.remove_alias`)."""
        return self._audited(
            actor,
            "alias.remove",
            f"{_audit_name(name)}@{_audit_name(alias, _ALIAS_SHOWN)}",
            lambda: self.store.remove_alias(name, alias, actor),
        )

    def archive(self, name: str, version: int, actor: str) -> ModelVersion:
        """Archive ``name@version`` (see :meth:`MetadataStore.archive`)."""
        return self._audited(
            actor,
            "model.archive",
            f"{_audit_name(name)}@{version}",
            lambda: self.store.archive(name, version, actor),
        )

    def register(self, request: RegistrationRequest) -> ModelVersion:
        """Register a new version (see :meth:`_register`) and record it in the audit log."""
        return self._audited(
            request.registered_by,
            "model.register",
            _audit_name(request.name),
            lambda: self._register(request),
        )

    def _register(self, request: RegistrationRequest) -> ModelVersion:
        """Check the artifact loads (and runs on the sample), seal it, and record a new version.

        A scikit-learn artifact is compiled to ONNX as well (unless ``request.compile`` is false);
        the version serves the ONNX copy only when it was proven equivalent on the sample. Every
        stored artifact is encrypted, and the version's manifest is signed.

        Raises:
            ConfigError: Bad artifact reference, sample, jurisdiction or missing signature; no
                usable key-encryption or signing key.
            IntegrityError: The artifact cannot be loaded by its framework.
            InvalidInput: Malformed name or jurisdiction.
            NotFound: The artifact, sample or training data file, or ``parent_version``, does
                not exist.
        """
        validate_model_name(request.name)
        given_files = (
            (request.sample, "sample"),
            (request.training_data, "training data"),
            (request.reference, "reference"),
        )
        for given, what in given_files:
            if given is not None and not given.exists():
                raise NotFound(f"{what} {str(given)!r}: no such file")
            if given is not None and not given.is_file():
                raise ConfigError(f"{what} {str(given)!r} is not a file")
        ref = split_artifact(request.artifact, request.framework)
        source = ref.path if ref.path is not None else _module_file(ref.entrypoint or "")
        if request.parent_version is not None:
            self.store.get_version(request.name, request.parent_version)
        entrypoint = ref.entrypoint
        if ref.path is None and entrypoint is not None:
            entrypoint = entrypoint.rpartition(":")[2]
        sample = load_sample(request.sample) if request.sample is not None else None
        reference = load_sample(request.reference) if request.reference is not None else sample
        # Check the artifact loads (and runs on the sample) before anything is stored; profile
        # its inputs and predictions on the reference while it is loaded.
        signature, profiled = self._signature(
            ref.framework, source, entrypoint, sample, request.sample, reference
        )
        signer = self.guard.signer()  # creates the signing key on first use, outside the lock
        staged: list[StagedArtifact] = []
        try:
            with tempfile.TemporaryDirectory(prefix="modelport-compile-") as folder:
                compiled, report = self._compile(
                    ref.framework, source, signature, sample, request.compile, Path(folder)
                )
                staged.append(self.guard.stage(source, "registered"))
                serving = None
                if compiled is not None:
                    staged.append(self.guard.stage(compiled, "serving"))
                    serving = ServingArtifact("onnx", staged[1].digest, staged[1].size)
            original = staged[0]
            created = self.store.create_version(
                NewVersion(
                    name=request.name,
                    artifact_digest=original.digest,
                    artifact_size=original.size,
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
                    jurisdiction=request.jurisdiction,
                    signer=signer,
                ),
                before_commit=lambda number: self.guard.commit(
                    request.name, number, request.jurisdiction, staged
                ),
            )
        finally:
            self.guard.discard(staged)
        if profiled is not None:
            made, rows = profiled
            where = (
                "sample"
                if request.reference is None
                else f"reference {digest_file(request.reference)}"
            )
            self.store.set_profile(
                created.name, created.version, made.to_dict(), rows, where, request.registered_by
            )
        return created

    def _compile(
        self,
        framework: str,
        artifact: Path,
        signature: Signature,
        sample: Mapping[str, np.ndarray] | None,
        enabled: bool,
        folder: Path,
    ) -> tuple[Path | None, CompileReport | None]:
        """Compile a scikit-learn artifact into ``folder``; return the ONNX file if equivalent."""
        if framework != "sklearn":
            return None, None
        if not enabled:
            return None, CompileReport(compiled=False, reason=COMPILE_OFF)
        out = folder / "model.onnx"
        result = compile_sklearn(artifact, sample, signature, out)
        return (out if result.compiled else None), _report(result)

    def _signature(
        self,
        framework: str,
        artifact: Path,
        entrypoint: str | None,
        sample: Mapping[str, np.ndarray] | None,
        sample_path: Path | None,
        reference: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[Signature, tuple[Any, int] | None]:
        """The version's signature, and its reference profile when reference rows are given."""
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
                signature = own
            else:
                try:
                    described = signature_from_sample(runtime, sample)
                except ModelportError as exc:
                    raise ConfigError(
                        f"the model failed on the sample {str(sample_path)!r}: {exc}"
                    ) from exc
                # ONNX artifacts declare their own signature exactly; samples only check they run.
                signature = own if framework == "onnx" and own.inputs else described
            if reference is None:
                return signature, None
            try:
                return signature, _profiled(runtime, reference, signature)
            except InvalidInput as exc:
                if reference is not sample:
                    raise  # the reference the user gave cannot be profiled: say so
                log.warning("registered without a reference profile: %s", exc.message)
                return signature, None
        finally:
            runtime.unload()

    def source_for(
        self, ref: ModelRef, served_name: str | None = None, prefer_original: bool = False
    ) -> ModelSource:
        """Return a servable source for a registered version; loading verifies it.

        The version's serving artifact (its ONNX compilation) is served when it has one, the
        registered artifact otherwise. Both expose the registered signature. Loading checks the
        version's signed manifest and decrypts the artifact, every byte authenticated, into a
        private temporary file that is removed once the runtime has loaded it. If the artifact
        is missing, tampered with, unsigned or fails to load, loading fails: there is no silent
        fallback to the original.

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
            artifact=self.guard.store.sealed_path(version.name, version.version, digest),
            prepare=lambda: self.guard.open(version, digest),
            entrypoint=version.entrypoint,
            signature=version.signature,
        )

    def profile_version(self, ref: ModelRef, reference: Path, actor: str) -> ReferenceProfile:
        """Profile a registered version on reference rows and store it (``drift profile``).

        The version's artifact is opened verified, as for serving, run over the rows, and its
        inputs and predictions are profiled; a profile it had is replaced. Audited.

        Raises:
            NotFound: Unknown model, version or alias, or no reference file.
            Conflict: The version is archived.
            InvalidInput: The reference does not fit the version's inputs.
        """
        if not reference.is_file():
            raise NotFound(f"reference {str(reference)!r}: no such file")
        data = load_sample(reference)
        source = self.source_for(ref)
        version = int(source.version)
        name = self.store.resolve(ref).name

        def work() -> ReferenceProfile:
            if source.prepare is None:  # pragma: no cover - registered sources always prepare
                raise ConfigError(f"{ref} has no artifact to load")
            with source.prepare() as path:
                runtime = runtime_class(source.framework)(
                    RuntimeConfig(
                        artifact=path,
                        entrypoint=source.entrypoint,
                        device=self._runtime_settings.device,
                        threads=self._runtime_settings.threads,
                    )
                )
                runtime.load()
            try:
                signature = source.signature or runtime.metadata().signature
                made, rows = _profiled(runtime, data, signature)
            finally:
                runtime.unload()
            where = f"reference {digest_file(reference)}"
            return self.store.set_profile(name, version, made.to_dict(), rows, where, actor)

        return self._audited(actor, "profile.set", f"{_audit_name(name)}@{version}", work)

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


def _profiled(
    runtime: Any, reference: Mapping[str, np.ndarray], signature: Signature
) -> tuple[Any, int]:
    """The reference profile of a loaded runtime (see :mod:`modelport.service.reference`)."""
    outputs = [output.name for output in signature.outputs]
    try:
        return reference_profile(runtime, reference, outputs)
    except ValueError as exc:  # modelport.drift refuses the data (a feature with no values...)
        raise InvalidInput(f"cannot profile the reference: {exc}") from None


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


_ALIAS_SHOWN: Final = 64
_NAME_SHOWN: Final = 64


def _audit_name(text: str, shown: int = _NAME_SHOWN) -> str:
    """Return a model name or alias as the audit log records it.

    A valid name is recorded as it is. Anything else (blank, far too long, control characters)
    is what a failed action was asked to act on, so it is recorded too, as its Python literal
    (quoted, escapes visible) cut to ``shown`` characters, so that the entry can always be
    written and never hides the error it records.
    """
    if text and len(text) <= shown and text.isprintable() and text.strip() == text:
        return text
    literal = repr(text)
    return literal if len(literal) <= shown else f"{literal[: shown - 3]}..."


def _module_file(entrypoint: str) -> Path:
    module = entrypoint.rpartition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"cannot import python model module {module!r}: {exc}") from None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ConfigError(f"python model module {module!r} was not found as a .py file")
    return Path(spec.origin)
