"""XGBoost runtime: a ``Booster`` saved as ``.json`` or ``.ubj``.

One input (the registered signature's single input, default ``"input"``), FP32
``[-1, num_features]``; one output ``predict``, FP32, ``[-1]`` for regression and binary models or
``[-1, k]`` for multi-class probabilities (the shape is read from a one-row probe at load time).
Device ``gpu`` sets ``device="cuda"`` on the booster and needs an xgboost build with CUDA.
NaN is the booster's missing value and reaches it; infinities are refused.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import xgboost as xgb

from modelport.core.datatypes import Datatype
from modelport.core.errors import (
    ConfigError,
    DependencyMissing,
    IntegrityError,
)
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

__all__ = ["XGBoostRuntime"]

DEFAULT_INPUT: Final = "input"
OUTPUT: Final = "predict"


class XGBoostRuntime(ModelRuntime):
    """An XGBoost booster.

    Args:
        config: ``artifact`` is a ``.json`` or ``.ubj`` model file; ``threads`` (when above 0)
            sets ``nthread``.
    """

    framework: ClassVar[str] = "xgboost"
    platform: ClassVar[str] = "xgboost"

    def __init__(self, config: RuntimeConfig) -> None:
        super().__init__(config)
        self._booster: Any = None

    def load(self) -> None:
        """Read the booster; a second call does nothing.

        Raises:
            NotFound: The artifact file does not exist.
            IntegrityError: The file is not an XGBoost model.
            DependencyMissing: ``gpu`` was asked for and this xgboost has no CUDA support.
            ConfigError: The registered signature does not fit an XGBoost model.
        """
        if self._booster is not None:
            return
        path = require_artifact(self.config, self.framework)
        params: dict[str, Any] = {}
        if self.config.threads > 0:
            params["nthread"] = self.config.threads
        if self.config.device == "gpu":
            if not xgb.build_info().get("USE_CUDA", False):
                raise DependencyMissing(
                    "device 'gpu' needs an xgboost build with CUDA support; "
                    "install it with: pip install 'modelport[xgboost]' on Linux x86-64 or aarch64"
                )
            params["device"] = "cuda"
        booster = _open(path, params)
        signature = self.config.signature or _infer_signature(booster, path)
        if len(signature.outputs) != 1 or len(signature.inputs) > 1:
            raise ConfigError("an XGBoost model has one input and one output ('predict')")
        self._booster = booster
        self._signature = signature
        self.allow_nan = True  # NaN is the booster's missing value

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str]
    ) -> dict[str, np.ndarray]:
        """Predict with the booster.

        Raises:
            ModelNotReady: The model is not loaded.
            InvalidInput: XGBoost rejected the values (wrong feature count, non-numeric data).
            InferenceFailed: XGBoost failed otherwise.
        """
        booster, signature = self._booster, self._signature
        if booster is None or signature is None:
            raise not_ready(self.framework)
        (name,) = select_outputs(outputs, signature.output_names())
        input_name = signature.inputs[0].name if signature.inputs else DEFAULT_INPUT
        refuse_non_finite(inputs, allow_nan=True)
        x = as_float(pick_input(inputs, input_name), np.float32)
        try:
            raw = _run(booster, x, gpu=self.config.device == "gpu")
        except ValueError as exc:
            raise rejected(self.framework, inputs, signature, exc) from exc
        except xgb.core.XGBoostError as exc:
            raise failed(self.framework, inputs, exc) from exc
        return {name: coerce_output(name, np.asarray(raw), output_spec(signature, name))}

    def unload(self) -> None:
        """Drop the booster."""
        self._booster = None
        self._signature = None


def _open(path: Path, params: dict[str, Any]) -> Any:
    try:
        # From bytes, so that the format is told by content: registry artifacts have no suffix.
        return xgb.Booster(params=params, model_file=bytearray(path.read_bytes()))
    except (xgb.core.XGBoostError, ValueError, TypeError, OSError) as exc:
        raise IntegrityError(f"{path} is not a valid XGBoost model: {first_line(exc)}") from exc


def _run(booster: Any, x: np.ndarray, *, gpu: bool) -> Any:
    if gpu:
        # inplace_predict with host memory on a CUDA booster warns and falls back to a DMatrix
        # anyway; build the DMatrix ourselves and skip the warning.
        return booster.predict(xgb.DMatrix(x))
    return booster.inplace_predict(x)


def _infer_signature(booster: Any, path: Path) -> Signature:
    n_features = int(booster.num_features())
    try:
        # A DMatrix probe works on either device without a device-mismatch warning.
        probe = np.asarray(booster.predict(xgb.DMatrix(np.zeros((1, n_features), np.float32))))
        tail = tuple(int(d) for d in probe.shape[1:])
    except (ValueError, xgb.core.XGBoostError) as exc:
        raise IntegrityError(
            f"{path}: the model cannot predict a probe row: {first_line(exc)}"
        ) from exc
    return Signature(
        inputs=(TensorSpec(DEFAULT_INPUT, Datatype.FP32, (-1, n_features)),),
        outputs=(TensorSpec(OUTPUT, Datatype.FP32, (-1, *tail)),),
    )
