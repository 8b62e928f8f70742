from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import (
    ConfigError,
    InferenceFailed,
    IntegrityError,
    InvalidInput,
    ModelNotReady,
    NotFound,
)
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes.base import RuntimeConfig
from modelport.runtimes.sklearn import SklearnRuntime

from .conftest import Trained


def loaded(path: Path, signature: Signature | None = None) -> SklearnRuntime:
    runtime = SklearnRuntime(RuntimeConfig(artifact=path, signature=signature))
    runtime.load()
    return runtime


def test_signature_of_a_classifier(sk_classifier: Trained) -> None:
    meta = loaded(sk_classifier.path).metadata()
    assert meta.platform == "sklearn"
    assert meta.signature == Signature(
        inputs=(TensorSpec("input", Datatype.FP64, (-1, 4)),),
        outputs=(
            TensorSpec("predict", Datatype.INT64, (-1,)),
            TensorSpec("predict_proba", Datatype.FP64, (-1, 3)),
        ),
    )


def test_signature_of_a_regressor(sk_regressor: Trained) -> None:
    signature = loaded(sk_regressor.path).metadata().signature
    assert signature.inputs == (TensorSpec("input", Datatype.FP64, (-1, 10)),)
    assert signature.outputs == (TensorSpec("predict", Datatype.FP64, (-1,)),)


def test_predict_matches_sklearn(sk_classifier: Trained) -> None:
    runtime = loaded(sk_classifier.path)
    X = sk_classifier.X[:7]
    out = runtime.predict({"input": X}, ["predict", "predict_proba"])
    np.testing.assert_array_equal(out["predict"], sk_classifier.model.predict(X))
    assert out["predict"].dtype == np.int64
    np.testing.assert_allclose(out["predict_proba"], sk_classifier.model.predict_proba(X))


def test_regressor_predict_matches_sklearn(sk_regressor: Trained) -> None:
    out = loaded(sk_regressor.path).predict({"input": sk_regressor.X[:5]}, ["predict"])
    np.testing.assert_allclose(out["predict"], sk_regressor.model.predict(sk_regressor.X[:5]))
    assert out["predict"].dtype == np.float64


def test_only_requested_outputs_are_computed(sk_classifier: Trained) -> None:
    runtime = loaded(sk_classifier.path)
    calls: list[str] = []
    model = runtime._model

    class Spy:
        def __getattr__(self, name: str) -> object:
            calls.append(name)
            return getattr(model, name)

    runtime._model = Spy()
    out = runtime.predict({"input": sk_classifier.X[:2]}, ["predict"])
    assert set(out) == {"predict"}
    assert calls == ["predict"]


def test_no_outputs_requested_means_all(sk_classifier: Trained) -> None:
    out = loaded(sk_classifier.path).predict({"input": sk_classifier.X[:2]}, [])
    assert set(out) == {"predict", "predict_proba"}


def test_unknown_output_is_invalid_input(sk_classifier: Trained) -> None:
    with pytest.raises(InvalidInput, match="unknown output 'nope'"):
        loaded(sk_classifier.path).predict({"input": sk_classifier.X[:2]}, ["nope"])


def test_string_labels_leave_as_bytes(sk_string_classifier: Trained) -> None:
    runtime = loaded(sk_string_classifier.path)
    spec = runtime.metadata().signature.outputs[0]
    assert spec == TensorSpec("predict", Datatype.BYTES, (-1,))
    out = runtime.predict({"input": sk_string_classifier.X[:3]}, ["predict"])["predict"]
    assert out.dtype == object
    assert list(out) == [
        s.encode() for s in sk_string_classifier.model.predict(sk_string_classifier.X[:3])
    ]


def test_wrong_feature_count_is_invalid_input(sk_classifier: Trained) -> None:
    with pytest.raises(
        InvalidInput,
        match=re.escape(
            "the model rejected the input ('input' FP64 [2, 3]); it expects 'input' FP64 [-1, 4]"
        ),
    ):
        loaded(sk_classifier.path).predict({"input": sk_classifier.X[:2, :3]}, ["predict"])


