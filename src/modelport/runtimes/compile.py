"""Compile a scikit-learn model to ONNX at registration, and prove the copy is equivalent.

:func:`compile_sklearn` converts an estimator or pipeline with skl2onnx and then reshapes the graph
so that it exposes exactly the interface of :class:`~modelport.runtimes.sklearn.SklearnRuntime`:
the registered signature's input name and datatype, and outputs named ``predict`` (same datatype
and shape as the labels or values scikit-learn returns) and ``predict_proba`` (FP64,
``[-1, n_classes]``). A client cannot tell which of the two runtimes answered, except by speed.

The graph computes in the signature's input precision where the converter supports it; otherwise
(or when that copy is not equivalent, as tree ensembles fed doubles can be) in FP32 behind a
``Cast`` node at the input, keeping the outer input name and datatype.

Equivalence is checked, never assumed: both runtimes run on the registration sample, and the copy
is kept only when class labels are identical on every row and every floating-point output
(probabilities; a regressor's ``predict``) differs by at most ``atol`` (absolute, default 1e-5,
also for regressors: scale the tolerance yourself for outputs in the thousands). Without a sample
nothing is compiled: inventing inputs would prove nothing about the data the model will see.
Non-finite input is checked too: the first sample row with its first feature set to NaN, then to
inf, must be refused by both runtimes or answered equivalently by both. The copy carries the
original's ``allow_nan`` tag as the ONNX metadata property ``allow_nan``, so both refuse NaN (with
the same message) unless the estimator takes it as a missing value, in which case the two
answers on the NaN row must agree like any other row.

Failing to compile is not an error: the result says why (unsupported estimator, no sample, not
equivalent with the largest difference found, skl2onnx not installed) and the original model is
served. skl2onnx and onnx are imported only when this function runs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from modelport.core.datatypes import Datatype, to_numpy_dtype
from modelport.core.errors import ConfigError, InvalidInput, ModelportError
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes._common import first_line
from modelport.runtimes.base import RuntimeConfig

__all__ = ["DEFAULT_ATOL", "CompileResult", "compile_sklearn"]

DEFAULT_ATOL: Final = 1e-5
"""Largest absolute difference allowed between the two runtimes' floating-point outputs."""

_OUTPUTS: Final = ("predict", "predict_proba")
_FLOATS: Final = frozenset({Datatype.FP32, Datatype.FP64})
_INPUTS: Final = frozenset({Datatype.FP32, Datatype.FP64, Datatype.INT32, Datatype.INT64})
# Suffix of the graph's inner input name when a Cast sits in front of it.
_INNER: Final = "__modelport_inner"
_NO_SKL2ONNX: Final = "skl2onnx is not installed (pip install 'modelport[onnx]')"


