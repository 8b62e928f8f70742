"""Python runtime: a user class with ``predict(inputs) -> outputs``.

The class is created without arguments and may look like this::

    class Model:
        signature = {  # optional: attribute or method, metadata form
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        }

        def load(self) -> None:  # optional: read weights, warm caches
            ...

        def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"y": inputs["x"].sum(axis=1)}

It is found either in a Python source file (``config.artifact``, with ``config.entrypoint`` the
class name; the file is imported under a unique module name whatever its suffix, since registry
artifacts have none, and its folder is not put on ``sys.path``) or by
``config.entrypoint = "package.module:Class"`` with no artifact.

The signature is the registered one, else the class's, else empty (see
:func:`modelport.runtimes.sample_signature.signature_from_sample` to derive one from a sample).
``predict`` must return a dict of arrays (anything ``np.asarray`` turns into numbers or text);
text leaves as BYTES. A
:class:`~modelport.core.errors.ModelportError` raised by the model passes through unchanged, a
``ValueError`` becomes :class:`InvalidInput`, anything else :class:`InferenceFailed`.

Floating-point inputs holding NaN or infinities are refused before ``predict`` is called; a
class attribute ``allow_nan = True`` lets NaN (a missing value) through.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from modelport.core.errors import (
    ConfigError,
    InferenceFailed,
    IntegrityError,
    InvalidInput,
    ModelportError,
)
from modelport.core.signature import Signature
from modelport.runtimes._common import (
    coerce_output,
    not_ready,
    output_spec,
    refuse_non_finite,
    require_artifact,
    select_outputs,
    to_bytes_array,
)
from modelport.runtimes.base import ModelRuntime, RuntimeConfig

__all__ = ["PythonRuntime"]

_EMPTY = Signature(inputs=(), outputs=())


class PythonRuntime(ModelRuntime):
    """A model written as a plain Python class.

    Args:
        config: ``artifact`` a ``.py`` file and ``entrypoint`` a class name in it, or ``artifact``
            ``None`` and ``entrypoint`` ``"module:Class"``.
    """

    framework: ClassVar[str] = "python"
    platform: ClassVar[str] = "python"

    def __init__(self, config: RuntimeConfig) -> None:
        super().__init__(config)
        self._model: Any = None
        self._module_name: str | None = None

    def load(self) -> None:
        """Import the class, create it and call its ``load()``; a second call does nothing.

        Raises:
            ConfigError: The entrypoint is missing or names no module, class or ``predict``.
            NotFound: The ``.py`` file does not exist.
            IntegrityError: Importing, creating or loading the model raised.
        """
        if self._model is not None:
            return
        try:
            cls, where = self._resolve()
            model = _create(cls, where)
            signature = self.config.signature or _class_signature(model, where) or _EMPTY
        except Exception:
            self._forget_module()
            raise
        self._signature = signature
        self._model = model
        self.allow_nan = getattr(model, "allow_nan", False) is True

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str]
    ) -> dict[str, np.ndarray]:
        """Call the model's ``predict`` and return the requested outputs as arrays.

        Args:
            inputs: Input arrays by name.
            outputs: Output names wanted; empty means all the signature lists or, without a
                signature, all the model returns.

        Raises:
            ModelNotReady: The model is not loaded.
            InvalidInput: The model raised ``ValueError`` or :class:`InvalidInput`.
            InferenceFailed: The model raised otherwise or returned something that is not a dict
                of arrays.
        """
        model, signature = self._model, self._signature
        if model is None or signature is None:
            raise not_ready(self.framework)
        known = signature.output_names()
        wanted = select_outputs(outputs, known) if known else tuple(dict.fromkeys(outputs))
        refuse_non_finite(inputs, self.allow_nan)
        try:
            result = model.predict(dict(inputs))
        except ModelportError:
            raise
        except ValueError as exc:
            raise InvalidInput(f"the model rejected the input: {exc}") from exc
        except Exception as exc:
            raise InferenceFailed(f"the model raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(result, Mapping):
            raise InferenceFailed(
                f"predict() returned {type(result).__name__}; "
                "expected a dict of output name to array"
            )
        names = wanted or tuple(result)
        missing = [n for n in names if n not in result]
        if missing:
            got = ", ".join(repr(k) for k in result) or "nothing"
            raise InferenceFailed(f"predict() returned no output {missing[0]!r}; it returned {got}")
        return {
            str(n): coerce_output(n, _to_array(n, result[n]), output_spec(signature, n))
            for n in names
        }

    def unload(self) -> None:
        """Drop the model instance and forget the module imported from a file."""
        self._model = None
        self._signature = None
        self._forget_module()

    def _forget_module(self) -> None:
        if self._module_name is not None:
            sys.modules.pop(self._module_name, None)
            self._module_name = None

    def _resolve(self) -> tuple[Any, str]:
        """Return the model class and a description of where it came from."""
        entry = self.config.entrypoint
        if self.config.artifact is not None:
            path = require_artifact(self.config, self.framework)
            if not entry:
                raise ConfigError(f"name the model class in {path} with the entrypoint")
            class_name = entry.rpartition(":")[2]
            module = self._import_file(path)
            where = f"{path}:{class_name}"
        else:
            module_name, sep, class_name = (entry or "").partition(":")
            if not (sep and module_name and class_name):
                raise ConfigError(
                    f"the python runtime needs a .py artifact or an entrypoint 'module:Class'; "
                    f"got {entry!r}"
                )
            module = _import_module(module_name)
            where = entry or ""
        found: Any = module
        for part in class_name.split("."):
            found = getattr(found, part, None)
            if found is None:
                raise ConfigError(f"{module.__name__} has no class {class_name!r}")
        if not callable(found):
            raise ConfigError(f"{where} is a {type(found).__name__}, not a class")
        return found, where

    def _import_file(self, path: Path) -> ModuleType:
        name = f"_modelport_user_{uuid.uuid4().hex}"
        # An explicit source loader: registry artifacts are stored without the .py suffix.
        loader = importlib.machinery.SourceFileLoader(name, str(path))
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(spec)
        # Registered before running it, as a normal import would, so dataclasses and pickling work.
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise IntegrityError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
        self._module_name = name
        return module


def _create(cls: Any, where: str) -> Any:
    """Instantiate the model class and run its optional ``load()``."""
    try:
        model = cls()
    except Exception as exc:
        raise IntegrityError(f"creating {where} failed: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(model, "predict", None)):
        raise ConfigError(f"{where} has no predict(inputs) method")
    loader = getattr(model, "load", None)
    if callable(loader):
        try:
            loader()
        except ModelportError:
            raise
        except Exception as exc:
            raise IntegrityError(f"{where}.load() failed: {type(exc).__name__}: {exc}") from exc
    return model


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigError(f"python module {name!r} not found") from exc
        raise IntegrityError(f"importing {name!r} failed: {exc}") from exc
    except Exception as exc:
        raise IntegrityError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from exc


def _class_signature(model: Any, where: str) -> Signature | None:
    raw = getattr(model, "signature", None)
    if callable(raw):
        try:
            raw = raw()
        except Exception as exc:
            raise ConfigError(f"{where}.signature() raised {type(exc).__name__}: {exc}") from exc
    if raw is None or isinstance(raw, Signature):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}.signature is a {type(raw).__name__}; expected a dict "
            '{"inputs": [...], "outputs": [...]}'
        )
    try:
        return Signature.from_dict(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}.signature is malformed: {exc}") from exc


def _to_array(name: str, value: object) -> np.ndarray:
    """Turn one returned value into an array of numbers or text."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise InferenceFailed(f"output {name!r} is not an array: {exc}") from None
    kind = array.dtype.kind
    if kind in ("b", "i", "u", "f"):
        return array
    if kind in ("U", "S"):
        return to_bytes_array(array)
    if kind == "O":
        bad = next((v for v in array.reshape(-1) if not isinstance(v, bytes | str)), None)
        if bad is None:
            return to_bytes_array(array)
        raise InferenceFailed(
            f"output {name!r} holds {type(bad).__name__} values; expected numbers, str or bytes"
        )
    raise InferenceFailed(f"output {name!r} has numpy dtype {array.dtype}, which has no datatype")
