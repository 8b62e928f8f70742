"""The public surface of ``modelport`` is what we mean, and importing it loads no ML framework."""

from __future__ import annotations

import subprocess
import sys

import modelport


def test_exported_names() -> None:
    assert sorted(modelport.__all__) == sorted(
        [
            "Datatype",
            "InferenceRequest",
            "InferenceResponse",
            "ModelRef",
            "ModelportError",
            "RequestedOutput",
            "Signature",
            "Tensor",
            "TensorSpec",
            "__version__",
        ]
    )
    for name in modelport.__all__:
        assert hasattr(modelport, name), name


def test_import_loads_no_ml_framework() -> None:
    code = (
        "import sys, modelport, modelport.service.wiring, modelport.server.rest.app, modelport.cli.main\n"
        "heavy = {'sklearn', 'onnxruntime', 'xgboost', 'lightgbm', 'torch', 'joblib', 'skl2onnx'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