@dataclass(frozen=True, slots=True)
class CompileResult:
    """What :func:`compile_sklearn` did.

    Attributes:
        compiled: Whether an equivalent ONNX model was written to ``out``.
        reason: Why not, when ``compiled`` is false.
        max_abs_diff: Largest absolute difference between the two runtimes' floating-point
            outputs on the sample (of the best attempt); ``None`` when none was compared.
        outputs: Served output name -> the converter's output it is built from.
        precision: Datatype the ONNX graph computes in (``FP32`` behind a cast, or the input's).
        rows: Sample rows the equivalence was checked on.
        atol: The tolerance used.
        converter: ``skl2onnx <version>`` when it was importable.
    """

    compiled: bool
    reason: str | None = None
    max_abs_diff: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    precision: Datatype | None = None
    rows: int = 0
    atol: float = DEFAULT_ATOL
    converter: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON-ready data (the registry's compile report)."""
        return {
            "compiled": self.compiled,
            "reason": self.reason,
            "max_abs_diff": self.max_abs_diff,
            "atol": self.atol,
            "rows": self.rows,
            "precision": self.precision.value if self.precision is not None else None,
            "outputs": dict(self.outputs),
            "converter": self.converter,
        }


class _Refused(Exception):
    """One attempt cannot give an equivalent model; the text says why."""

    def __init__(
        self,
        reason: str,
        max_abs_diff: float | None = None,
        ran: bool = False,
        probe: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.max_abs_diff = max_abs_diff
        self.ran = ran
        self.probe = probe  # the sample matched; a non-finite probe row did not


def compile_sklearn(
    artifact: Path,
    sample: Mapping[str, np.ndarray] | None,
    signature: Signature,
    out: Path,
    *,
    atol: float = DEFAULT_ATOL,
) -> CompileResult:
    """Convert a scikit-learn artifact to an equivalent ONNX model at ``out``.

    Args:
        artifact: The joblib/pickle file (already checked to load as a fitted model).
        sample: Registration sample inputs by name (one input; a differently named single array
            is taken as the signature's input); ``None`` compiles nothing.
        signature: The registered signature the ONNX model must reproduce.
        out: Where to write the ``.onnx`` file; written only when the result is compiled.
        atol: Largest absolute difference allowed on floating-point outputs.

    Returns:
        Whether it compiled and, if not, why.

    Raises:
        ConfigError: ``atol`` is negative or not finite.
    """
    if not (math.isfinite(atol) and atol >= 0):
        raise ConfigError(f"atol must be a finite number >= 0, got {atol!r}")
    rows = _rows(sample)
    if sample is None or rows == 0:
        return CompileResult(False, "no sample to check equivalence", atol=atol)
    problem = _interface_problem(signature)
    if problem is not None:
        return CompileResult(False, problem, rows=rows, atol=atol)
    try:
        import onnx  # noqa: F401  # probe: skl2onnx needs it too
        import skl2onnx
    except ImportError:
        return CompileResult(False, _NO_SKL2ONNX, rows=rows, atol=atol)
    converter = f"skl2onnx {skl2onnx.__version__}"
    try:
        import joblib

        model = joblib.load(artifact)
    except Exception as exc:  # unpickling raises anything
        reason = f"cannot load {artifact.name}: {type(exc).__name__}: {first_line(exc)}"
        return CompileResult(False, reason, rows=rows, atol=atol, converter=converter)
    feeds = _feeds(sample, signature.inputs[0])
    from modelport.runtimes.sklearn import accepts_nan

    allow_nan = accepts_nan(model)
    outer = signature.inputs[0].datatype
    # The input's own precision first (FP64 keeps regressors exact), then FP64, then FP32.
    precisions = [p for p in dict.fromkeys((outer, Datatype.FP64, Datatype.FP32)) if p in _FLOATS]
    refusals: list[_Refused] = []
    for precision in precisions:
        try:
            mapping = _write(model, signature, precision, out, allow_nan)
            diff = _check(artifact, out, signature, feeds, atol, _is_classifier(model))
        except _Refused as refused:
            out.unlink(missing_ok=True)
            refusals.append(refused)
            continue
        return CompileResult(
            compiled=True,
            max_abs_diff=diff,
            outputs=mapping,
            precision=precision,
            rows=rows,
            atol=atol,
            converter=converter,
        )
    best = _best(refusals)
    return CompileResult(
        compiled=False,
        reason=best.reason,
        max_abs_diff=best.max_abs_diff,
        rows=rows,
        atol=atol,
        converter=converter,
    )


def _rows(sample: Mapping[str, np.ndarray] | None) -> int:
    if not sample:
        return 0
    first = np.asarray(next(iter(sample.values())))
    return int(first.shape[0]) if first.ndim else 0


def _interface_problem(signature: Signature) -> str | None:
    if len(signature.inputs) != 1:
        return f"ONNX compilation takes one input; the signature has {len(signature.inputs)}"
    spec = signature.inputs[0]
    if spec.datatype not in _INPUTS or len(spec.shape) != 2:
        return (
            f"ONNX compilation takes a 2-D numeric input; {spec.name!r} is "
            f"{spec.datatype.value} {list(spec.shape)}"
        )
    names = signature.output_names()
    other = [n for n in names if n not in _OUTPUTS]
    if other or "predict" not in names:
        return f"ONNX compilation covers predict and predict_proba only; the signature has {names}"
    return None


def _feeds(sample: Mapping[str, np.ndarray], spec: TensorSpec) -> dict[str, np.ndarray]:
    array = sample.get(spec.name, next(iter(sample.values())))
    return {spec.name: np.asarray(array, dtype=to_numpy_dtype(spec.datatype))}


def _is_classifier(model: object) -> bool:
    # A pipeline exposes its last step's classes_; getattr swallows the AttributeError otherwise.
    return getattr(model, "classes_", None) is not None


def _best(refusals: list[_Refused]) -> _Refused:
    """Prefer the attempt that came closest: ran, past the sample, smallest difference."""
    return min(
        refusals,
        key=lambda r: (not r.ran, not r.probe, r.max_abs_diff is None, r.max_abs_diff or 0.0),
    )


def _write(
    model: Any, signature: Signature, precision: Datatype, out: Path, allow_nan: bool
) -> dict[str, str]:
    """Convert ``model`` computing in ``precision``, adapt its interface, and save it.

    ``allow_nan`` (the estimator takes NaN as a missing value) is written into the model's
    metadata, where :class:`~modelport.runtimes.onnx.OnnxRuntime` reads it.
    """
    import onnx
    from skl2onnx import convert_sklearn, get_latest_tested_opset_version
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    spec = signature.inputs[0]
    inner = spec.name if precision is spec.datatype else f"{spec.name}{_INNER}"
    width = spec.shape[1] if spec.shape[1] >= 0 else None
    tensor_type = DoubleTensorType if precision is Datatype.FP64 else FloatTensorType
    classifier = _is_classifier(model)
    # The newest opsets both onnx and skl2onnx know; ai.onnx.ml 3 because some converters
    # (IsolationForest) otherwise emit version 4, which skl2onnx itself cannot finish.
    opset = min(onnx.defs.onnx_opset_version(), get_latest_tested_opset_version())
    try:
        with warnings.catch_warnings():
            # skl2onnx reads estimator attributes scikit-learn has deprecated (SVC.probA_) and
            # hands onnx booleans where it wants ints: warnings about the converter, not the
            # user's model, whose converted graph is run and compared below anyway.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            onx = convert_sklearn(
                model,
                initial_types=[(inner, tensor_type([None, width]))],
                # Probabilities as a plain tensor, not a seq(map), which the protocol cannot carry.
                options={"zipmap": False} if classifier else None,
                target_opset={"": opset, "ai.onnx.ml": 3},
            )
    except Exception as exc:  # the converter raises RuntimeError, NameError, TypeError, ...
        raise _Refused(
            f"skl2onnx cannot convert {type(model).__name__}: {first_line(exc)}"
        ) from None
    produced = [o.name for o in onx.graph.output]
    wanted = 2 if classifier else 1
    if len(produced) < wanted:
        raise _Refused(f"the converted graph has outputs {produced}; expected {wanted}")
    mapping = {"predict": produced[0]}
    if "predict_proba" in signature.output_names():
        mapping["predict_proba"] = produced[1]
    _route_missing_like_sklearn(onx, model)
    _adapt(onx, signature, precision, mapping)
    if allow_nan:
        from modelport.runtimes.onnx import ALLOW_NAN_PROPERTY

        onnx.helper.set_model_props(onx, {ALLOW_NAN_PROPERTY: "true"})
    try:
        onnx.checker.check_model(onx)
    except Exception as exc:  # onnx.checker.ValidationError and friends
        raise _Refused(f"the adapted ONNX graph is invalid: {first_line(exc)}") from None
    out.write_bytes(onx.SerializeToString())
    return mapping


def _route_missing_like_sklearn(onx: Any, model: Any) -> None:
    """Send NaN down the branch scikit-learn's trees send it (``tree_.missing_go_to_left``).

    skl2onnx writes decision trees and forests with NaN always following the false branch,
    while scikit-learn (1.3 and later) sends it where ``missing_go_to_left`` says: to the
    child that saw the missing values in training, else to the child with more samples. The
    converted nodes keep scikit-learn's node ids (and tree ids, in one ensemble node, or one
    node per tree in order), so the flag is copied node by node; a graph of any other shape is
    left as it is, and the NaN row of the check decides.
    """
    from onnx import helper

    steps = getattr(model, "steps", None)
    final = steps[-1][1] if isinstance(steps, list) and steps else model
    if hasattr(final, "tree_"):
        trees = [final]
    else:
        trees = list(getattr(final, "estimators_", None) or ())
    go_left = [getattr(getattr(t, "tree_", None), "missing_go_to_left", None) for t in trees]
    if not go_left or any(g is None for g in go_left):
        return
    ensembles = [n for n in onx.graph.node if n.op_type.startswith("TreeEnsemble")]
    if len(ensembles) == 1:
        pairs = [(ensembles[0], go_left)]  # one ensemble node holding every tree
    elif len(ensembles) == len(go_left):
        pairs = [(node, [g]) for node, g in zip(ensembles, go_left, strict=True)]  # one per tree
    else:
        return
    for node, flags in pairs:
        attrs = {a.name: a for a in node.attribute}
        try:
            tree_ids = list(attrs["nodes_treeids"].ints)
            node_ids = list(attrs["nodes_nodeids"].ints)
            tracks = [int(flags[t][n]) for t, n in zip(tree_ids, node_ids, strict=True)]
        except (KeyError, IndexError, ValueError):
            return
        kept = [a for a in node.attribute if a.name != "nodes_missing_value_tracks_true"]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(helper.make_attribute("nodes_missing_value_tracks_true", tracks))


def _adapt(onx: Any, signature: Signature, precision: Datatype, mapping: dict[str, str]) -> None:
    """Rename, cast and reshape the graph's input and outputs to the signature's."""
    from onnx import TensorProto, helper, numpy_helper

    types = {
        Datatype.BOOL: TensorProto.BOOL,
        Datatype.INT32: TensorProto.INT32,
        Datatype.INT64: TensorProto.INT64,
        Datatype.FP32: TensorProto.FLOAT,
        Datatype.FP64: TensorProto.DOUBLE,
        Datatype.BYTES: TensorProto.STRING,
    }
    graph = onx.graph
    spec = signature.inputs[0]
    dims = [d if d >= 0 else None for d in spec.shape]
    if precision is not spec.datatype:
        inner = graph.input[0].name
        cast = helper.make_node("Cast", [spec.name], [inner], to=types[precision], name=inner)
        graph.node.insert(0, cast)
        del graph.input[:]
        graph.input.append(helper.make_tensor_value_info(spec.name, types[spec.datatype], dims))
    produced = {o.name: o for o in graph.output}
    outputs = []
    for out_spec in signature.outputs:
        source = produced[mapping[out_spec.name]]
        have = source.type.tensor_type.elem_type
        want = types.get(out_spec.datatype)
        if want is None or (have != want and TensorProto.STRING in (have, want)):
            raise _Refused(
                f"output {out_spec.name!r} is {out_spec.datatype.value}, which the converted "
                f"graph's {TensorProto.DataType.Name(have).lower()} output cannot become"
            )
        current = source.name
        if len(source.type.tensor_type.shape.dim) != len(out_spec.shape):
            if len(out_spec.shape) != 1:
                raise _Refused(f"output {out_spec.name!r} has a rank the graph cannot match")
            shape = f"{out_spec.name}__shape"
            graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), shape))
            graph.node.append(helper.make_node("Reshape", [current, shape], [f"{shape}d"]))
            current = f"{shape}d"
        if have != want:
            graph.node.append(helper.make_node("Cast", [current], [out_spec.name], to=want))
        else:
            graph.node.append(helper.make_node("Identity", [current], [out_spec.name]))
        shape_dims = [d if d >= 0 else None for d in out_spec.shape]
        outputs.append(helper.make_tensor_value_info(out_spec.name, want, shape_dims))
    del graph.output[:]
    graph.output.extend(outputs)
    # skl2onnx can list a domain twice; the checker and some runtimes refuse duplicates.
    versions: dict[str, int] = {"": 13}
    for opset in onx.opset_import:
        versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    del onx.opset_import[:]
    onx.opset_import.extend(helper.make_opsetid(d, v) for d, v in versions.items())


