"""Following aliases: a server started with ``NAME@ALIAS`` serves the version the alias names now.

Each worker process runs one :class:`AliasWatch`, a daemon thread that the
:class:`~modelport.service.models.ModelRepository` starts once its models are loaded and stops
when it closes. Every ``interval`` seconds it asks an :class:`AliasSource` (the registry) which
version each followed alias points at. When an alias has moved:

1. the new version is loaded as one more version of the served name, on this thread, while
   requests keep going to the old one;
2. it is warmed: one prediction on a row of zeros, so that no client pays for its lazy
   initialisation;
3. it is promoted: the served name's default moves to it in one assignment, so every request
   from then on goes to the new version;
4. after a short grace period the old version is retired: requests naming it get "not found",
   its batcher is drained on its event loop (queued requests are answered, never failed), and
   its runtime is unloaded.

Only sources resolved from ``NAME@ALIAS`` are followed (also under a served name,
``champ=fraud@champion``); a version pinned by number never moves. A new version that fails to
load leaves the old one serving, and the next look tries again; an alias that was removed leaves
the version it last named in place (logged once).

The same look finds registered versions archived while served (an alias cannot point at an
archived version, so these are pinned ones): each is unloaded, its requests answered "not
ready: archived", as a reload of it would be refused.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Final, Protocol

import numpy as np

from modelport.core.datatypes import Datatype, to_numpy_dtype
from modelport.core.errors import ModelportError
from modelport.core.refs import ModelRef

if TYPE_CHECKING:
    from modelport.batching import Batcher
    from modelport.service.models import LoadedModel, ModelRepository, ModelSource

__all__ = ["AliasSource", "AliasWatch", "warm"]

log = logging.getLogger("modelport.server.aliases")

DRAIN_S: Final = 30.0
"""Longest wait for a replaced version's queued requests before they are failed."""


class AliasSource(Protocol):
    """Where a followed alias is read, and the source of the version it names is built."""

    def current(self, ref: ModelRef) -> int:
        """Return the version number ``ref`` (``NAME@ALIAS``) points at now.

        Raises:
            NotFound: The model or the alias no longer exists.
        """
        ...

    def source(self, followed: ModelSource, version: int) -> ModelSource:
        """Return the source of ``version``, served as ``followed`` is and following its alias.

        Raises:
            NotFound: The version does not exist.
            Conflict: The version is archived.
        """
        ...

    def archived(self, name: str, version: int) -> bool:
        """Return whether version ``version`` of the registered model ``name`` is archived.

        Raises:
            NotFound: The version does not exist.
        """
        ...


