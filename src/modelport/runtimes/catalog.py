"""The lazy runtime catalogue: short names to ``"module:Class"`` strings.

Nothing here imports an ML framework. :func:`runtime_class` imports the one backend module that is
asked for, and only then does that module import its framework; a missing framework becomes
:class:`DependencyMissing` with the ``pip install`` line that fixes it.

Third-party runtimes plug in without editing modelport: a distribution declares an entry point in
the ``modelport.runtimes`` group whose name is the runtime name and whose value is the
``"module:Class"`` of a :class:`ModelRuntime` subclass::

    [project.entry-points."modelport.runtimes"]
    torchscript = "modelport_torchscript:TorchScriptRuntime"

The group is read only when a name is not built in (built-in names cannot be overridden), and
nothing is imported but the one class asked for.
"""

from __future__ import annotations

import importlib
from pathlib import PurePath
from typing import Final

from modelport.core.errors import ConfigError, DependencyMissing
from modelport.runtimes.base import ModelRuntime

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXTENSIONS",
    "PLATFORMS",
    "RUNTIMES",
    "detect_framework",
    "plugin_runtimes",
    "runtime_class",
]

ENTRY_POINT_GROUP: Final = "modelport.runtimes"
"""Entry-point group where installed distributions declare runtimes: name -> ``module:Class``."""

RUNTIMES: Final[dict[str, str]] = {
    "sklearn": "modelport.runtimes.sklearn:SklearnRuntime",
    "onnx": "modelport.runtimes.onnx:OnnxRuntime",
    "xgboost": "modelport.runtimes.xgboost:XGBoostRuntime",
    "lightgbm": "modelport.runtimes.lightgbm:LightGBMRuntime",
    "python": "modelport.runtimes.python:PythonRuntime",
}
"""Runtime name -> ``"module:Class"`` of its backend."""

PLATFORMS: Final[dict[str, str]] = {
    "sklearn": "sklearn",
    "onnx": "onnxruntime_onnx",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "python": "python",
}
"""Runtime name -> platform string of the Open Inference Protocol model metadata."""

EXTENSIONS: Final[dict[str, str]] = {
    ".onnx": "onnx",
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".json": "xgboost",
    ".ubj": "xgboost",
    ".txt": "lightgbm",
    ".py": "python",
}
"""Artifact file extension (lower case) -> runtime name."""

# What to install when a backend's framework cannot be imported. scikit-learn, joblib and
# onnxruntime are base dependencies, so reinstalling modelport brings them back.
_INSTALL: Final[dict[str, str]] = {
    "sklearn": "pip install 'modelport' (scikit-learn and joblib are base dependencies)",
    "onnx": "pip install 'modelport' (onnxruntime is a base dependency)",
    "xgboost": "pip install 'modelport[xgboost]'",
    "lightgbm": "pip install 'modelport[lightgbm]'",
    "python": "pip install 'modelport'",
}


def plugin_runtimes() -> dict[str, tuple[str, str]]:
    """Return the runtimes installed distributions declare: name -> (``module:Class``, dist).

    Names that are built in are left out: a plugin cannot replace a built-in runtime.
    """
    from importlib.metadata import entry_points  # read only when a name is not built in

    found: dict[str, tuple[str, str]] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in RUNTIMES or point.name in found:
            continue
        dist = point.dist.name if point.dist is not None else "an installed distribution"
        found[point.name] = (point.value, dist)
    return found


def _names(plugins: dict[str, tuple[str, str]]) -> str:
    return ", ".join(sorted({*RUNTIMES, *plugins}))


def runtime_class(framework: str) -> type[ModelRuntime]:
    """Import and return the runtime class registered under ``framework``.

    Built-in names come from :data:`RUNTIMES`; any other name is looked up in the
    ``modelport.runtimes`` entry-point group of the installed distributions.

    Args:
        framework: A key of :data:`RUNTIMES` such as ``"onnx"``, or a plugin's name.

    Returns:
        The runtime class (not an instance).

    Raises:
        ConfigError: ``framework`` is not a known runtime name, or its target is not a
            :class:`ModelRuntime` class.
        DependencyMissing: The backend's framework (or the plugin's module) cannot be imported.
    """
    target = RUNTIMES.get(framework)
    install = _INSTALL.get(framework, "")
    if target is None:
        plugins = plugin_runtimes()
        if framework not in plugins:
            raise ConfigError(f"unknown runtime {framework!r}; expected one of {_names(plugins)}")
        target, dist = plugins[framework]
        install = f"reinstall {dist}, which declares it"
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "modelport":
            raise  # a bug in modelport itself, not a missing framework
        missing = exc.name or str(exc)
        raise DependencyMissing(
            f"the {framework} runtime needs {missing!r}, which cannot be imported ({exc}); "
            f"install it with: {install}"
        ) from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, ModelRuntime)):
        raise ConfigError(f"{target} is not a ModelRuntime class")
    return cls


def _is_python_target(artifact: str) -> bool:
    """Return whether ``artifact`` reads as ``module:Class`` or ``path.py:Class``."""
    head, sep, tail = artifact.rpartition(":")
    # A one-letter head is a Windows drive ("C:\\models\\m.onnx"), not a module.
    return bool(sep) and len(head) > 1 and tail.isidentifier()


def detect_framework(artifact: str) -> str:
    """Guess the runtime name from an artifact string.

    ``.onnx`` -> onnx; ``.joblib``/``.pkl``/``.pickle`` -> sklearn; ``.json``/``.ubj`` -> xgboost;
    ``.txt`` -> lightgbm; ``.py``, ``path.py:Class`` or ``module:Class`` -> python.

    Args:
        artifact: A file path or a Python ``module:Class`` target.

    Returns:
        A key of :data:`RUNTIMES`.

    Raises:
        ConfigError: The extension is not one of the supported ones.
    """
    if _is_python_target(artifact):
        return "python"
    suffix = PurePath(artifact).suffix.lower()
    found = EXTENSIONS.get(suffix)
    if found is None:
        supported = ", ".join(EXTENSIONS)
        raise ConfigError(
            f"cannot tell the framework of {artifact!r}: expected an artifact ending in "
            f"{supported}, or a Python 'module:Class'; name the runtime explicitly otherwise"
        )
    return found
