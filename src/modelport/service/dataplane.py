"""The data plane: the Open Inference Protocol's use cases, shared by every transport.

REST routes and (later) gRPC methods parse their wire format into core types, call one method
here and serialise what it returns; no protocol logic lives in a transport.

A request with no rows (every input's first dimension 0) is answered here, the same with or
without batching and whatever the runtime: outputs of shape ``[0, ...]`` when the signature
gives every other dimension of the wanted outputs, else :class:`InvalidInput` asking for a row.
Frameworks disagree about empty input (scikit-learn refuses it, ONNX Runtime depends on the
graph), so the model is not called.

A response can carry the model's CPU time for its request (``InferenceResponse.cpu_ms``, for
the prediction log): a batched request always gets its share (by rows) of its batch's, measured
by the batcher; a request run inline on the event loop only when the caller asks (``timed``):
each read of the thread's CPU clock is a system call (0.7 us measured on a VM), and two of them
are a quarter of a tiny model's ``predict``. An empty request costs none (``0``).

A transport that traces a request passes :class:`~modelport.batching.RunMarks`, which get when
the request was queued and when its model call ran (the batcher's own readings, or two clock
reads around an inline call); without them nothing more is read or stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import thread_time_ns
from typing import Any, Protocol

import numpy as np

from modelport.batching import Batcher, RunMarks
from modelport.core.datatypes import from_numpy_dtype, to_numpy_dtype
from modelport.core.errors import (
    ConfigError,
    InferenceFailed,
    InvalidInput,
    ModelNotReady,
    ModelportError,
    NotFound,
    PayloadTooLarge,
)
from modelport.core.inference import InferenceRequest, InferenceResponse, Tensor
from modelport.core.settings import LimitSettings
from modelport.core.signature import Signature, TensorSpec, validate_inputs
from modelport.monitoring import HostedVersion, ServingMetrics
from modelport.runtimes.base import ModelRuntime
from modelport.service.models import ModelRepository
from modelport.service.stats import merge_statistics

__all__ = ["EXTENSIONS", "DataPlane", "Peers"]

EXTENSIONS = ("binary_tensor_data", "model_repository", "statistics")
"""Protocol extensions this server implements, reported by ``GET /v2``."""


class Peers(Protocol):
    """The other worker processes of this server."""

    async def broadcast(self, op: str, name: str, parameters: dict[str, object]) -> None:
        """Apply a repository change in every other worker and wait until all have."""
        ...

    async def gather_statistics(self, name: str | None, version: str | None) -> list[Any]:
        """Return every other worker's :meth:`DataPlane.model_statistics` for the same query."""
        ...