def test_nan_is_invalid_input(sk_classifier: Trained) -> None:
    X = sk_classifier.X[:2].copy()
    X[0, 0] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        loaded(sk_classifier.path).predict({"input": X}, ["predict"])


def test_other_model_errors_are_inference_failed(sk_classifier: Trained) -> None:
    runtime = loaded(sk_classifier.path)

    class Broken:
        def predict(self, x: object) -> object:
            raise RuntimeError("boom")

    runtime._model = Broken()
    with pytest.raises(InferenceFailed) as failed:
        runtime.predict({"input": sk_classifier.X[:1]}, ["predict"])
    # The model's own words stay in the server log, not in what the caller is told.
    assert str(failed.value) == (
        "the model failed on the input ('input' FP64 [1, 4]); the server log has the details"
    )
    assert isinstance(failed.value.__cause__, RuntimeError)


def test_text_pipeline_takes_bytes(tmp_path: Path) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    docs = ["good great fine", "bad awful poor", "great good", "poor bad"]
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(
        docs, ["pos", "neg", "pos", "neg"]
    )
    path = tmp_path / "text.joblib"
    joblib.dump(model, path)
    runtime = loaded(path)
    assert runtime.metadata().signature.inputs == (TensorSpec("input", Datatype.BYTES, (-1,)),)
    batch = np.array([b"great good", b"awful bad"], dtype=object)
    out = runtime.predict({"input": batch}, ["predict"])
    assert list(out["predict"]) == [b"pos", b"neg"]


def test_registered_signature_names_the_input(sk_classifier: Trained) -> None:
    signature = Signature(
        inputs=(TensorSpec("features", Datatype.FP64, (-1, 4)),),
        outputs=(TensorSpec("predict_proba", Datatype.FP32, (-1, 3)),),
    )
    runtime = loaded(sk_classifier.path, signature)
    assert runtime.metadata().signature == signature
    out = runtime.predict({"features": sk_classifier.X[:2]}, [])
    assert set(out) == {"predict_proba"}
    assert out["predict_proba"].dtype == np.float32


def test_registered_signature_with_foreign_output_is_rejected(sk_classifier: Trained) -> None:
    signature = Signature(inputs=(), outputs=(TensorSpec("scores", Datatype.FP32, (-1,)),))
    with pytest.raises(ConfigError, match="scores"):
        loaded(sk_classifier.path, signature)


def test_corrupt_file_is_integrity_error(corrupt: Callable[[str], Path]) -> None:
    path = corrupt("model.joblib")
    with pytest.raises(IntegrityError, match="model.joblib"):
        loaded(path)


def test_pickle_of_a_non_estimator_is_integrity_error(tmp_path: Path) -> None:
    path = tmp_path / "dict.pkl"
    joblib.dump({"not": "a model"}, path)
    with pytest.raises(IntegrityError, match="dict.pkl"):
        loaded(path)


def test_unfitted_estimator_is_integrity_error(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "unfitted.joblib"
    joblib.dump(LogisticRegression(), path)
    with pytest.raises(IntegrityError, match="unfitted"):
        loaded(path)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        loaded(tmp_path / "absent.joblib")


def test_lifecycle(sk_classifier: Trained) -> None:
    runtime = SklearnRuntime(RuntimeConfig(artifact=sk_classifier.path))
    with pytest.raises(ModelNotReady):
        runtime.metadata()
    with pytest.raises(ModelNotReady):
        runtime.predict({"input": sk_classifier.X[:1]}, ["predict"])
    runtime.load()
    model = runtime._model
    runtime.load()
    assert runtime._model is model  # idempotent
    runtime.unload()
    with pytest.raises(ModelNotReady):
        runtime.predict({"input": sk_classifier.X[:1]}, ["predict"])
    with pytest.raises(ModelNotReady):
        runtime.metadata()
    runtime.load()
    assert runtime.predict({"input": sk_classifier.X[:1]}, ["predict"])["predict"].shape == (1,)


def test_artifact_without_suffix_loads(sk_classifier: Trained, tmp_path: Path) -> None:
    path = tmp_path / "0123abcd"  # how the content-addressed registry stores artifacts
    path.write_bytes(sk_classifier.path.read_bytes())
    assert loaded(path).metadata().signature.inputs[0].shape == (-1, 4)