def _check(
    artifact: Path,
    candidate: Path,
    signature: Signature,
    feeds: dict[str, np.ndarray],
    atol: float,
    classifier: bool,
) -> float | None:
    """Run both runtimes on ``feeds``; return the largest float difference or refuse."""
    from modelport.runtimes.onnx import OnnxRuntime
    from modelport.runtimes.sklearn import SklearnRuntime

    onnx_runtime = OnnxRuntime(RuntimeConfig(artifact=candidate))
    sklearn_runtime = SklearnRuntime(RuntimeConfig(artifact=artifact, signature=signature))
    try:
        onnx_runtime.load()
        own = onnx_runtime.metadata().signature
        if own != signature:
            raise _Refused(
                f"the ONNX interface {own.to_dict()} differs from the signature "
                f"{signature.to_dict()}"
            )
        sklearn_runtime.load()
        names = signature.output_names()
        expected = sklearn_runtime.predict(feeds, names)
        got = onnx_runtime.predict(feeds, names)
        largest = _compare(signature, expected, got, atol, classifier)
        for value, label in ((np.nan, "NaN"), (np.inf, "inf")):
            probe = _non_finite_row(feeds, value)
            if probe is not None:
                _same_on(probe, label, sklearn_runtime, onnx_runtime, signature, atol, classifier)
    except ModelportError as exc:
        raise _Refused(f"the ONNX model could not be checked: {exc}") from None
    finally:
        onnx_runtime.unload()
        sklearn_runtime.unload()
    return largest


