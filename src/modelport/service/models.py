"""The set of models one server hosts: their sources, loaded runtimes and readiness.

A :class:`ModelSource` says how to (re)load one version; a :class:`ModelRepository` keeps a
runtime per served version and answers which version a request means. Loading and unloading are
serialised by a lock; lookups on the inference path take no lock (dict reads are atomic).

A registered version's source has a ``prepare`` step that verifies and decrypts its artifact
into a private temporary file for the length of the runtime's ``load()`` only (see
:mod:`modelport.service.artifact_guard`). A pickle-based artifact without that step is refused:
unpickling runs code, so only a verified registration may be unpickled.

A repository ``load`` takes no parameter, ``version`` or ``alias`` (checked by
:func:`validate_load_parameters`; :func:`validate_load_request` checks a whole REST body): with
none it reloads every hosted version of the name, with one it loads exactly the version it
names and leaves the others as they are.

Versions served by alias (``serve NAME@ALIAS``) follow it: given an :class:`AliasSource`, the
repository runs an :class:`~modelport.service.alias_watch.AliasWatch` from :meth:`load_all` to
:meth:`close`, which swaps in the version an alias moves to (see that module).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from modelport.batching import Batcher
from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import (
    ConfigError,
    InvalidInput,
    ModelNotReady,
    ModelportError,
    NotFound,
)
from modelport.core.refs import ModelRef, validate_alias
from modelport.core.settings import BatchingSettings, RuntimeSettings
from modelport.core.signature import Signature
from modelport.monitoring.tally import LATENCY_BUCKETS
from modelport.runtimes.base import ModelRuntime, RuntimeConfig
from modelport.runtimes.catalog import runtime_class
from modelport.service.alias_watch import AliasSource, AliasWatch
from modelport.service.stats import InferenceStats

__all__ = [
    "UNPICKLING_FRAMEWORKS",
    "LoadedModel",
    "ModelRepository",
    "ModelSource",
    "ModelState",
    "SourceResolver",
    "unpickles",
    "validate_load_parameters",
    "validate_load_request",
    "validate_unload_request",
]

LOAD_PARAMETERS: Final = ("version", "alias")
"""Parameters a repository load takes: a registered version number, or an alias."""


def validate_load_request(payload: Mapping[str, object]) -> dict[str, object]:
    """Check a repository load body, ``{}`` or ``{"parameters": {...}}``; return the parameters.

    Args:
        payload: The decoded JSON object of the request body.

    Returns:
        The checked parameters (see :func:`validate_load_parameters`).

    Raises:
        InvalidInput: The body has a key other than ``parameters``, ``parameters`` is not an
            object, or a parameter is unknown or malformed.
    """
    expected = '{"parameters": {"version": "3"}} or {"parameters": {"alias": "champion"}} (or {})'
    return validate_load_parameters(_request_parameters(payload, "load", expected))


def _request_parameters(
    payload: Mapping[str, object], action: str, expected: str
) -> dict[str, object]:
    """The ``parameters`` object of a repository request body that has no other key."""
    unknown = [key for key in payload if key != "parameters"]
    if unknown:
        raise InvalidInput(
            f"repository {action} request: unknown key {unknown[0]!r}; the body is {expected}"
        )
    parameters = payload.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidInput(f"repository {action} request: 'parameters' must be an object")
    return parameters


def validate_unload_request(payload: Mapping[str, object]) -> dict[str, object]:
    """Check a repository unload body, ``{}`` or ``{"parameters": {"unload_dependents": B}}``.

    ``unload_dependents`` is Triton's (a boolean); nothing depends on a model here, so it
    changes nothing.

    Returns:
        The checked parameters.

    Raises:
        InvalidInput: Another key or parameter, or a value that is not a boolean.
    """
    expected = '{} or {"parameters": {"unload_dependents": true}}'
    parameters = _request_parameters(payload, "unload", expected)
    for key, value in parameters.items():
        if key != "unload_dependents":
            raise InvalidInput(
                f"unknown unload parameter {key!r}; expected only 'unload_dependents'"
            )
        if not isinstance(value, bool):
            raise InvalidInput(
                f"unload parameter 'unload_dependents' must be a boolean, got {value!r}"
            )
    return dict(parameters)


def validate_load_parameters(parameters: Mapping[str, object]) -> dict[str, object]:
    """Check the parameters of a repository load (REST or gRPC).

    Args:
        parameters: ``{}``, ``{"version": N}`` (a positive integer, or its decimal text) or
            ``{"alias": NAME}``.

    Returns:
        A copy of ``parameters``.

    Raises:
        InvalidInput: An unknown parameter, both at once, or a malformed value.
    """
    unknown = [key for key in parameters if key not in LOAD_PARAMETERS]
    if unknown:
        raise InvalidInput(
            f"unknown load parameter {unknown[0]!r}; expected 'version' (a registered version "
            "number) or 'alias' (a registered alias), or none to reload what is served"
        )
    if len(parameters) > 1:
        raise InvalidInput("load parameters 'version' and 'alias' exclude each other; give one")
    version = parameters.get("version")
    if version is not None:
        text = str(version) if isinstance(version, int | str) and version is not True else ""
        if version is False or not (text.isascii() and text.isdecimal() and int(text) >= 1):
            raise InvalidInput(
                f"load parameter 'version' must be a version number (1, 2, ...), got {version!r}"
            )
    alias = parameters.get("alias")
    if "alias" in parameters:
        if not isinstance(alias, str):
            raise InvalidInput(f"load parameter 'alias' must be a string, got {alias!r}")
        validate_alias(alias)
    return dict(parameters)


UNPICKLING_FRAMEWORKS: Final = frozenset({"sklearn"})
"""Runtimes whose loading unpickles the artifact, and so runs code stored in it."""


def unpickles(framework: str) -> bool:
    """Whether loading an artifact of ``framework`` unpickles it (runs code stored in it)."""
    return framework in UNPICKLING_FRAMEWORKS


class ModelState(enum.StrEnum):
    """Readiness of one served version, as the repository extension reports it."""

    READY = "READY"
    UNAVAILABLE = "UNAVAILABLE"
    LOADING = "LOADING"


_READY: Final = ModelState.READY
"""Read on every request, as a module constant (bench/HOT_PATH.md)."""


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Everything needed to load one model version.

    Attributes:
        name: Served model name.
        version: Served version label (the registry version number as text).
        framework: Runtime catalogue name.
        artifact: Artifact file; ``None`` for an importable Python class. For a registered
            version it is the sealed (encrypted) object, for reference only: ``prepare`` yields
            the plaintext.
        prepare: Called before each load; the context manager it returns yields the artifact
            path to load and cleans up when the runtime has loaded it (for registry artifacts:
            verify the signature, decrypt into a private folder, remove it afterwards).
            ``None`` uses ``artifact`` as it is.
        entrypoint: Python runtime class reference.
        signature: Registered signature, if any.
        batching: Dynamic batching for this version; ``None`` or disabled runs requests alone.
        registered: The registry reference the source was resolved from (``NAME``,
            ``NAME@VERSION`` or ``NAME@ALIAS``; the alias watch follows the last kind);
            ``None`` for an artifact served directly.
        original: Whether the registered artifact is served rather than its compiled copy.
    """

    name: str
    version: str
    framework: str
    artifact: Path | None
    prepare: Callable[[], AbstractContextManager[Path]] | None = None
    entrypoint: str | None = None
    signature: Signature | None = None
    batching: BatchingSettings | None = None
    registered: ModelRef | None = None
    original: bool = False


