"""The data plane: the Open Inference Protocol's use cases, shared by every transport.

REST routes and (later) gRPC methods parse their wire format into core types, call one method
here and serialise what it returns; no protocol logic lives in a transport.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelport.core.datatypes import from_numpy_dtype, to_numpy_dtype
from modelport.core.errors import InferenceFailed, InvalidInput, ModelNotReady
from modelport.core.inference import InferenceRequest, InferenceResponse, Tensor
from modelport.core.signature import Signature, TensorSpec, validate_inputs
from modelport.service.models import ModelRepository

__all__ = ["EXTENSIONS", "DataPlane"]

EXTENSIONS = ("binary_tensor_data", "model_repository")
"""Protocol extensions this server implements, reported by ``GET /v2``."""


class DataPlane:
    """Inference, metadata, health and repository operations over a :class:`ModelRepository`.

    Args:
        repository: The hosted models.
        server_name: Name reported by server metadata.
        server_version: Version reported by server metadata.
    """

    def __init__(
        self, repository: ModelRepository, server_name: str = "modelport", server_version: str = ""
    ) -> None:
        self.repository = repository
        self._server_name = server_name
        self._server_version = server_version

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
        """Return the model's metadata: name, versions, platform, inputs and outputs.

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
    ) -> InferenceResponse:
        """Validate ``request`` against the model's signature, run it, and shape the response.

        Args:
            name: Model name.
            version: Served version, or ``None`` for the default.
            request: Decoded request.
            deadline: Monotonic time after which the request must not start running.

        Raises:
            NotFound: Unknown model or version.
            ModelNotReady: The version is not loaded.
            InvalidInput: Inputs or requested outputs do not match the signature.
            InferenceFailed: The model failed on valid input.
        """
        model = self.repository.get_ready(name, version)
        signature = model.signature
        validate_inputs(signature, request.inputs)
        wanted = _wanted_outputs(signature, request)
        runtime = model.runtime
        if runtime is None:  # unloaded between the readiness check and now
            raise ModelNotReady(f"model {name!r} version {model.source.version} was just unloaded")
        arrays = runtime.predict({t.name: t.data for t in request.inputs}, wanted)
        outputs = [_output_tensor(name_, arrays, signature) for name_ in wanted]
        return InferenceResponse(
            model_name=name,
            model_version=model.source.version,
            id=request.id,
            outputs=outputs,
        )

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

    def load(self, name: str, parameters: dict[str, object]) -> None:
        """Load (or reload) every version of ``name``.

        Raises:
            NotFound: The model is unknown.
            ModelportError: Loading failed (integrity, missing dependency...).
        """
        self.repository.load(name, parameters)

    def unload(self, name: str) -> None:
        """Unload every version of ``name``.

        Raises:
            NotFound: The model is not hosted.
        """
        self.repository.unload(name)


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
        array = np.asarray(arrays[name])
    except KeyError:
        raise InferenceFailed(f"the model returned no output {name!r}") from None
    spec: TensorSpec | None = next((t for t in signature.outputs if t.name == name), None)
    try:
        datatype = spec.datatype if spec is not None else from_numpy_dtype(array.dtype)
    except ValueError as exc:
        raise InferenceFailed(f"output {name!r}: {exc}") from None
    dtype = to_numpy_dtype(datatype)
    if array.dtype != dtype and dtype.kind != "O":
        array = array.astype(dtype)
    return Tensor(name=name, datatype=datatype, shape=tuple(array.shape), data=array)