def _non_finite_row(feeds: dict[str, np.ndarray], value: float) -> dict[str, np.ndarray] | None:
    """The first sample row with its first feature set to ``value``; ``None`` for integers."""
    ((name, array),) = feeds.items()
    if array.dtype.kind != "f" or array.ndim != 2 or array.shape[1] == 0:
        return None
    row = array[:1].copy()
    row[0, 0] = value
    return {name: row}


def _same_on(
    probe: dict[str, np.ndarray],
    label: str,
    sklearn_runtime: Any,
    onnx_runtime: Any,
    signature: Signature,
    atol: float,
    classifier: bool,
) -> None:
    """Require both runtimes to refuse ``probe``, or to answer it equivalently."""
    names = signature.output_names()
    answers: list[dict[str, np.ndarray] | None] = []
    for runtime in (sklearn_runtime, onnx_runtime):
        try:
            answers.append(runtime.predict(probe, names))
        except InvalidInput:
            answers.append(None)
    expected, got = answers
    if expected is None and got is None:
        return
    if expected is None or got is None:
        refuses, answers_it = (
            ("scikit-learn", "ONNX") if expected is None else ("ONNX", "scikit-learn")
        )
        raise _Refused(
            f"not equivalent on non-finite input: the {refuses} model refuses a row with {label} "
            f"that the {answers_it} model answers",
            ran=True,
            probe=True,
        )
    try:
        _compare(signature, expected, got, atol, classifier, f"a sample row with {label} in it")
    except _Refused as refused:
        refused.probe = True
        raise


