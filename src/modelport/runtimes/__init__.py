"""Model runtimes: one module per framework behind :class:`ModelRuntime`, found by name.

Importing this package imports no ML framework. :func:`runtime_class` imports the chosen backend
(``modelport.runtimes.sklearn``, ``.onnx``, ``.xgboost``, ``.lightgbm``, ``.python``) on demand::

    cls = runtime_class(detect_framework("model.onnx"))
    runtime = cls(RuntimeConfig(artifact=Path("model.onnx")))
    runtime.load()
    runtime.predict({"X": batch}, ["probabilities"])
"""

from __future__ import annotations

from modelport.runtimes.base import ModelRuntime, RuntimeConfig, RuntimeMetadata
from modelport.runtimes.catalog import (
    EXTENSIONS,
    PLATFORMS,
    RUNTIMES,
    detect_framework,
    runtime_class,
)
from modelport.runtimes.sample_signature import SAMPLE_FORMATS, load_sample, signature_from_sample

__all__ = [
    "EXTENSIONS",
    "PLATFORMS",
    "RUNTIMES",
    "SAMPLE_FORMATS",
    "ModelRuntime",
    "RuntimeConfig",
    "RuntimeMetadata",
    "signature_from_sample",
    "detect_framework",
    "load_sample",
    "runtime_class",
]
