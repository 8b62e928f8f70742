"""A request with no rows (shape ``[0, n]``) and what runtimes' failures may say.

An empty batch gets the same answer from every runtime, with and without dynamic batching: 200
with outputs of shape ``[0, ...]`` when the signature tells their other dimensions, else a 400
asking for at least one row. Errors name what was expected, never a framework's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelport.core.datatypes import Datatype
from modelport.core.errors import InvalidInput
from modelport.core.inference import InferenceRequest, InferenceResponse, Tensor
from modelport.core.settings import BatchingSettings, RuntimeSettings
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes.base import RuntimeConfig
from modelport.runtimes.compile import compile_sklearn
from modelport.runtimes.sklearn import SklearnRuntime
from modelport.service.dataplane import DataPlane
from modelport.service.models import ModelRepository, ModelSource

PYTHON_MODEL = """
import numpy as np

class Scores:
    signature = {
        "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                    {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}],
    }

    def predict(self, inputs):
        x = inputs["input"]
        if len(x) == 0:
            raise ValueError("no rows")  # as scikit-learn does
        return {"predict": np.zeros(len(x), np.int64), "predict_proba": np.ones((len(x), 3))}


class Ragged(Scores):
    signature = {
        "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]}],
    }
"""

FRAMEWORKS = ("sklearn", "onnx", "python")
INTERNALS = ("onnxruntime", "ONNXRuntimeError", "node", "StandardScaler", "LogisticRegression")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("empty")
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    joblib.dump(model, folder / "model.joblib")
    runtime = SklearnRuntime(RuntimeConfig(artifact=folder / "model.joblib"))
    runtime.load()
    signature = runtime.metadata().signature
    result = compile_sklearn(folder / "model.joblib", {"input": X}, signature, folder / "m.onnx")
    assert result.compiled, result.reason
    (folder / "model.py").write_text(PYTHON_MODEL)
    return {"sklearn": folder / "model.joblib", "onnx": folder / "m.onnx", "python": folder}


def plane_for(
    framework: str,
    artifacts: dict[str, Path],
    batching: bool,
    signature: Signature | None = None,
    entrypoint: str = "Scores",
) -> DataPlane:
    path = artifacts[framework]
    if framework == "python":
        path = path / "model.py"

    @contextlib.contextmanager
    def verified() -> Iterator[Path]:  # stands for the artifact guard's verified plaintext
        yield path

    source = ModelSource(
        name="m",
        version="1",
        framework=framework,
        artifact=path,
        prepare=verified,
        entrypoint=entrypoint if framework == "python" else None,
        signature=signature,
        batching=BatchingSettings(enabled=True, max_delay=1000) if batching else None,
    )
    repository = ModelRepository(RuntimeSettings())
    repository.add(replace(source))
    repository.load_all()
    return DataPlane(repository)


def infer(plane: DataPlane, rows: np.ndarray) -> InferenceResponse:
    async def run() -> InferenceResponse:
        try:
            request = InferenceRequest(inputs=[Tensor("input", Datatype.FP64, rows.shape, rows)])
            return await plane.infer("m", None, request)
        finally:
            await plane.close()

    return asyncio.run(run())


@pytest.mark.parametrize("batching", [False, True], ids=["alone", "batched"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_empty_batch_gets_empty_outputs(
    framework: str, batching: bool, artifacts: dict[str, Path]
) -> None:
    plane = plane_for(framework, artifacts, batching)
    response = infer(plane, np.zeros((0, 4)))
    shapes = {o.name: (o.datatype, tuple(o.shape), o.data.shape) for o in response.outputs}
    assert shapes == {
        "predict": (Datatype.INT64, (0,), (0,)),
        "predict_proba": (Datatype.FP64, (0, 3), (0, 3)),
    }
    stats = plane.model_statistics("m", "1")[0]
    assert stats["inference_stats"]["success"]["count"] == 1
    assert stats["inference_count"] == 0


@pytest.mark.parametrize("batching", [False, True], ids=["alone", "batched"])
def test_an_empty_batch_for_outputs_of_unknown_width_asks_for_a_row(
    batching: bool, artifacts: dict[str, Path]
) -> None:
    plane = plane_for("python", artifacts, batching, entrypoint="Ragged")
    with pytest.raises(InvalidInput) as refused:
        infer(plane, np.zeros((0, 4)))
    assert str(refused.value) == (
        "the request has no rows; model 'm' version 1 needs at least one row to tell the shape "
        "of output 'predict_proba' ([-1, -1]): send at least one row"
    )


LOOSE = Signature(
    inputs=(TensorSpec("input", Datatype.FP64, (-1, -1)),),
    outputs=(
        TensorSpec("predict", Datatype.INT64, (-1,)),
        TensorSpec("predict_proba", Datatype.FP64, (-1, 3)),
    ),
)


@pytest.mark.parametrize("batching", [False, True], ids=["alone", "batched"])
@pytest.mark.parametrize("framework", ["sklearn", "onnx"])
def test_a_rejected_input_is_worded_without_runtime_internals(
    framework: str, batching: bool, artifacts: dict[str, Path]
) -> None:
    # A registered signature looser than the model ([-1, -1]) lets 3 features reach a model that
    # takes 4: the framework's refusal is reworded as what the model expects.
    plane = plane_for(framework, artifacts, batching, signature=LOOSE)
    with pytest.raises(InvalidInput) as refused:
        infer(plane, np.ones((2, 3)))
    message = str(refused.value)
    assert not [word for word in INTERNALS if word.lower() in message.lower()], message
    assert message == (
        "the model rejected the input ('input' FP64 [2, 3]); it expects 'input' FP64 [-1, 4] "
        "(-1 = any size)"
    )