def _compare(
    signature: Signature,
    expected: Mapping[str, np.ndarray],
    got: Mapping[str, np.ndarray],
    atol: float,
    classifier: bool,
    where: str = "the sample",
) -> float | None:
    largest: float | None = None
    for spec in signature.outputs:
        a, b = expected[spec.name], got[spec.name]
        if a.shape != b.shape:
            raise _Refused(f"output {spec.name!r} has shape {list(b.shape)}, not {list(a.shape)}")
        labels = spec.datatype not in _FLOATS or (classifier and spec.name == "predict")
        if labels:
            differ = (a != b).reshape(a.shape[0], -1).any(axis=1) if a.size else np.zeros(0, bool)
            if differ.any():
                raise _Refused(
                    f"not equivalent: labels differ on {int(differ.sum())} of {len(differ)} "
                    f"rows of {where}",
                    ran=True,
                )
            continue
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))  # equal infinities count as equal
        with np.errstate(invalid="ignore"):
            gap = np.where(same, 0.0, np.abs(a64 - b64))
        found = float(np.max(gap)) if gap.size else 0.0
        if math.isnan(found):
            raise _Refused(
                f"not equivalent: output {spec.name!r} is NaN where the other runtime has a number",
                ran=True,
            )
        largest = found if largest is None else max(largest, found)
    if largest is not None and largest > atol:
        raise _Refused(
            f"not equivalent: max |difference| {largest:.3g} on {where} exceeds {atol:g}",
            largest if math.isfinite(largest) else None,
            ran=True,
        )
    return largest
