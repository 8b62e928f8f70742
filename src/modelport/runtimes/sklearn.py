"""scikit-learn runtime: estimators and pipelines saved with joblib.

Outputs are named after estimator methods: ``predict`` always, ``predict_proba`` for models that
have it (classifiers); a registered signature may also name ``predict_log_proba``,
``decision_function``, ``transform`` or ``score_samples``. Only the outputs asked for are computed.

The model takes one input (the registered signature's single input, default ``"input"``): a 2-D
numeric array ``[-1, n_features]``, or, for text pipelines, a 1-D BYTES array that is passed to
the pipeline as a list of ``str``. String class labels leave as BYTES.

NaN in the input reaches the model only when scikit-learn's ``allow_nan`` tag says the estimator
takes it as a missing value (``HistGradientBoosting*`` do; a pipeline only when every step does);
otherwise it is refused before the model runs, as infinities always are.

Loading unpickles the artifact, which runs code stored in it: load only artifacts whose signature
the registry has verified. The device setting is ignored: scikit-learn predicts on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

import joblib
import numpy as np
from sklearn.base import is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from modelport.core.datatypes import Datatype
from modelport.core.errors import ConfigError, InferenceFailed, IntegrityError
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes._common import (
    coerce_output,
    decode_text,
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

__all__ = ["SklearnRuntime", "accepts_nan"]

DEFAULT_INPUT: Final = "input"

_METHODS: Final = frozenset(
    {
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
        "transform",
        "score_samples",
    }
)


class SklearnRuntime(ModelRuntime):
    """A scikit-learn estimator or pipeline loaded with joblib.

    Args:
        config: ``artifact`` is a ``.joblib``/``.pkl``/``.pickle`` file.
    """

    framework: ClassVar[str] = "sklearn"
    platform: ClassVar[str] = "sklearn"

    def __init__(self, config: RuntimeConfig) -> None:
        super().__init__(config)
        self._model: Any = None
        self._own = Signature((), ())  # what the estimator itself takes, for error messages

    def load(self) -> None:
        """Unpickle the estimator; a second call does nothing.

        Raises:
            NotFound: The artifact file does not exist.
            IntegrityError: The file is not a fitted estimator.
            ConfigError: The registered signature does not fit a scikit-learn model.
        """
        if self._model is not None:
            return
        path = require_artifact(self.config, self.framework)
        try:
            model = joblib.load(path)
        except Exception as exc:  # unpickling raises anything: EOFError, UnpicklingError, ...
            raise IntegrityError(
                f"{path} is not a loadable scikit-learn model: "
                f"{type(exc).__name__}: {first_line(exc)}"
            ) from exc
        _check_estimator(model, path)
        signature = self.config.signature or _infer_signature(model)
        _check_signature(signature, model)
        self._model = model
        self._signature = signature
        self.allow_nan = accepts_nan(model)
        self._own = _infer_signature(model)

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str]
    ) -> dict[str, np.ndarray]:
        """Run the estimator methods behind the requested outputs.

        Raises:
            ModelNotReady: The model is not loaded.
            InvalidInput: scikit-learn rejected the values (its message goes to the log).
            InferenceFailed: The estimator failed otherwise.
        """
        model, signature = self._model, self._signature
        if model is None or signature is None:
            raise not_ready(self.framework)
        wanted = select_outputs(outputs, signature.output_names())
        name = signature.inputs[0].name if signature.inputs else DEFAULT_INPUT
        refuse_non_finite(inputs, self.allow_nan)
        x = _prepare(pick_input(inputs, name))
        result: dict[str, np.ndarray] = {}
        for output in wanted:
            try:
                raw = getattr(model, output)(x)
            except NotFittedError as exc:
                raise InferenceFailed("the estimator is not fitted") from exc
            except ValueError as exc:
                raise rejected(self.framework, inputs, self._own, exc) from exc
            except Exception as exc:
                raise failed(self.framework, inputs, exc) from exc
            result[output] = coerce_output(output, np.asarray(raw), output_spec(signature, output))
        return result

    def unload(self) -> None:
        """Drop the estimator."""
        self._model = None
        self._signature = None


def accepts_nan(model: object) -> bool:
    """Whether scikit-learn's ``allow_nan`` tag says ``model`` takes NaN as a missing value.

    A pipeline (whose own tag scikit-learn leaves false) takes NaN when every step up to and
    including its first imputer of NaN does: the steps after the imputer never see one. An object
    that is not a scikit-learn estimator does not.
    """
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        for _, step in steps:
            if step is None or step == "passthrough":
                continue
            if not accepts_nan(step):
                return False
            missing = getattr(step, "missing_values", None)
            if isinstance(missing, float) and math.isnan(missing):
                return True  # an imputer: the later steps get no NaN
        return True
    try:
        from sklearn.utils import get_tags  # scikit-learn >= 1.6
    except ImportError:  # pragma: no cover - older scikit-learn
        tags = getattr(model, "_get_tags", None)
        return bool(tags().get("allow_nan", False)) if callable(tags) else False
    try:
        return bool(get_tags(model).input_tags.allow_nan)
    except Exception:  # not an estimator at all
        return False


def _check_estimator(model: object, path: Path) -> None:
    if not callable(getattr(model, "predict", None)):
        raise IntegrityError(
            f"{path} holds a {type(model).__name__}, not an estimator with a predict() method"
        )
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise IntegrityError(f"{path} holds an unfitted {type(model).__name__}") from None
    except TypeError:
        pass  # not a scikit-learn estimator (no fit()); a duck-typed object with predict() is fine


def _check_signature(signature: Signature, model: object) -> None:
    if len(signature.inputs) > 1:
        raise ConfigError("a scikit-learn model takes one input; the signature lists several")
    for spec in signature.outputs:
        if spec.name not in _METHODS:
            raise ConfigError(
                f"scikit-learn outputs are named after estimator methods "
                f"({', '.join(sorted(_METHODS))}); got {spec.name!r}"
            )
        if not callable(getattr(model, spec.name, None)):
            raise ConfigError(f"the signature names output {spec.name!r}, which the model lacks")


def _prepare(x: np.ndarray) -> Any:
    """Hand text to scikit-learn as ``str``: a list for 1-D (vectorizers), an array otherwise."""
    if x.dtype.kind in ("O", "S", "U"):
        text = decode_text(x)
        return text.tolist() if text.ndim == 1 else text
    return x


def _estimator_type(model: object) -> str | None:
    try:
        from sklearn.utils import get_tags  # scikit-learn >= 1.6
    except ImportError:  # pragma: no cover - older scikit-learn
        found = getattr(model, "_estimator_type", None)
        return found if isinstance(found, str) else None
    try:
        return get_tags(model).estimator_type  # type: ignore[no-any-return]  # untyped library
    except Exception:  # not an estimator at all
        return None


def _takes_text(model: object) -> bool:
    steps = getattr(model, "steps", None)
    first = steps[0][1] if isinstance(steps, list) and steps else model
    # CountVectorizer, TfidfVectorizer and HashingVectorizer all build an analyzer.
    return callable(getattr(first, "build_analyzer", None))


def _label_datatype(classes: np.ndarray) -> Datatype:
    kind = classes.dtype.kind
    if kind == "b":
        return Datatype.BOOL
    if kind in ("i", "u"):
        return Datatype.INT64
    if kind == "f":
        return Datatype.FP64
    if kind == "O" and all(isinstance(c, int | np.integer) for c in classes):
        return Datatype.INT64
    return Datatype.BYTES


def _predict_spec(model: object) -> TensorSpec:
    classes = getattr(model, "classes_", None)
    if isinstance(classes, list) and classes:  # multi-output classifier: one array per output
        return TensorSpec("predict", _label_datatype(np.asarray(classes[0])), (-1, len(classes)))
    if classes is not None:
        return TensorSpec("predict", _label_datatype(np.asarray(classes)), (-1,))
    n_outputs = getattr(model, "n_outputs_", 1)
    shape = (-1, int(n_outputs)) if isinstance(n_outputs, int) and n_outputs > 1 else (-1,)
    if is_regressor(model) or _estimator_type(model) not in ("clusterer", "outlier_detector"):
        return TensorSpec("predict", Datatype.FP64, shape)
    return TensorSpec("predict", Datatype.INT64, shape)  # cluster ids, inlier/outlier +1/-1


def _infer_signature(model: object) -> Signature:
    """Derive a signature from the fitted estimator's attributes."""
    n_features = getattr(model, "n_features_in_", None)
    if isinstance(n_features, int | np.integer):
        spec = TensorSpec(DEFAULT_INPUT, Datatype.FP64, (-1, int(n_features)))
    elif _takes_text(model):
        spec = TensorSpec(DEFAULT_INPUT, Datatype.BYTES, (-1,))
    else:
        spec = TensorSpec(DEFAULT_INPUT, Datatype.FP64, (-1, -1))
    outputs = [_predict_spec(model)]
    classes = getattr(model, "classes_", None)
    if callable(getattr(model, "predict_proba", None)) and not isinstance(classes, list):
        n_classes = len(classes) if classes is not None else -1
        outputs.append(TensorSpec("predict_proba", Datatype.FP64, (-1, n_classes)))
    return Signature(inputs=(spec,), outputs=tuple(outputs))
