"""The gateway's backends as the prediction log sees them: the in-process one measures the
model's CPU time of each request (inline and batched, scikit-learn and ONNX), a remote one knows
none and names the error kind of a replica's error status."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pytest
from sklearn.ensemble import RandomForestClassifier

from modelport.core.settings import BatchingSettings, RuntimeSettings
from modelport.server.gateway.local import LocalBackend
from modelport.server.gateway.remote import RemoteBackend
from modelport.server.gateway.upstream import UpstreamReply
from modelport.service.dataplane import DataPlane
from modelport.service.gateway import Call
from modelport.service.models import ModelRepository, ModelSource

ROWS = 400
FEATURES = 8


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scikit-learn model slow enough for its CPU time to be well above the clock's grain."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(500, FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    path = tmp_path_factory.mktemp("models") / "forest.joblib"
    joblib.dump(RandomForestClassifier(n_estimators=30, random_state=0).fit(x, y), path)
    return path


@pytest.fixture(scope="module")
def onnx_forest(forest: Path) -> Path:
    from skl2onnx import to_onnx

    model = joblib.load(forest)
    sample = np.zeros((1, FEATURES), dtype=np.float32)
    onnx_model = to_onnx(model, sample, options={id(model): {"zipmap": False}})
    path = forest.with_suffix(".onnx")
    path.write_bytes(onnx_model.SerializeToString())
    return path


def body(rows: int, datatype: str = "FP64", name: str = "input") -> bytes:
    data = np.random.default_rng(rows).normal(size=(rows, FEATURES))
    tensor = {"name": name, "datatype": datatype, "shape": [rows, FEATURES]}
    return orjson.dumps({"inputs": [{**tensor, "data": data.ravel().tolist()}]})


def served(framework: str, artifact: Path, batching: BatchingSettings | None = None) -> ModelSource:
    """``artifact`` as a verified registration hands it over (a pickle loads only that way)."""
    return ModelSource(
        "forest",
        "1",
        framework,
        artifact,
        prepare=lambda: contextlib.nullcontext(artifact),
        batching=batching,
    )


def local_backend(source: ModelSource) -> LocalBackend:
    repository = ModelRepository(RuntimeSettings())
    repository.add(source)
    repository.load_all()
    return LocalBackend(DataPlane(repository), lambda model, version: source)


@pytest.mark.parametrize("framework", ["sklearn", "onnx"])
def test_an_in_process_model_reports_its_cpu_time(
    framework: str, forest: Path, onnx_forest: Path
) -> None:
    artifact = forest if framework == "sklearn" else onnx_forest
    backend = local_backend(served(framework, artifact))
    datatype, name = ("FP64", "input") if framework == "sklearn" else ("FP32", "X")

    async def run() -> list[float | None]:
        try:
            answers = [
                await backend.infer(
                    "forest", "1", Call("trees", body(ROWS, datatype, name), None, f"r-{n}")
                )
                for n in range(3)
            ]
        finally:
            await backend.dp.close()
        assert all(a.status == 200 and a.error is None for a in answers)
        return [a.cpu_ms for a in answers]

    for cpu_ms in asyncio.run(run()):
        assert cpu_ms is not None and 0.0 < cpu_ms < 10_000.0


def test_a_batch_shares_its_cpu_time_among_its_requests_by_rows(forest: Path) -> None:
    settings = BatchingSettings(enabled=True, max_batch_rows=4 * ROWS, max_delay=50_000)
    backend = local_backend(served("sklearn", forest, settings))
    batcher = backend.dp.repository.get("forest", "1").batcher
    assert batcher is not None
    sizes = [ROWS // 4, ROWS // 2, ROWS]

    async def run() -> list[float | None]:
        try:
            calls = [
                backend.infer("forest", "1", Call("trees", body(rows), None, f"r-{rows}"))
                for rows in sizes
            ]
            answers = await asyncio.gather(*calls)
        finally:
            await backend.dp.close()
        return [a.cpu_ms for a in answers]

    shares = asyncio.run(run())
    assert batcher.stats.batches == 1  # one model call for the three requests
    assert all(share is not None and share > 0.0 for share in shares)
    small, middle, large = (float(share or 0.0) for share in shares)
    assert middle == pytest.approx(2 * small) and large == pytest.approx(4 * small)


class Replicas:
    """A replica pool that answers each request with the next status."""

    def __init__(self, *replies: tuple[int, bytes]) -> None:
        self.replies = list(replies)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> UpstreamReply:
        status, answer = self.replies.pop(0)
        return UpstreamReply(status, answer, {}, "http://replica:8080")


def test_a_remote_answer_has_no_cpu_time_and_an_error_status_its_kind() -> None:
    answer = orjson.dumps({"model_name": "forest", "outputs": []})
    error = orjson.dumps({"error": "nope"})
    statuses = [200, 400, 404, 409, 413, 422, 429, 500, 502, 503, 504]
    pool: Any = Replicas(*[(status, answer if status == 200 else error) for status in statuses])
    backend = RemoteBackend(pool, pass_credentials=False)

    async def run() -> list[tuple[int, str | None, float | None]]:
        got = []
        for n in range(len(statuses)):
            reply = await backend.infer("forest", "1", Call("trees", b"{}", None, f"r-{n}"))
            got.append((reply.status, reply.error, reply.cpu_ms))
        return got

    assert asyncio.run(run()) == [
        (200, None, None),
        (400, "invalid_input", None),
        (404, "not_found", None),
        (409, "conflict", None),
        (413, "payload_too_large", None),
        (422, "integrity", None),
        (429, "rate_limited", None),
        (500, "unavailable", None),  # a replica's failure: no client-error meaning
        (502, "unavailable", None),
        (503, "unavailable", None),
        (504, "unavailable", None),
    ]
