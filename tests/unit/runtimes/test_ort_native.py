"""ONNX Runtime's native run: used only for known versions, else the public session.run."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest

from modelport.runtimes._ort_native import ORT_PROBLEM, native_run, ort_problem
from modelport.runtimes.base import RuntimeConfig
from modelport.runtimes.onnx import OnnxRuntime
from tests.unit.runtimes.conftest import Trained


def test_versions_outside_the_allowed_range_are_not_trusted() -> None:
    assert ORT_PROBLEM is None  # the installed onnxruntime is in the range
    assert ort_problem("1.17.0") is None and ort_problem("1.32.1") is None
    assert ort_problem("1.16.3") == "onnxruntime 1.16.3 is not between 1.17 and 2.0 (exclusive)"
    assert ort_problem("2.0.0") is not None


def test_the_native_run_answers_as_the_public_one(onnx_classifier: Trained) -> None:
    session = ort.InferenceSession(str(onnx_classifier.path), providers=["CPUExecutionProvider"])
    run = native_run(session)
    assert run is not None
    feeds = {"X": onnx_classifier.X[:5]}
    native = run(["probabilities"], feeds, ort.RunOptions())
    public = session.run(["probabilities"], feeds)
    np.testing.assert_array_equal(native[0], public[0])


def test_an_unknown_version_runs_through_the_public_api(
    onnx_classifier: Trained, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = ort.InferenceSession(str(onnx_classifier.path), providers=["CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING):
        assert native_run(session, problem="onnxruntime 9.0 is not between") is None
    assert "public InferenceSession.run" in caplog.text
    # A runtime loaded without the native run still predicts, through session.run.
    monkeypatch.setattr(
        "modelport.runtimes.onnx.native_run",
        lambda session: native_run(session, problem="onnxruntime 9.0 is not between"),
    )
    runtime = OnnxRuntime(RuntimeConfig(artifact=onnx_classifier.path))
    runtime.load()
    assert runtime._direct_run is None
    got = runtime.predict({"X": onnx_classifier.X[:3]}, ["label"])
    assert got["label"].tolist() == onnx_classifier.model.predict(onnx_classifier.X[:3]).tolist()
