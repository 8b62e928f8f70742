"""LightGBM runtime: a ``Booster`` saved as a text model file.

One input (the registered signature's single input, default ``"input"``), FP64
``[-1, num_feature]``; one output ``predict``, FP64, ``[-1]`` or ``[-1, k]`` for multi-class
probabilities (the shape is read from a one-row probe at load time). ``threads`` (when above 0)
becomes LightGBM's ``num_threads`` at prediction. LightGBM predicts on the CPU only (its GPU
builds speed up training), so device ``gpu`` predicts on the CPU too. NaN is the booster's
missing value and reaches it; infinities are refused.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

import lightgbm as lgb
import numpy as np

from modelport.core.datatypes import Datatype
from modelport.core.errors import ConfigError, IntegrityError
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes._common import (
    as_float,
    coerce_output,
    failed,
    first_line,
    not_ready,
    output_spec,
    pick_input,
    refuse_non_finite,
    rejected,
    require_artifact,
    select_outputs,
)
from modelport.runtimes.base import ModelRuntime, RuntimeConfig

__all__ = ["LightGBMRuntime"]

DEFAULT_INPUT: Final = "input"
OUTPUT: Final = "predict"


class LightGBMRuntime(ModelRuntime):
    """A LightGBM booster.

    Args:
        config: ``artifact`` is a LightGBM ``.txt`` model file.
    """

    framework: ClassVar[str] = "lightgbm"
    platform: ClassVar[str] = "lightgbm"

    def __init__(self, config: RuntimeConfig) -> None:
        super().__init__(config)
        self._booster: Any = None

    def load(self) -> None:
        """Read the booster; a second call does nothing.

        Raises:
            NotFound: The artifact file does not exist.
            IntegrityError: The file is not a LightGBM model.
            ConfigError: The registered signature does not fit a LightGBM model.
        """
        if self._booster is not None:
            return
        path = require_artifact(self.config, self.framework)
        try:
            booster = lgb.Booster(model_file=str(path))
        except (lgb.basic.LightGBMError, ValueError, OSError) as exc:
            raise IntegrityError(
                f"{path} is not a valid LightGBM model: {first_line(exc)}"
            ) from exc
        signature = self.config.signature or self._infer_signature(booster, path)
        if len(signature.outputs) != 1 or len(signature.inputs) > 1:
            raise ConfigError("a LightGBM model has one input and one output ('predict')")
        self._booster = booster
        self._signature = signature
        self.allow_nan = True  # NaN is the booster's missing value

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str]
    ) -> dict[str, np.ndarray]:
        """Predict with the booster.

        Raises:
            ModelNotReady: The model is not loaded.
            InvalidInput: LightGBM rejected the values (for example a wrong feature count).
            InferenceFailed: LightGBM failed otherwise.
        """
        booster, signature = self._booster, self._signature
        if booster is None or signature is None:
            raise not_ready(self.framework)
        (name,) = select_outputs(outputs, signature.output_names())
        input_name = signature.inputs[0].name if signature.inputs else DEFAULT_INPUT
        refuse_non_finite(inputs, allow_nan=True)
        x = as_float(pick_input(inputs, input_name), np.float64)
        try:
            raw = self._run(booster, x)
        except (lgb.basic.LightGBMError, ValueError) as exc:
            raise rejected(self.framework, inputs, signature, exc) from exc
        except Exception as exc:
            raise failed(self.framework, inputs, exc) from exc
        return {name: coerce_output(name, np.asarray(raw), output_spec(signature, name))}

    def unload(self) -> None:
        """Drop the booster."""
        self._booster = None
        self._signature = None

    def _run(self, booster: Any, x: np.ndarray) -> Any:
        if self.config.threads > 0:
            return booster.predict(x, num_threads=self.config.threads)
        return booster.predict(x)

    def _infer_signature(self, booster: Any, path: Path) -> Signature:
        n_features = int(booster.num_feature())
        try:
            probe = np.asarray(self._run(booster, np.zeros((1, n_features), np.float64)))
        except (lgb.basic.LightGBMError, ValueError) as exc:
            raise IntegrityError(
                f"{path}: the model cannot predict a probe row: {first_line(exc)}"
            ) from exc
        return Signature(
            inputs=(TensorSpec(DEFAULT_INPUT, Datatype.FP64, (-1, n_features)),),
            outputs=(TensorSpec(OUTPUT, Datatype.FP64, (-1, *probe.shape[1:])),),
        )
