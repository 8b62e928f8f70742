"""ONNX Runtime's native session ``run``, behind a version check with the public API as fallback.

``InferenceSession.run`` checks the feed's names, graph capture and value ownership in Python,
then calls its native session's ``run(output_names, feeds, run_options)``, reachable as the
private attribute ``session._sess``. The ONNX runtime calls that native ``run`` directly when the
feed is exactly the graph's inputs, as numpy arrays: those checks would pass anyway (about a fifth
of a small model's run). It is a private attribute, so it is used only for ONNX Runtime versions
this was written against (:data:`ORT_VERSIONS`) and only when it is there and callable; anything
else gets ``None``, and the caller uses the public ``session.run``. A failure of the native run
also goes through the public API, which words the error (or falls back to another provider).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import onnxruntime as ort

__all__ = ["ORT_PROBLEM", "ORT_VERSIONS", "native_run", "ort_problem"]

log = logging.getLogger(__name__)

ORT_VERSIONS: Final = ((1, 17), (2, 0))
"""ONNX Runtime versions (from, before) the native run is used with: the range pyproject.toml
allows. Written against 1.32, whose ``InferenceSession.run`` ends in
``self._sess.run(output_names, input_feed, run_options)``; at another version the attribute is
looked up at load, and a native run that fails goes through the public API."""

NativeRun = Callable[[list[str], dict[str, Any], Any], list[Any]]
"""``run(output_names, feeds, run_options)`` of the native session."""


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def ort_problem(version: str) -> str | None:
    """Say why the native run is not used with ONNX Runtime ``version``; ``None`` if it is."""
    low, high = ORT_VERSIONS
    if low <= _version(version) < high:
        return None
    shown = ".".join(map(str, low)), ".".join(map(str, high))
    return f"onnxruntime {version} is not between {shown[0]} and {shown[1]} (exclusive)"


ORT_PROBLEM: Final = ort_problem(ort.__version__)
"""Why the native run is not used with the installed ONNX Runtime, or ``None``."""
_warned: list[str] = []


def native_run(session: Any, problem: str | None = ORT_PROBLEM) -> NativeRun | None:
    """Return ``session``'s native ``run``, or ``None``: then use the public ``session.run``.

    Args:
        session: An ``onnxruntime.InferenceSession``.
        problem: Why the native run is not to be used (:data:`ORT_PROBLEM`).
    """
    if problem is not None:
        if problem not in _warned:
            _warned.append(problem)
            log.warning("%s; ONNX models run through the public InferenceSession.run", problem)
        return None
    run = getattr(getattr(session, "_sess", None), "run", None)
    return run if callable(run) else None