class AliasWatch:
    """Moves served names to the versions their aliases point at (see the module docstring).

    Args:
        repository: The models this process serves.
        aliases: Reads aliases and builds sources.
        interval: Seconds between two looks.
        grace: Seconds between promoting the new version and retiring the old one; by default
            the smaller of half a second and ``interval``.
    """

    def __init__(
        self,
        repository: ModelRepository,
        aliases: AliasSource,
        interval: float,
        grace: float | None = None,
    ) -> None:
        self._repository = repository
        self._aliases = aliases
        self._interval = interval
        self._grace = min(0.5, interval) if grace is None else grace
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._missing: set[str] = set()  # aliases found gone, so that each is logged once

    def start(self) -> None:
        """Start looking, in a daemon thread, if any hosted version is a registered one."""
        if self._thread is not None or not self._repository.registered():
            return
        self._thread = threading.Thread(target=self._run, name="alias-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop looking; a switch under way finishes its current step (nothing waits for it)."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll()
            except Exception:  # a bug, or the registry gone: keep serving and look again
                log.exception("following aliases failed; looking again in %.1f s", self._interval)

    def poll(self) -> list[tuple[str, str, str]]:
        """Look at every followed alias once and switch the names whose alias moved.

        Returns:
            ``(served name, old version, new version)`` of each switch made.
        """
        moves: list[tuple[str, str, str]] = []
        for model in self._repository.registered():
            source = model.source
            ref = source.registered
            if ref is None or self._stop.is_set():
                continue
            if ref.alias is None:
                self._withdraw_if_archived(model, ref)
                continue
            key = f"{source.name}={ref}"
            try:
                version = self._aliases.current(ref)
            except ModelportError as exc:
                if key not in self._missing:
                    self._missing.add(key)
                    log.warning(
                        "%s: cannot read %s (%s); still serving version %s",
                        source.name,
                        ref,
                        exc,
                        source.version,
                    )
                continue
            self._missing.discard(key)
            if str(version) != source.version and self._move(model, version):
                moves.append((source.name, source.version, str(version)))
        return moves

    def _withdraw_if_archived(self, model: LoadedModel, ref: ModelRef) -> None:
        source = model.source
        try:
            archived = model.ready and self._aliases.archived(ref.name, int(source.version))
        except ModelportError:
            return  # gone from the registry or unreachable: the next look tells
        if not archived:
            return
        withdrawn = self._repository.withdraw(source.name, source.version, "archived")
        if withdrawn is not None:
            log.warning("%s version %s was archived; unloaded", source.name, source.version)
            _drain(withdrawn)

    def _move(self, old: LoadedModel, version: int) -> bool:
        name, previous = old.source.name, old.source.version
        try:
            new, replaced = self._repository.load_source(self._aliases.source(old.source, version))
        except ModelportError as exc:
            log.error(
                "%s: %s moved to version %s, which cannot be served (%s); still serving version %s",
                name,
                old.source.registered,
                version,
                exc,
                previous,
            )
            return False
        for batcher in replaced:  # the new version was also served, pinned: its old batcher
            _drain_batcher(batcher, f"{name} version {version}")
        warm(new)
        self._repository.promote(name, previous, new.source.version)
        log.info(
            "%s: %s moved from version %s to %s", name, old.source.registered, previous, version
        )
        if self._stop.wait(self._grace):
            return True  # shutting down: closing the repository unloads the old version
        retired = self._repository.retire(name, previous)
        if retired is not None:
            _drain(retired)
        return True


def warm(model: LoadedModel) -> None:
    """Run one prediction on a row of zeros, so the first real request finds the model warm.

    Models whose inputs have unknown inner dimensions are not warmed; a model that refuses
    zeros is left as it is (its next request will tell).
    """
    runtime, signature = model.runtime, model.signature
    if runtime is None or not signature.inputs:
        return
    inputs: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        if any(d < 0 for d in spec.shape[1:]):
            return
        shape = tuple(1 if d < 0 else d for d in spec.shape)
        if spec.datatype is Datatype.BYTES:
            inputs[spec.name] = np.full(shape, b"", dtype=object)
        else:
            inputs[spec.name] = np.zeros(shape, dtype=to_numpy_dtype(spec.datatype))
    try:
        runtime.predict(inputs, ())
    except ModelportError as exc:
        log.debug("warming %s version %s: %s", model.source.name, model.source.version, exc)


def _drain(model: LoadedModel) -> None:
    """Answer what the retired version's batcher holds, then unload its runtime."""
    batcher, runtime = model.batcher, model.runtime
    model.batcher, model.runtime = None, None
    if batcher is not None:
        _drain_batcher(batcher, f"{model.source.name} version {model.source.version}")
    if runtime is not None:
        runtime.unload()


def _drain_batcher(batcher: Batcher, what: str) -> None:
    """Let ``batcher`` answer what it holds, on its own event loop, then close it."""
    loop = batcher.loop()
    try:
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(batcher.drain(DRAIN_S), loop)
            future.result(timeout=DRAIN_S + 5.0)
        elif loop is None:  # never used: nothing queued, no task to stop
            asyncio.run(batcher.close())
    except Exception:  # a closed loop at shutdown, or a drain that timed out
        log.exception("draining %s", what)
