"""ONNX runtime: an onnxruntime ``InferenceSession`` over a ``.onnx`` file.

Device ``cpu`` runs on the CPU execution provider. Device ``gpu`` asks for the TensorRT and CUDA
providers that this onnxruntime build offers, with the CPU provider as fallback for nodes they
cannot run; when the build has neither (plain ``onnxruntime`` instead of ``onnxruntime-gpu``), or
the CUDA libraries fail to load, loading raises :class:`DependencyMissing`.

The signature comes from the session: ``tensor(float)`` is FP32, symbolic or unknown dimensions
are ``-1``. Outputs that are not tensors (the ``seq(map(...))`` probabilities of a skl2onnx
classifier converted with ZipMap, for example) cannot travel in the protocol: they are left out of
the signature and never computed. Convert with ``options={"zipmap": False}`` to get the
probabilities as a tensor. A registered signature overrides the session's.

NaN input reaches the graph only when the model declares it takes NaN as a missing value: the
metadata property ``allow_nan`` set to ``true`` (``onnx.helper.set_model_props(model,
{"allow_nan": "true"})``; the copy compiled from a scikit-learn model carries it when the
original has scikit-learn's ``allow_nan`` tag). Infinities are always refused.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import EPFail, Fail, InvalidArgument

from modelport.core.datatypes import Datatype, to_numpy_dtype
from modelport.core.errors import DependencyMissing, InferenceFailed, IntegrityError
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes._common import (
    as_float,
    coerce_output,
    decode_text,
    failed,
    first_line,
    not_ready,
    output_spec,
    refuse_non_finite,
    rejected,
    require_artifact,
    select_outputs,
)
from modelport.runtimes._ort_native import native_run
from modelport.runtimes.base import ModelRuntime, RuntimeConfig

__all__ = [
    "ALLOW_NAN_PROPERTY",
    "OnnxRuntime",
    "declares_allow_nan",
    "onnx_datatype",
    "providers_for",
    "session_signature",
]

ALLOW_NAN_PROPERTY: Final = "allow_nan"
"""Model metadata property that, set to ``true``, declares the graph takes NaN as missing."""

_TYPES: Final[dict[str, Datatype]] = {
    "tensor(bool)": Datatype.BOOL,
    "tensor(uint8)": Datatype.UINT8,
    "tensor(uint16)": Datatype.UINT16,
    "tensor(uint32)": Datatype.UINT32,
    "tensor(uint64)": Datatype.UINT64,
    "tensor(int8)": Datatype.INT8,
    "tensor(int16)": Datatype.INT16,
    "tensor(int32)": Datatype.INT32,
    "tensor(int64)": Datatype.INT64,
    "tensor(float16)": Datatype.FP16,
    "tensor(float)": Datatype.FP32,
    "tensor(double)": Datatype.FP64,
    "tensor(bfloat16)": Datatype.BF16,
    "tensor(string)": Datatype.BYTES,
}

_GPU_PROVIDERS: Final = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_CPU: Final = "CPUExecutionProvider"
# Words in an onnxruntime FAIL message that say the input, not the model, was wrong.
_SHAPE_WORDS: Final = ("shape", "dimension", "rank", "broadcast")


def onnx_datatype(onnx_type: str) -> Datatype | None:
    """Return the protocol datatype of an onnxruntime type string, ``None`` for non-tensors."""
    return _TYPES.get(onnx_type)


def providers_for(device: str, available: Collection[str]) -> list[str]:
    """Choose execution providers, best first.

    Args:
        device: ``cpu`` or ``gpu``.
        available: What ``onnxruntime.get_available_providers()`` reports.

    Returns:
        Provider names for ``InferenceSession``.

    Raises:
        DependencyMissing: ``gpu`` was asked for and neither CUDA nor TensorRT is available.
    """
    if device != "gpu":
        return [_CPU]
    gpu = [p for p in _GPU_PROVIDERS if p in available]
    if not gpu:
        raise DependencyMissing(
            "device 'gpu' needs the CUDA or TensorRT execution provider of onnxruntime, which "
            f"this installation lacks (available: {', '.join(available) or 'none'}); "
            "install onnxruntime-gpu: pip install 'modelport[gpu]'"
        )
    return [*gpu, _CPU]


def _spec(arg: Any) -> TensorSpec | None:
    datatype = onnx_datatype(str(arg.type))
    if datatype is None:
        return None
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or ()))
    return TensorSpec(name=str(arg.name), datatype=datatype, shape=shape)


def declares_allow_nan(session: Any) -> bool:
    """Whether the session's model metadata sets ``allow_nan`` to ``true`` (or ``1``/``yes``)."""
    try:
        props = session.get_modelmeta().custom_metadata_map
    except Exception:  # noqa: BLE001 - a model without readable metadata declares nothing
        return False
    return str(props.get(ALLOW_NAN_PROPERTY, "")).strip().lower() in ("true", "1", "yes")


