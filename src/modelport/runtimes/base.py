"""The narrow base every runtime implements: load, predict, unload, metadata.

A runtime wraps one model artifact of one framework. It holds no orchestration: batching, input
validation against the signature and output selection by the caller happen in the service layer.

Non-finite input is the runtimes' own rule, the same for every framework: ``predict`` refuses
NaN and infinite values in floating-point inputs with :class:`InvalidInput` (see
:func:`modelport.runtimes._common.refuse_non_finite`), unless the loaded model declares that it
takes NaN as a missing value (:attr:`ModelRuntime.allow_nan`); infinities are always refused.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from modelport.core.errors import ModelNotReady
from modelport.core.signature import Signature

__all__ = ["ModelRuntime", "RuntimeConfig", "RuntimeMetadata"]


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """What a runtime needs to load one model.

    Attributes:
        artifact: Path of the artifact file (``.onnx``, ``.joblib``, ``.json``, ``.txt``, ``.py``);
            ``None`` only for a Python class importable by ``entrypoint``.
        entrypoint: For the Python runtime, ``"module:Class"`` or, with ``artifact`` a ``.py``
            file, the class name inside it. ``None`` for other runtimes.
        signature: The registered signature, if any; it overrides what the artifact says.
        device: ``cpu`` or ``gpu``.
        threads: Intra-op threads; 0 lets the framework decide.
    """

    artifact: Path | None
    entrypoint: str | None = None
    signature: Signature | None = None
    device: Literal["cpu", "gpu"] = "cpu"
    threads: int = 0


@dataclass(frozen=True, slots=True)
class RuntimeMetadata:
    """What a loaded runtime reports about its model.

    Attributes:
        platform: Platform name of the Open Inference Protocol metadata.
        signature: Inputs and outputs.
        allow_nan: Whether the model takes NaN in its inputs as a missing value.
    """

    platform: str
    signature: Signature
    allow_nan: bool = False


class ModelRuntime(ABC):
    """One model artifact loaded by one framework.

    Args:
        config: Where the artifact is and how to run it.
    """

    framework: ClassVar[str]
    """Short name in the runtime catalogue (``sklearn``, ``onnx``, ...)."""

    platform: ClassVar[str]
    """Platform name reported in Open Inference Protocol metadata (``onnxruntime_onnx``, ...)."""

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self._signature: Signature | None = None
        self.allow_nan = False
        """Whether the loaded model takes NaN as a missing value (set by ``load``); when false,
        ``predict`` refuses NaN as well as infinities."""

    @abstractmethod
    def load(self) -> None:
        """Load the artifact into memory.

        Raises:
            IntegrityError: The artifact cannot be read as a model of this framework.
            DependencyMissing: The framework or a requested execution provider is not installed.
        """

    @abstractmethod
    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str]
    ) -> dict[str, np.ndarray]:
        """Run the model.

        Args:
            inputs: Input arrays by name, already validated against the signature.
            outputs: Names of the outputs wanted (a subset of the signature's outputs); runtimes
                may skip work for outputs not asked for.

        Returns:
            Arrays by output name for at least the requested outputs.

        Raises:
            InvalidInput: The model rejected the values (for example a wrong feature count), or
                a floating-point input holds infinities, or NaN the model does not accept.
            InferenceFailed: The model failed for another reason.
        """

    @abstractmethod
    def unload(self) -> None:
        """Release the model and its memory; ``load`` may be called again afterwards."""

    def metadata(self) -> RuntimeMetadata:
        """Return the platform and signature of the loaded model (``load`` sets ``_signature``).

        Raises:
            ModelNotReady: The model is not loaded.
        """
        if self._signature is None:
            raise ModelNotReady(f"the {self.framework} model is not loaded; call load() first")
        return RuntimeMetadata(self.platform, self._signature, self.allow_nan)
