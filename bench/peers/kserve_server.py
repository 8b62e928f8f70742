"""KServe's Python model server with the benchmark's models (runs in bench/.venvs/kserve).

A ``kserve.Model`` subclass answering Open Inference Protocol v2 requests: the first input
tensor becomes a numpy array, ``predict_proba`` runs on it, and the probabilities come back as
one FP64 output named ``predict_proba``. Every ``NAME=PATH.joblib`` argument is one model.

    python kserve_server.py tiny=tiny.joblib mlp=mlp.joblib \
        --http_port P --workers N --enable_grpc false \
        --configure_logging false --enable_latency_logging false

The remaining flags are KServe's own (``kserve.model_server``'s argument parser).
"""

from __future__ import annotations

import argparse
import uuid
import warnings
from typing import Any

import joblib
import uvicorn

# KServe answers through FastAPI's ORJSONResponse, which current FastAPI deprecates with a
# warning on every response: two lines on stderr per request. Silenced, so that what is measured
# is the server rather than its warnings. At import, so spawned REST workers do the same.
warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")

# KServe binds its REST server to 0.0.0.0 and has no option to change it. The benchmark keeps
# every server on the loopback interface, so uvicorn's config is pinned to 127.0.0.1 before
# KServe builds it. This runs at import, so spawned REST workers inherit it too.
_Config = uvicorn.Config


class _LoopbackConfig(_Config):  # type: ignore[misc,valid-type]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        super().__init__(*args, **kwargs)


uvicorn.Config = _LoopbackConfig  # type: ignore[misc]

import kserve  # noqa: E402  (after the loopback pin above)
from kserve import InferOutput, InferRequest, InferResponse  # noqa: E402


class SklearnProba(kserve.Model):
    """One joblib-saved classifier answering ``predict_proba`` over OIP v2."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.model: Any = None

    def load(self) -> bool:
        self.model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        x = payload.inputs[0].as_numpy()
        proba = self.model.predict_proba(x)
        output = InferOutput(name="predict_proba", shape=list(proba.shape), datatype="FP64")
        output.set_data_from_numpy(proba, binary_data=False)
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=[output],
        )


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("models", nargs="+", help="NAME=PATH.joblib")
    args = parser.parse_args()
    models = []
    for spec in args.models:
        name, _, path = spec.partition("=")
        model = SklearnProba(name, path)
        model.load()
        models.append(model)
    kserve.ModelServer().start(models)


if __name__ == "__main__":
    main()
