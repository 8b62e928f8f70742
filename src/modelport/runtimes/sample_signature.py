"""Derive a signature by running a loaded runtime on a sample, and read samples from files.

Used when an artifact does not say enough about itself (a Python class without a ``signature``,
a text pipeline): registration can run the model once on a sample file and record what went in
and what came out, with the first (batch) dimension made variable.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np

from modelport.core.errors import ConfigError, InferenceFailed
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes._common import to_bytes_array
from modelport.runtimes.base import ModelRuntime

__all__ = ["SAMPLE_FORMATS", "signature_from_sample", "load_sample"]

SAMPLE_FORMATS: Final = (".npy", ".npz", ".json", ".csv")
"""File extensions :func:`load_sample` reads."""

DEFAULT_INPUT: Final = "input"


def signature_from_sample(runtime: ModelRuntime, sample: Mapping[str, np.ndarray]) -> Signature:
    """Run ``runtime`` on ``sample`` and describe its inputs and outputs.

    Input datatypes come from the runtime's own signature where it names the input (so an FP32
    ONNX model stays FP32 when the sample was read as float64), otherwise from the sample. A
    single sample input whose name differs from the runtime's single input is renamed to it.
    Outputs are all the runtime's signature lists or, when that is empty (a Python class without
    a signature), all the model returns.

    Args:
        runtime: A loaded runtime.
        sample: Input arrays by name, at least one row each.

    Returns:
        The signature, with the first dimension of every tensor made ``-1``.

    Raises:
        ModelNotReady: The runtime is not loaded.
        ConfigError: The sample is empty.
        InvalidInput: The model rejected the sample.
        InferenceFailed: The model failed, or returned an output with no protocol datatype.
    """
    if not sample:
        raise ConfigError("the sample has no inputs")
    own = runtime.metadata().signature
    arrays = dict(sample)
    if len(arrays) == 1 and len(own.inputs) == 1:
        arrays = {own.inputs[0].name: next(iter(arrays.values()))}
    results = runtime.predict(arrays, own.output_names())
    inputs = []
    for name, array in arrays.items():
        spec = TensorSpec.from_array(name, np.asarray(array))
        declared = own.input(name)
        if declared is not None:
            spec = TensorSpec(name=name, datatype=declared.datatype, shape=spec.shape)
        inputs.append(spec)
    outputs = []
    for name, array in results.items():
        try:
            outputs.append(TensorSpec.from_array(name, np.asarray(array)))
        except ValueError as exc:
            raise InferenceFailed(f"output {name!r}: {exc}") from exc
    return Signature(inputs=tuple(inputs), outputs=tuple(outputs))


def load_sample(path: Path) -> dict[str, np.ndarray]:
    """Read sample inputs from a file.

    Formats: ``.npy`` (one array, named ``"input"``), ``.npz`` (arrays by name), ``.json`` (a
    list is the single ``"input"``; an object maps names to nested lists; numbers become float64,
    booleans BOOL, strings BYTES) and ``.csv`` (numbers only, an optional header row, read as the
    single float64 ``"input"``).

    Args:
        path: The sample file.

    Returns:
        Arrays by input name.

    Raises:
        ConfigError: The file is missing, of another format, or malformed; the message names the
            file and the expected formats.
    """
    suffix = path.suffix.lower()
    readers = {".npy": _read_npy, ".npz": _read_npz, ".json": _read_json, ".csv": _read_csv}
    reader = readers.get(suffix)
    if reader is None:
        raise _bad(path, f"unsupported extension {suffix or '(none)'!r}")
    if not path.is_file():
        raise _bad(path, "no such file")
    try:
        sample = reader(path)
    except ConfigError:
        raise
    except (OSError, ValueError, TypeError) as exc:  # numpy, json and csv all raise ValueError
        raise _bad(path, f"{type(exc).__name__}: {exc}") from exc
    if not sample:
        raise _bad(path, "it holds no arrays")
    return sample


def _bad(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"cannot read sample {str(path)!r}: {why}; expected one of "
        f"{', '.join(SAMPLE_FORMATS)} (.npy one array, .npz named arrays, .json a list or an "
        "object of name to nested list, .csv numbers with an optional header row)"
    )


def _read_npy(path: Path) -> dict[str, np.ndarray]:
    # allow_pickle=False: a sample must not be able to run code.
    return {DEFAULT_INPUT: np.load(path, allow_pickle=False)}


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _read_json(path: Path) -> dict[str, np.ndarray]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(raw, list):
        return {DEFAULT_INPUT: _from_nested(path, DEFAULT_INPUT, raw)}
    if isinstance(raw, dict):
        return {str(k): _from_nested(path, str(k), v) for k, v in raw.items()}
    raise _bad(path, f"the JSON top level is a {type(raw).__name__}, not a list or object")


def _from_nested(path: Path, name: str, value: Any) -> np.ndarray:
    array = np.array(value)
    kind = array.dtype.kind
    if kind == "b":
        return array
    if kind in ("i", "u", "f"):
        return array.astype(np.float64)
    if kind == "U":
        return to_bytes_array(array)
    raise _bad(path, f"{name!r} mixes types or holds null/objects (numpy dtype {array.dtype})")


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # a header row
    if not rows:
        raise _bad(path, "no data rows")
    width = len(rows[0])
    values: list[list[float]] = []
    for line, row in enumerate(rows, start=1):
        if len(row) != width or not _numeric(row):
            raise _bad(path, f"data row {line} is not {width} numbers: {row}")
        values.append([float(cell) for cell in row])
    return {DEFAULT_INPUT: np.asarray(values, dtype=np.float64)}


def _numeric(row: list[str]) -> bool:
    try:
        for cell in row:
            float(cell)
    except ValueError:
        return False
    return True