class DataPlane:
    """Inference, metadata, health and repository operations over a :class:`ModelRepository`.

    Args:
        repository: The hosted models.
        server_name: Name reported by server metadata.
        server_version: Version reported by server metadata.
        peers: Other worker processes serving the same models; repository changes made here
            are passed on to them. ``None`` in a single-process server.
        metrics: Prometheus metrics, fed from the statistics' tallies; ``None``: none.
        limits: Most rows per input and elements per request; ``None`` uses the defaults.
    """

    def __init__(
        self,
        repository: ModelRepository,
        server_name: str = "modelport",
        server_version: str = "",
        peers: Peers | None = None,
        metrics: ServingMetrics | None = None,
        limits: LimitSettings | None = None,
    ) -> None:
        limits = limits or LimitSettings()
        self.max_rows = limits.max_rows
        self.max_elements = limits.max_elements
        self.repository = repository
        self.peers = peers
        self.metrics = metrics
        self.stats = repository.stats
        if metrics is not None:
            if metrics.latency_buckets != self.stats.latency_buckets:
                raise ConfigError(
                    "the metrics' latency buckets differ from the statistics' "
                    f"({metrics.latency_buckets} and {self.stats.latency_buckets})"
                )
            metrics.follow(self.stats.tallies, self.hosted_versions)
        self._server_name = server_name
        self._server_version = server_version
        self._monotonic = repository.clock.monotonic

    def live(self) -> bool:
        """Whether the server process is up (always true once it answers)."""
        return True

    def ready(self) -> bool:
        """Whether every hosted model version is ready."""
        return self.repository.all_ready()

    def server_metadata(self) -> dict[str, Any]:
        """Return ``{"name", "version", "extensions"}``."""
        return {
            "name": self._server_name,
            "version": self._server_version,
            "extensions": list(EXTENSIONS),
        }

    def model_ready(self, name: str, version: str | None) -> bool:
        """Return whether a hosted version is ready.

        Raises:
            NotFound: Unknown model or version.
        """
        return self.repository.get(name, version).ready

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """Return the model's metadata: name, versions, platform, inputs, outputs, properties.

        Raises:
            NotFound: Unknown model or version.
            ModelNotReady: The version is not loaded, so its signature is unknown.
        """
        model = self.repository.get_ready(name, version)
        versions = [m.source.version for m in self.repository if m.source.name == name]
        return {
            "name": name,
            "versions": versions,
            "platform": model.platform,
            "inputs": [t.to_dict() for t in model.signature.inputs],
            "outputs": [t.to_dict() for t in model.signature.outputs],
            # The protocol's free-form properties (gRPC field 6): what serves this version.
            "properties": {
                "version": model.source.version,
                "runtime": model.source.framework,
                "batching": "true" if model.batcher is not None else "false",
            },
        }

    def model_signature(self, name: str, version: str | None) -> Signature:
        """Return the signature of a ready version (for decoders that need it).

        Raises:
            NotFound: Unknown model or version.
            ModelNotReady: The version is not loaded.
        """
        return self.repository.get_ready(name, version).signature

    async def infer(
        self,
        name: str,
        version: str | None,
        request: InferenceRequest,
        deadline: float | None = None,
        *,
        timed: bool = False,
        marks: RunMarks | None = None,
    ) -> InferenceResponse:
        """Validate ``request`` against the model's signature, run it, and shape the response.

        Args:
            name: Model name.
            version: Served version, or ``None`` for the default.
            request: Decoded request.
            deadline: Monotonic time after which the request must not start running.
            timed: Measure the model's CPU time of a request run inline too (``cpu_ms`` of
                the response; batched requests always carry their share).
            marks: Filled with when the request was queued and its model call ran, on the
                repository's clock (a traced request); ``None`` for none.

        Raises:
            NotFound: Unknown model or version.
            ModelNotReady: The version is not loaded.
            InvalidInput: Inputs or requested outputs do not match the signature.
            InferenceFailed: The model failed on valid input.
        """
        model = self.repository.get_ready(name, version)
        monotonic = self._monotonic
        started = monotonic()
        signature = model.signature
        served = model.source.version
        # The version's tally, which both the statistics and the metrics read: one record.
        tally = self.stats.tally(name, served)
        try:
            # One pass over the inputs: the size limits, the rows (the first input's leading
            # dimension, 1 for a scalar) and the feed the model takes.
            inputs: dict[str, np.ndarray] = {}
            elements = 0
            rows = 0
            for tensor in request.inputs:
                data = tensor.data
                shape = data.shape
                if shape and shape[0] > self.max_rows:
                    raise PayloadTooLarge(
                        f"input {tensor.name!r} has {shape[0]} rows; the limit is "
                        f"{self.max_rows} rows per request (security.limits.max_rows)"
                    )
                if not inputs:
                    rows = shape[0] if shape else 1
                elements += data.size
                inputs[tensor.name] = data
            if elements > self.max_elements:
                raise PayloadTooLarge(
                    f"the request's inputs hold {elements} elements; the limit is "
                    f"{self.max_elements} per request (security.limits.max_elements)"
                )
            validate_inputs(signature, request.inputs)
            wanted = _wanted_outputs(signature, request)
            if request.parameters:  # only the timeout parameter moves the deadline
                deadline = _deadline(request, deadline, started)
            batcher, runtime = model.batcher, model.runtime
            executions = 0 if batcher is not None else 1
            cpu_ms: float | None
            if not rows and _no_rows(inputs):
                arrays, executions = _empty_outputs(name, served, signature, wanted), 0
                cpu_ms = 0.0
            elif batcher is not None:
                arrays, cpu_ms = await batcher.submit_timed(inputs, wanted, deadline, marks)
            elif runtime is None:  # unloaded between the readiness check and now
                raise ModelNotReady(f"model {name!r} version {served} was unloaded")
            elif marks is not None:
                arrays, cpu_ms = _run_marked(runtime, inputs, wanted, marks, monotonic, timed)
            else:  # the CPU clock is read only when asked (see the module docstring)
                cpu = thread_time_ns() if timed else 0
                arrays = runtime.predict(inputs, wanted)
                cpu_ms = (thread_time_ns() - cpu) / 1e6 if timed else None
            outputs = []
            for output in wanted:
                outputs.append(_output_tensor(output, arrays, signature))
        except ModelportError as exc:
            now = monotonic()
            tally.failure(exc.kind.value, now - started, now)
            raise
        now = monotonic()
        tally.success(rows, now - started, now, executions)
        return InferenceResponse(name, outputs, served, request.id, cpu_ms=cpu_ms)

    async def statistics(self, name: str | None, version: str | None) -> list[dict[str, Any]]:
        """Return Triton-style statistics added up over every worker of this server.

        Raises:
            NotFound: ``name`` (or ``version``) is not hosted.
        """
        local = self.model_statistics(name, version)
        if self.peers is None:
            return local
        others = await self.peers.gather_statistics(name, version)
        return merge_statistics([local, *others])

    def model_statistics(self, name: str | None, version: str | None) -> list[dict[str, Any]]:
        """Return this process's Triton-style statistics of one model (version), or of all.

        Raises:
            NotFound: ``name`` (or ``version``) is not hosted.
        """
        if name is None:
            hosted = [(m.source.name, m.source.version) for m in self.repository]
        elif version is None:
            self.repository.get(name)
            hosted = [
                (m.source.name, m.source.version) for m in self.repository if m.source.name == name
            ]
        else:
            hosted = [(name, self.repository.get(name, version).source.version)]
        return [s.to_dict() for s in self.stats.snapshot(hosted)]

    def hosted_versions(self) -> list[HostedVersion]:
        """Every hosted version's load time and batch queue, as the metrics read them."""
        hosted = []
        for model in self.repository:
            batcher = model.batcher
            hosted.append(
                HostedVersion(
                    model.source.name,
                    model.source.version,
                    model.load_seconds,
                    batcher.queued_rows if batcher is not None else 0,
                    batcher.in_flight if batcher is not None else 0,
                )
            )
        return hosted

    def metrics_text(self) -> tuple[bytes, str]:
        """Return the Prometheus exposition of every worker's metrics and its content type.

        Raises:
            NotFound: Metrics are off in this server.
        """
        if self.metrics is None:
            raise NotFound("metrics are not enabled in this server")
        return self.metrics.render()

    def repository_index(self, ready_only: bool) -> list[dict[str, Any]]:
        """Return ``[{"name", "version", "state", "reason"}]`` for every hosted version."""
        return [
            {
                "name": m.source.name,
                "version": m.source.version,
                "state": m.state.value,
                "reason": m.reason,
            }
            for m in self.repository
            if m.ready or not ready_only
        ]

    async def load(self, name: str, parameters: dict[str, object]) -> None:
        """Load a version of ``name`` here and in every peer worker (see ``ModelRepository.load``).

        ``parameters`` is ``{}`` (reload every served version), ``{"version": N}`` or
        ``{"alias": A}`` (that version only); anything else is refused before any change.

        Raises:
            InvalidInput: Unknown or malformed parameters.
            NotFound: The model is unknown.
            Conflict: The version is archived.
            ModelportError: Loading failed (integrity, missing dependency...).
        """
        await self.apply("load", name, parameters)
        if self.peers is not None:
            await self.peers.broadcast("load", name, parameters)

    async def unload(self, name: str) -> None:
        """Unload every version of ``name`` here and in every peer worker.

        Requests still queued get "not ready".

        Raises:
            NotFound: The model is not hosted.
        """
        await self.apply("unload", name, {})
        if self.peers is not None:
            await self.peers.broadcast("unload", name, {})

    async def apply(self, op: str, name: str, parameters: dict[str, object]) -> None:
        """Apply a repository change to this process only (``op`` is ``load`` or ``unload``).

        Raises:
            InvalidInput: Unknown ``op``.
            NotFound: The model is unknown.
            ModelportError: Loading failed.
        """
        if op == "load":
            retired = await asyncio.to_thread(self.repository.load, name, parameters)
        elif op == "unload":
            retired = self.repository.unload(name)
        else:
            raise InvalidInput(f"unknown repository operation {op!r}; expected load or unload")
        await _close(retired)

    async def close(self) -> None:
        """Unload every model and stop the batchers (at shutdown)."""
        await _close(self.repository.close())


