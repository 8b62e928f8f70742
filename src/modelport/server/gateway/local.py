"""The in-process backend of ``modelport up``: variants served by this process's runtimes.

A deployment without ``spec.replicas`` is served here: each variant's version is loaded into
the process's :class:`DataPlane` (when its route is built, off the event loop) and a request is
decoded and answered in the same process, with no network hop. The answer names the deployment.
With tracing on, the request's ``parse``, ``queue`` and ``inference`` spans are recorded under
the gateway's request span (:mod:`modelport.server.tracing`).
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from modelport.batching import Batcher, RunMarks
from modelport.core.errors import InvalidInput, NotFound
from modelport.core.inference import InferenceRequest
from modelport.protocol.rest import decode_infer_request, decode_raw_input, encode_infer_response
from modelport.server.tracing import current
from modelport.service.dataplane import DataPlane
from modelport.service.gateway import Answer, Call
from modelport.service.models import ModelSource

if TYPE_CHECKING:
    from modelport.server._otel import Tracing

__all__ = ["LocalBackend"]


class LocalBackend:
    """Variants served by the in-process :class:`DataPlane`.

    Args:
        dataplane: This process's data plane.
        source: The loadable source of ``(model, version)`` (the registry's).
    """

    def __init__(self, dataplane: DataPlane, source: Callable[[str, str], ModelSource]) -> None:
        self.dp = dataplane
        self._source = source
        self._replaced: list[Batcher] = []
        self._tracing = current()  # this process's, set up before the worker builds anything

    def prepare(self, model: str, version: str) -> None:
        """Load ``model@version`` unless this process serves it already (blocking)."""
        repository = self.dp.repository
        try:
            if repository.get(model, version).ready:
                return
        except NotFound:  # not hosted yet: load it below
            pass
        _, replaced = repository.load_source(self._source(model, version))
        self._replaced += replaced  # drained on the event loop by close()

    async def infer(self, model: str, version: str, call: Call) -> Answer:
        """Decode ``call``, run it, encode the answer under the deployment's name.

        The answer carries the model's CPU time for the request (``cpu_ms``), measured by the
        data plane for the prediction log.
        """
        if self._tracing is not None and self._tracing.recording():
            return await self._infer_traced(self._tracing, model, version, call)
        request = call.request or self._decode(model, version, call)
        response = await self.dp.infer(model, version, request, timed=True)
        response.model_name = call.deployment
        body, json_length = encode_infer_response(response, request)
        return Answer(200, body, json_length, response.model_version, None, response.cpu_ms)

    async def _infer_traced(self, tracing: Tracing, model: str, version: str, call: Call) -> Answer:
        """:meth:`infer`, its stages recorded under the current (the gateway's) span."""
        started = monotonic()
        request = call.request or self._decode(model, version, call)
        parsed, marks = monotonic(), RunMarks()
        try:
            response = await self.dp.infer(model, version, request, timed=True, marks=marks)
        finally:
            tracing.stages((started, parsed), marks, model, version)
        response.model_name = call.deployment
        body, json_length = encode_infer_response(response, request)
        return Answer(200, body, json_length, response.model_version, None, response.cpu_ms)

    def _decode(self, model: str, version: str, call: Call) -> InferenceRequest:
        if call.header_length == 0:
            signature = self.dp.model_signature(model, version)
            if len(signature.inputs) != 1:
                raise InvalidInput(
                    "Inference-Header-Content-Length: 0 sends one raw input, but deployment "
                    f"{call.deployment!r} serves a model with {len(signature.inputs)} inputs; "
                    "send a JSON header"
                )
            return decode_raw_input(call.body, signature.inputs[0])
        return decode_infer_request(call.body, call.header_length)

    async def metadata(self, model: str, version: str, call: Call) -> dict[str, Any]:
        """The version's metadata."""
        return self.dp.model_metadata(model, version)

    async def model_ready(self, model: str, version: str, call: Call) -> bool:
        """Whether the version is loaded and ready."""
        return self.dp.model_ready(model, version)

    def ready(self) -> bool:
        """Always: an in-process backend is up while the process is."""
        return True

    async def close(self) -> None:
        """Drain the batchers of versions that were reloaded (the data plane closes the rest)."""
        replaced, self._replaced = self._replaced, []
        for batcher in replaced:
            await batcher.close()