@dataclass(slots=True)
class LoadedModel:
    """One served version and its runtime."""

    source: ModelSource
    state: ModelState = ModelState.UNAVAILABLE
    reason: str = "not loaded"
    runtime: ModelRuntime | None = None
    batcher: Batcher | None = None
    platform: str = ""
    signature: Signature = field(default_factory=lambda: Signature((), ()))
    load_seconds: float | None = None
    """How long its last successful load took (artifact checks, decryption, the runtime's
    load); ``None`` before one."""

    @property
    def ready(self) -> bool:
        """Whether the version can serve requests now."""
        return self.state is ModelState.READY


SourceResolver = Callable[[str, dict[str, object]], list[ModelSource]]
"""Finds the sources for a model name not yet known to the repository (hot load)."""


class ModelRepository:
    """The models hosted by one server.

    Args:
        runtime_settings: Device and thread settings passed to every runtime.
        resolver: Looks up sources for names loaded through the repository extension that the
            server was not started with (for example registered models); ``None`` refuses them.
        clock: Clock for batching delays and deadlines.
        aliases: Where the versions behind aliases are read, for sources served by alias;
            ``None`` serves them as resolved at start.
        alias_poll_s: Seconds between two looks at ``aliases``.
        latency_buckets: Upper bounds of the statistics' latency buckets, in seconds (the
            metrics' histogram edges).

    Attributes:
        stats: The hosted versions' inference statistics (Triton's statistics extension and
            the Prometheus metrics read them); batchers made here count their model calls in
            them (Triton's ``execution_count``).
    """

    def __init__(
        self,
        runtime_settings: RuntimeSettings,
        resolver: SourceResolver | None = None,
        clock: Clock | None = None,
        aliases: AliasSource | None = None,
        alias_poll_s: float = 5.0,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self._runtime_settings = runtime_settings
        self._resolver = resolver
        self.clock: Clock = clock or SystemClock()
        self._executor: ThreadPoolExecutor | None = None
        self._models: dict[str, dict[str, LoadedModel]] = {}
        self._default: dict[str, str] = {}
        self._lock = threading.Lock()
        self.stats = InferenceStats(self.clock, latency_buckets)
        self._watch = AliasWatch(self, aliases, alias_poll_s) if aliases is not None else None

    def add(self, source: ModelSource) -> LoadedModel:
        """Register a source without loading it; a name's first version is its default.

        A version already hosted keeps its runtime until it is loaded from the new source.
        """
        with self._lock:
            versions = self._models.setdefault(source.name, {})
            model = versions.get(source.version)
            if model is None:
                model = LoadedModel(source=source)
                versions[source.version] = model
            elif model.source != source:
                model.source = source
            self._default.setdefault(source.name, source.version)
            return model

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """Return the served version ``version`` of ``name`` (its default when ``None``).

        Raises:
            NotFound: The name or version is not served here.
        """
        versions = self._models.get(name)
        if versions is None:
            # Other models are not named: the caller may not be allowed to know of them.
            raise NotFound(
                f"unknown model {name!r}: this server does not host it (the repository index "
                "lists the models you may use)"
            )
        key = self._default[name] if version is None else version
        model = versions.get(key)
        if model is None:
            served = ", ".join(repr(v) for v in versions) or "none"
            raise NotFound(
                f"model {name!r} has no version {version!r} here; served versions: {served}"
            )
        return model

    def get_ready(self, name: str, version: str | None = None) -> LoadedModel:
        """Like :meth:`get`, but the version must be ready.

        Raises:
            NotFound: Unknown name or version.
            ModelNotReady: The version is known but not loaded.
        """
        model = self.get(name, version)
        if model.state is not _READY:  # the ready property's test, without its call
            raise ModelNotReady(
                f"model {name!r} version {model.source.version} is not ready: {model.reason}"
            )
        return model

    def __iter__(self) -> Iterator[LoadedModel]:
        return iter([m for versions in list(self._models.values()) for m in versions.values()])

    def all_ready(self) -> bool:
        """Whether every hosted version is ready (the server's readiness)."""
        return all(m.ready for m in self)

    def load(self, name: str, parameters: Mapping[str, object] | None = None) -> list[Batcher]:
        """Load a version of ``name``, or reload every hosted one; unknown names are resolved.

        Args:
            name: Served model name.
            parameters: ``{}`` reloads every hosted version of ``name`` (or, for a name not
                hosted, loads what the resolver finds: the latest registered version);
                ``{"version": N}`` or ``{"alias": A}`` loads exactly that version, leaving the
                name's other versions as they are.

        Returns:
            Batchers replaced by the reload; the caller closes them (an async operation).

        Raises:
            InvalidInput: Unknown or malformed parameters.
            NotFound: The name (or version) is neither hosted nor resolvable.
            ModelportError: A version failed to load; the version is left UNAVAILABLE with
                the reason.
        """
        params = validate_load_parameters(parameters or {})
        if params or name not in self._models:
            models = [self.add(source) for source in self._resolve(name, params)]
        else:
            models = list(self._models[name].values())
        retired: list[Batcher] = []
        for model in models:
            retired.extend(self._load_one(model))
        return retired

    def _resolve(self, name: str, params: dict[str, object]) -> list[ModelSource]:
        """Find the sources a load means: the registry's, else the hosted version named."""
        if self._resolver is not None:
            return self._resolver(name, params)
        hosted = self.get(name)  # NotFound for a name this server was not started with
        if "alias" in params:
            raise InvalidInput(
                f"load parameter 'alias' needs the model registry; {name!r} is served from an "
                "artifact file"
            )
        if "version" in params:
            return [self.get(name, str(params["version"])).source]
        return [hosted.source]

    def load_all(self) -> None:
        """Load every hosted version (at server start), then follow aliases.

        Raises:
            ModelportError: The first version that failed to load.
        """
        for model in self:
            self._load_one(model)
        if self._watch is not None:
            self._watch.start()

    def registered(self) -> list[LoadedModel]:
        """Return the hosted registered versions, except those unloaded on purpose."""
        with self._lock:
            return [
                model
                for versions in self._models.values()
                for model in versions.values()
                if model.source.registered is not None and model.reason != "unloaded"
            ]

    def withdraw(self, name: str, version: str, reason: str) -> LoadedModel | None:
        """Mark a served version not ready (``reason`` says why); it stays listed.

        Returns:
            The version, still holding its runtime and batcher for the caller to drain and
            unload; ``None`` when it is not hosted or not ready.
        """
        with self._lock:
            model = self._models.get(name, {}).get(version)
            if model is None or not model.ready:
                return None
            model.state, model.reason = ModelState.UNAVAILABLE, reason
            return model

    def load_source(self, source: ModelSource) -> tuple[LoadedModel, list[Batcher]]:
        """Add ``source`` as a version of its name and load it (the default does not move).

        Returns:
            The loaded version, and the batcher it replaced when that version was already
            served (the caller closes it).

        Raises:
            ModelportError: The version failed to load; it is left UNAVAILABLE.
        """
        model = self.add(source)
        return model, self._load_one(model)

    def promote(self, name: str, old: str, new: str) -> None:
        """Make version ``new`` of ``name`` its default if ``old`` is (one atomic assignment)."""
        with self._lock:
            if self._default.get(name) == old and new in self._models.get(name, {}):
                self._default[name] = new

    def retire(self, name: str, version: str) -> LoadedModel | None:
        """Stop serving one version: requests naming it get "not found" from now on.

        Returns:
            The retired version, still holding its runtime and batcher for the caller to drain
            and unload; ``None`` when it was not served (or is the name's default).
        """
        with self._lock:
            versions = self._models.get(name, {})
            if self._default.get(name) == version or version not in versions:
                return None
            model = versions.pop(version)
            model.state, model.reason = ModelState.UNAVAILABLE, "replaced"
            return model

    def unload(self, name: str) -> list[Batcher]:
        """Unload every version of ``name``; requests then get "not ready".

        Returns:
            The versions' batchers; the caller closes them, failing requests still queued.

        Raises:
            NotFound: The name is not hosted.
        """
        self.get(name)
        retired: list[Batcher] = []
        with self._lock:
            for model in self._models[name].values():
                runtime, model.runtime = model.runtime, None
                if model.batcher is not None:
                    retired.append(model.batcher)
                    model.batcher = None
                model.state, model.reason = ModelState.UNAVAILABLE, "unloaded"
                if runtime is not None:
                    runtime.unload()
        return retired

    def batchers(self) -> list[Batcher]:
        """Return every live batcher (to close them at shutdown)."""
        return [m.batcher for m in self if m.batcher is not None]

    def _load_one(self, model: LoadedModel) -> list[Batcher]:
        with self._lock:
            source = model.source
            model.state, model.reason = ModelState.LOADING, "loading"
            started = self.clock.monotonic()
            try:
                with self._artifact(source) as artifact:
                    runtime = runtime_class(source.framework)(
                        RuntimeConfig(
                            artifact=artifact,
                            entrypoint=source.entrypoint,
                            signature=source.signature,
                            device=self._runtime_settings.device,
                            threads=self._runtime_settings.threads,
                        )
                    )
                    runtime.load()  # reads the whole file: the plaintext goes when this returns
                meta = runtime.metadata()
            except ModelportError as exc:
                model.state, model.reason = ModelState.UNAVAILABLE, f"load failed: {exc}"
                raise
            previous, old_batcher = model.runtime, model.batcher
            model.runtime, model.batcher = runtime, self._batcher(source, runtime)
            model.platform, model.signature = meta.platform, meta.signature
            model.load_seconds = self.clock.monotonic() - started
            model.state, model.reason = ModelState.READY, ""
            if previous is not None and previous is not runtime:
                previous.unload()
            return [old_batcher] if old_batcher is not None else []

    @staticmethod
    def _artifact(source: ModelSource) -> AbstractContextManager[Path | None]:
        if source.prepare is not None:
            return source.prepare()
        if unpickles(source.framework):
            raise ConfigError(
                f"refusing to load {source.name!r}: a {source.framework} artifact is a pickle, "
                "and unpickling runs code, so it is loaded only from a signed registration; "
                "register it with 'modelport register' and serve the registered name"
            )
        return contextlib.nullcontext(source.artifact)

    def _batcher(self, source: ModelSource, runtime: ModelRuntime) -> Batcher | None:
        settings = source.batching
        if settings is None or not settings.enabled:
            return None
        # Batches run on a thread: the event loop keeps parsing requests (which is what forms
        # the next batch) while the runtime, which releases the GIL, runs this one.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="batch")
        name = f"{source.name}:{source.version}"
        # A batch is one execution for all its requests: batched requests are recorded without
        # executions, and each model call a batcher makes counts one here, with its rows.
        executed = functools.partial(self.stats.record_batch, source.name, source.version)
        return Batcher(
            runtime.predict, settings, self.clock, self._executor, name=name, on_call=executed
        )

    def close(self) -> list[Batcher]:
        """Unload everything (at shutdown); returns the batchers for the caller to close."""
        if self._watch is not None:
            self._watch.stop()
        retired: list[Batcher] = []
        for name in list(self._models):
            retired.extend(self.unload(name))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        return retired
