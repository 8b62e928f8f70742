"""Train and export the benchmark models, deterministically (fixed seeds, generated data).

- ``tiny``: a logistic regression on 16 features (the per-request overhead case);
- ``mlp``: an MLP classifier with two hidden layers of 256 units on 64 features (a model whose
  compute is not negligible, where batching can pay).

Each is written as ``NAME.joblib`` (what MLServer's scikit-learn runtime and the KServe server
load, and what modelport can serve) and ``NAME.onnx`` (skl2onnx, FP32 input ``input``, no
ZipMap, so probabilities come back as a plain tensor). ``NAME.row.json`` holds the one row every
load generator sends: a row of the training distribution, rounded so its JSON is short.

    python bench/models.py [OUT_DIR]
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

SEED = 20240611
INPUT = "input"


@dataclass(frozen=True)
class BenchModel:
    """One exported benchmark model."""

    name: str
    n_features: int
    joblib_path: Path
    onnx_path: Path
    row: list[float]

    def artifact(self, kind: str) -> Path:
        """The ``joblib`` or ``onnx`` export."""
        return {"joblib": self.joblib_path, "onnx": self.onnx_path}[kind]


def _data(n_features: int, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    return make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=n_features // 2,
        n_classes=2,
        random_state=SEED,
    )


def _train_tiny() -> tuple[LogisticRegression, np.ndarray]:
    x, y = _data(16, 2000)
    return LogisticRegression(max_iter=1000).fit(x, y), x


def _train_mlp() -> tuple[MLPClassifier, np.ndarray]:
    x, y = _data(64, 2000)
    model = MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=5, random_state=SEED)
    # A few epochs are enough for a benchmark: the weights' values do not change the cost of a
    # prediction. Stopping early is deliberate, so its warning is silenced here and only here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model, x


def _to_onnx(model: object, n_features: int, path: Path) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(
        model,
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    path.write_bytes(onx.SerializeToString())


def build(out_dir: Path) -> dict[str, BenchModel]:
    """Train, export and describe both models under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    built = {}
    for name, train in (("tiny", _train_tiny), ("mlp", _train_mlp)):
        model, x = train()
        n_features = x.shape[1]
        joblib_path = out_dir / f"{name}.joblib"
        onnx_path = out_dir / f"{name}.onnx"
        joblib.dump(model, joblib_path)
        _to_onnx(model, n_features, onnx_path)
        row = [round(float(v), 4) for v in x[0]]
        (out_dir / f"{name}.row.json").write_text(json.dumps(row))
        built[name] = BenchModel(name, n_features, joblib_path, onnx_path, row)
    return built


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / ".out" / "models"
    for model in build(out).values():
        print(
            f"{model.name}: {model.n_features} features -> {model.joblib_path}, {model.onnx_path}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