async def _close(batchers: list[Batcher]) -> None:
    for batcher in batchers:
        await batcher.close()


def _deadline(request: InferenceRequest, deadline: float | None, now: float) -> float | None:
    """Combine the transport's deadline with the request's ``timeout`` parameter.

    ``timeout`` is in microseconds, as Triton's clients send it; 0 means none.
    """
    timeout = request.parameters.get("timeout")
    if timeout is None:
        return deadline
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise InvalidInput(
            f"parameter 'timeout' must be a non-negative number of microseconds, got {timeout!r}"
        )
    if timeout == 0:  # 0 means no timeout, as in Triton
        return deadline
    own = now + timeout / 1e6
    return own if deadline is None else min(own, deadline)


def _run_marked(
    runtime: ModelRuntime,
    inputs: dict[str, np.ndarray],
    wanted: list[str],
    marks: RunMarks,
    monotonic: Callable[[], float],
    timed: bool,
) -> tuple[dict[str, np.ndarray], float | None]:
    """Run a traced request inline: its outputs and (``timed``) CPU time, its times in ``marks``."""
    marks.queued = marks.started = monotonic()
    cpu = thread_time_ns() if timed else 0
    arrays = runtime.predict(inputs, wanted)
    cpu_ms = (thread_time_ns() - cpu) / 1e6 if timed else None
    marks.finished = monotonic()
    return arrays, cpu_ms


