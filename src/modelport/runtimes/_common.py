"""Helpers shared by the runtime backends; imports no ML framework.

Conventions every backend follows:

* An empty ``outputs`` collection given to ``predict`` means "every output of the signature".
* Text leaves a runtime as BYTES: a numpy ``object`` array of ``bytes``.
* A missing artifact file is :class:`NotFound`; an unreadable one is :class:`IntegrityError`.
* ``predict`` first calls :func:`refuse_non_finite` on its inputs.
* A framework's own error text (node names, estimator classes, stack traces) stays in the server
  log: what the caller is told is built by :func:`rejected` (what was given, what the model
  expects) or :func:`failed`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from modelport.core.datatypes import Datatype, from_numpy_dtype, to_numpy_dtype
from modelport.core.errors import (
    ConfigError,
    InferenceFailed,
    InvalidInput,
    ModelNotReady,
    NotFound,
)
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes.base import RuntimeConfig

__all__ = [
    "as_float",
    "coerce_output",
    "decode_text",
    "failed",
    "first_line",
    "not_ready",
    "output_spec",
    "pick_input",
    "refuse_non_finite",
    "rejected",
    "require_artifact",
    "select_outputs",
    "to_bytes_array",
]


log = logging.getLogger("modelport.runtimes")

# Read on every request: module globals, not attribute lookups.
_isfinite = np.isfinite
_finite = math.isfinite
_SMALL = 64
"""Inputs of at most this many values are checked value by value in Python."""


def _given(inputs: Mapping[str, np.ndarray]) -> str:
    parts = []
    for name, array in inputs.items():
        try:
            datatype = from_numpy_dtype(array.dtype).value
        except ValueError:
            datatype = str(array.dtype)
        parts.append(f"{name!r} {datatype} {list(array.shape)}")
    return ", ".join(parts) or "no inputs"


def rejected(
    framework: str, inputs: Mapping[str, np.ndarray], expected: Signature, exc: BaseException
) -> InvalidInput:
    """Return the error for input the framework refused, worded without the framework's text.

    The framework's message is logged (it may name graph nodes or estimator classes); the
    caller learns what it sent and what the model takes.

    Args:
        framework: Runtime name, for the log.
        inputs: What the model was given.
        expected: The inputs the model itself takes (its own signature, not a looser one).
        exc: The framework's exception.
    """
    log.info("%s rejected the input (%s): %s", framework, _given(inputs), first_line(exc))
    takes = ", ".join(f"{s.name!r} {s.datatype.value} {list(s.shape)}" for s in expected.inputs)
    wants = f"it expects {takes} (-1 = any size)" if takes else "check the model's metadata"
    return InvalidInput(f"the model rejected the input ({_given(inputs)}); {wants}")


def failed(framework: str, inputs: Mapping[str, np.ndarray], exc: BaseException) -> InferenceFailed:
    """Return the error for a model that failed on valid input; the details go to the log."""
    log.warning("%s failed on the input (%s)", framework, _given(inputs), exc_info=exc)
    return InferenceFailed(
        f"the model failed on the input ({_given(inputs)}); the server log has the details"
    )


def require_artifact(config: RuntimeConfig, framework: str) -> Path:
    """Return the artifact path of ``config`` after checking that the file exists.

    Raises:
        ConfigError: No artifact is configured.
        NotFound: The file does not exist.
    """
    if config.artifact is None:
        raise ConfigError(f"the {framework} runtime needs an artifact file; none was given")
    path = Path(config.artifact)
    if not path.is_file():
        raise NotFound(f"model artifact {str(path)!r} does not exist or is not a file")
    return path


def not_ready(framework: str) -> ModelNotReady:
    """Return the error raised when a runtime is used before ``load`` or after ``unload``."""
    return ModelNotReady(f"the {framework} model is not loaded; call load() first")


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's text (native libraries append stack traces)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def select_outputs(requested: Collection[str], available: tuple[str, ...]) -> tuple[str, ...]:
    """Resolve the outputs to compute.

    Args:
        requested: Output names asked for; empty means all.
        available: The outputs the model has, in signature order.

    Returns:
        The names to compute, without duplicates.

    Raises:
        InvalidInput: A requested name is not an output of the model.
    """
    if not requested:
        return available
    if len(requested) == 1:  # the common request, checked without building a list
        (name,) = requested
        if name in available:
            return (name,)
    unknown = [name for name in requested if name not in available]
    if unknown:
        have = ", ".join(repr(n) for n in available) or "none"
        raise InvalidInput(f"unknown output {unknown[0]!r}; the model has {have}")
    return tuple(dict.fromkeys(requested))


def pick_input(inputs: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """Return the input called ``name``, or the only input given when its name differs.

    Raises:
        InvalidInput: The input is missing and there is not exactly one other input.
    """
    if name in inputs:
        return inputs[name]
    if len(inputs) == 1:
        return next(iter(inputs.values()))
    given = ", ".join(repr(n) for n in inputs) or "none"
    raise InvalidInput(f"missing input {name!r}; got {given}")


def refuse_non_finite(inputs: Mapping[str, np.ndarray], allow_nan: bool) -> None:
    """Refuse NaN (unless ``allow_nan``) and infinities in the floating-point inputs.

    Integer, boolean and text inputs cannot hold either and are not looked at; a float input
    costs one pass (the sum of a small one's values, ``np.isfinite`` over a larger one), and only
    one that fails is looked at again, exactly, to word the error.

    Args:
        inputs: Input arrays by name.
        allow_nan: The model takes NaN as a missing value.

    Raises:
        InvalidInput: An input holds a value the model does not accept; the message names it.
    """
    for name, array in inputs.items():
        if array.dtype.kind != "f":
            continue
        if array.size <= _SMALL:
            # A few values: their sum in Python beats numpy calls. A NaN or an infinity makes
            # it non-finite; so can huge finite values (a float64 overflow), which the exact
            # check below then lets through.
            finite = _finite(sum(array.ravel().tolist()))
        else:
            finite = bool(_isfinite(array).all())
        if not finite:
            _check_values(name, array, allow_nan)


def _check_values(name: str, array: np.ndarray, allow_nan: bool) -> None:
    has_inf = bool(np.isinf(array).any())
    if has_inf and allow_nan:
        raise InvalidInput(
            f"input {name!r} contains inf; the model takes NaN as a missing value but no "
            "infinite values: send finite numbers or NaN"
        )
    if has_inf or (not allow_nan and np.isnan(array).any()):
        raise InvalidInput(
            f"input {name!r} contains {'inf' if has_inf else 'NaN'}; the model does not accept "
            "non-finite values (NaN, inf): send finite numbers, or impute missing values "
            "before sending"
        )


def decode_text(array: np.ndarray) -> np.ndarray:
    """Turn an array of ``bytes``/``str`` into an ``object`` array of ``str`` (UTF-8).

    Raises:
        InvalidInput: An element is not valid UTF-8 or not text at all.
    """
    out = np.empty(array.shape, dtype=object)
    flat_in = array.reshape(-1)
    flat_out = out.reshape(-1)
    for i, item in enumerate(flat_in):
        if isinstance(item, bytes | np.bytes_):
            try:
                flat_out[i] = bytes(item).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"BYTES element {i} is not valid UTF-8: {exc}") from None
        elif isinstance(item, str):
            flat_out[i] = str(item)
        else:
            raise InvalidInput(f"BYTES element {i} is {type(item).__name__}, expected bytes")
    return out


def to_bytes_array(array: np.ndarray) -> np.ndarray:
    """Return text-like values as an ``object`` array of UTF-8 ``bytes``; other arrays unchanged."""
    if array.dtype.kind not in ("U", "S", "O"):
        return array
    out = np.empty(array.shape, dtype=object)
    flat_out = out.reshape(-1)
    for i, item in enumerate(array.reshape(-1)):
        if isinstance(item, bytes | np.bytes_):
            flat_out[i] = bytes(item)
        else:
            flat_out[i] = str(item).encode("utf-8")
    return out


def as_float(array: np.ndarray, dtype: npt.DTypeLike) -> np.ndarray:
    """Cast a numeric array to the float dtype a model needs, copying only when required.

    Non-numeric arrays are returned unchanged so that the framework reports the problem.
    """
    if array.dtype.kind in ("b", "i", "u", "f"):
        return np.asarray(array, dtype=dtype)
    return array


def coerce_output(name: str, array: np.ndarray, spec: TensorSpec | None) -> np.ndarray:
    """Convert one output to the datatype its signature declares (text always to BYTES).

    Raises:
        InferenceFailed: The values cannot be represented in the declared datatype.
    """
    if spec is None or spec.datatype is Datatype.BYTES:
        return to_bytes_array(array)
    try:
        return np.asarray(array, dtype=to_numpy_dtype(spec.datatype))
    except (TypeError, ValueError) as exc:
        raise InferenceFailed(
            f"output {name!r} cannot be converted to {spec.datatype.value}: {exc}"
        ) from None


def output_spec(signature: Signature, name: str) -> TensorSpec | None:
    """Return the output spec called ``name``, if any."""
    return next((t for t in signature.outputs if t.name == name), None)