def session_signature(session: Any) -> Signature:
    """Read the tensor inputs and outputs of an ``InferenceSession``."""
    inputs = tuple(s for s in map(_spec, session.get_inputs()) if s is not None)
    outputs = tuple(s for s in map(_spec, session.get_outputs()) if s is not None)
    return Signature(inputs=inputs, outputs=outputs)


class OnnxRuntime(ModelRuntime):
    """An ONNX model run by onnxruntime.

    Args:
        config: ``artifact`` is a ``.onnx`` file; ``device`` picks the execution providers and
            ``threads`` (when above 0) the intra-op thread count.
    """

    framework: ClassVar[str] = "onnx"
    platform: ClassVar[str] = "onnxruntime_onnx"

    def __init__(self, config: RuntimeConfig) -> None:
        super().__init__(config)
        self._session: Any = None
        self._model_inputs: dict[str, Datatype] = {}
        # Precomputed at load so predict does no per-call lookups in the signature.
        self._feed_dtypes: dict[str, np.dtype[Any]] = {}
        self._output_dtypes: dict[str, np.dtype[Any] | None] = {}
        self._input_names: frozenset[str] = frozenset()
        self._graph_signature = Signature((), ())  # what the graph itself takes
        self._direct_run: Any = None
        self._run_options: Any = None

    def load(self) -> None:
        """Create the inference session; a second call does nothing.

        Raises:
            NotFound: The artifact file does not exist.
            IntegrityError: The file is not a valid ONNX model.
            DependencyMissing: ``gpu`` was asked for and no GPU provider can run.
        """
        if self._session is not None:
            return
        path = require_artifact(self.config, self.framework)
        providers = providers_for(self.config.device, ort.get_available_providers())
        options = ort.SessionOptions()
        if self.config.threads > 0:
            options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = _open(path, options, providers)
        if self.config.device == "gpu" and not set(session.get_providers()) & set(_GPU_PROVIDERS):
            raise DependencyMissing(
                "onnxruntime offers a GPU provider but could not start it (CUDA or cuDNN "
                "libraries missing, or no visible GPU); check the CUDA installation"
            )
        model_signature = session_signature(session)
        self._model_inputs = {s.name: s.datatype for s in model_signature.inputs}
        self._feed_dtypes = {
            name: to_numpy_dtype(datatype)
            for name, datatype in self._model_inputs.items()
            if datatype in (Datatype.FP16, Datatype.FP32, Datatype.FP64)
        }
        signature = self.config.signature or model_signature
        self._output_dtypes = {
            spec.name: None if spec.datatype is Datatype.BYTES else to_numpy_dtype(spec.datatype)
            for spec in signature.outputs
        }
        self._signature = signature
        self.allow_nan = declares_allow_nan(session)
        self._graph_signature = model_signature
        self._input_names = frozenset(s.name for s in model_signature.inputs)
        self._direct_run = native_run(session)
        # One RunOptions for every run: onnxruntime takes it read-only, and builds a default one
        # per call when given None (bench/HOT_PATH.md, "ONNX Runtime").
        self._run_options = ort.RunOptions()
        self._session = session

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str]
    ) -> dict[str, np.ndarray]:
        """Run the session for the requested outputs only.

        Raises:
            ModelNotReady: The model is not loaded.
            InvalidInput: onnxruntime rejected the input (its message is kept).
            InferenceFailed: The session failed otherwise.
        """
        session, signature = self._session, self._signature
        if session is None or signature is None:
            raise not_ready(self.framework)
        wanted = select_outputs(outputs, signature.output_names())
        refuse_non_finite(inputs, self.allow_nan)
        feed_dtypes = self._feed_dtypes
        feeds = {}
        for name, array in inputs.items():
            # The common case, an input already in the graph's float type, needs no conversion
            # (numpy's built-in dtypes are singletons, so identity decides it without ``==``).
            given, target = array.dtype, feed_dtypes.get(name)
            feeds[name] = array if given is target or given == target else self._feed(name, array)
        names = list(wanted)
        values = None
        direct = self._direct_run
        if direct is not None and feeds.keys() == self._input_names:
            # The session's native run, without the Python wrapper's per-call checks (about a
            # fifth of a small model's run): the feed holds exactly the graph's inputs, which is
            # what those checks verify. Any failure goes through the public API below, which
            # words the error (or falls back to another provider) as it always does.
            try:
                values = direct(names, feeds, self._run_options)
            except Exception:  # noqa: BLE001 - answered by the public API below
                values = None
        if values is None:
            values = self._run_public(session, names, feeds)
        result: dict[str, np.ndarray] = {}
        if len(values) != len(wanted):
            raise InferenceFailed(
                f"onnxruntime returned {len(values)} outputs for the {len(wanted)} requested"
            )
        for name, value in zip(wanted, values, strict=False):  # lengths checked just above
            dtype = self._output_dtypes.get(name)
            # numpy's built-in dtypes are singletons: identity settles the common case first.
            if type(value) is np.ndarray and (
                value.dtype is dtype or (dtype is not None and value.dtype == dtype)
            ):
                result[name] = value
            else:
                result[name] = coerce_output(name, np.asarray(value), output_spec(signature, name))
        return result

    def _run_public(self, session: Any, names: list[str], feeds: dict[str, Any]) -> list[Any]:
        """Run through ``InferenceSession.run``, mapping its errors to ours."""
        try:
            values: list[Any] = session.run(names, feeds)
        except (InvalidArgument, ValueError) as exc:  # ValueError: missing or unknown feeds
            raise rejected(self.framework, feeds, self._graph_signature, exc) from exc
        except Fail as exc:
            if any(word in str(exc).lower() for word in _SHAPE_WORDS):
                raise rejected(self.framework, feeds, self._graph_signature, exc) from exc
            raise failed(self.framework, feeds, exc) from exc
        except Exception as exc:
            raise failed(self.framework, feeds, exc) from exc
        # A provider fallback inside run() replaces the native session: follow it.
        self._direct_run = native_run(session)
        return values

    def unload(self) -> None:
        """Drop the session and its memory."""
        self._session = None
        self._signature = None
        self._model_inputs = {}
        self._direct_run = None

    def _feed(self, name: str, array: np.ndarray) -> np.ndarray:
        """Convert one input to what the graph wants: text as ``str``, numbers to its float type."""
        datatype = self._model_inputs.get(name)
        if datatype is Datatype.BYTES or (datatype is None and array.dtype.kind in ("O", "S")):
            return decode_text(array)
        if datatype in (Datatype.FP16, Datatype.FP32, Datatype.FP64):
            return as_float(array, to_numpy_dtype(datatype))
        return array


def _open(path: Path, options: Any, providers: list[str]) -> Any:
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except EPFail as exc:
        raise DependencyMissing(f"an execution provider of {providers} failed: {exc}") from exc
    except Exception as exc:  # InvalidProtobuf, InvalidGraph, Fail, NoSuchFile, ...
        raise IntegrityError(f"{path} is not a valid ONNX model: {first_line(exc)}") from exc