def _no_rows(inputs: dict[str, np.ndarray]) -> bool:
    """Whether every input has a first dimension and it is 0 (an empty batch)."""
    return bool(inputs) and all(a.ndim and not a.shape[0] for a in inputs.values())


def _empty_outputs(
    name: str, version: str, signature: Signature, wanted: list[str]
) -> dict[str, np.ndarray]:
    """Return the wanted outputs of an empty batch: ``[0, ...]`` arrays shaped by the signature.

    Raises:
        InvalidInput: An output's other dimensions are not all known, or its first is not the
            batch (``-1``): its empty form cannot be told without running the model.
    """
    arrays: dict[str, np.ndarray] = {}
    for output in wanted:
        spec = signature.output(output)
        shape = spec.shape if spec is not None else ()
        if spec is None or not shape or shape[0] != -1 or any(d < 0 for d in shape[1:]):
            raise InvalidInput(
                f"the request has no rows; model {name!r} version {version} needs at least one "
                f"row to tell the shape of output {output!r} ({list(shape)}): send at least one "
                "row"
            )
        arrays[output] = np.empty((0, *shape[1:]), dtype=to_numpy_dtype(spec.datatype))
    return arrays


def _wanted_outputs(signature: Signature, request: InferenceRequest) -> list[str]:
    names = signature.output_names()
    if request.outputs is None:
        return list(names)
    wanted: list[str] = []
    for out in request.outputs:
        if out.name not in names:
            known = ", ".join(repr(n) for n in names) or "none"
            raise InvalidInput(f"unknown output {out.name!r} requested; the model has {known}")
        if out.name in wanted:
            raise InvalidInput(f"output {out.name!r} is requested more than once")
        wanted.append(out.name)
    return wanted


def _output_tensor(name: str, arrays: dict[str, np.ndarray], signature: Signature) -> Tensor:
    try:
        array = arrays[name]
    except KeyError:
        raise InferenceFailed(f"the model returned no output {name!r}") from None
    if type(array) is not np.ndarray:
        array = np.asarray(array)
    spec: TensorSpec | None = signature.output(name)
    if spec is not None:
        datatype = spec.datatype
    else:
        try:
            datatype = from_numpy_dtype(array.dtype)
        except ValueError as exc:
            raise InferenceFailed(f"output {name!r}: {exc}") from None
    dtype = to_numpy_dtype(datatype)
    # numpy's built-in dtypes are singletons: identity settles the common case without ``==``.
    if array.dtype is not dtype and array.dtype != dtype and dtype.kind != "O":
        array = array.astype(dtype)
    return Tensor(name, datatype, array.shape, array)
