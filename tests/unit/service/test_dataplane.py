from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import IntegrityError, InvalidInput, ModelNotReady, NotFound
from modelport.core.inference import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelport.core.settings import BatchingSettings, RuntimeSettings
from modelport.service.dataplane import DataPlane
from modelport.service.models import ModelRepository, ModelSource, ModelState

MODEL = """
import numpy as np

class Doubler:
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "double", "datatype": "FP32", "shape": [-1, 2]},
                    {"name": "total", "datatype": "FP64", "shape": [-1]}],
    }

    def predict(self, inputs):
        x = inputs["x"]
        return {"double": x * 2, "total": x.sum(axis=1)}
"""


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "doubler.py"
    path.write_text(MODEL)
    return path


def source(path: Path, version: str = "1", name: str = "doubler") -> ModelSource:
    return ModelSource(
        name=name, version=version, framework="python", artifact=path, entrypoint="Doubler"
    )


@pytest.fixture()
def plane(model_file: Path) -> DataPlane:
    repository = ModelRepository(RuntimeSettings())
    repository.add(source(model_file, "1"))
    repository.add(source(model_file, "2"))
    repository.load_all()
    return DataPlane(repository)


def infer(plane: DataPlane, *args: object) -> InferenceResponse:
    return asyncio.run(plane.infer(*args))  # type: ignore[arg-type]


def request(rows: list[list[float]], outputs: list[str] | None = None) -> InferenceRequest:
    data = np.asarray(rows, dtype=np.float32)
    return InferenceRequest(
        inputs=[Tensor("x", Datatype.FP32, data.shape, data)],
        id="req-1",
        outputs=None if outputs is None else [RequestedOutput(o) for o in outputs],
    )


def test_infer_returns_every_output_in_signature_order(plane: DataPlane) -> None:
    response = infer(plane, "doubler", None, request([[1, 2], [3, 4]]))
    assert response.id == "req-1"
    assert response.model_version == "1"  # the first version added is the default
    assert [o.name for o in response.outputs] == ["double", "total"]
    np.testing.assert_array_equal(response.outputs[0].data, [[2, 4], [6, 8]])
    assert response.outputs[1].datatype is Datatype.FP64
    assert response.outputs[1].data.dtype == np.float64


def test_requested_outputs_only(plane: DataPlane) -> None:
    response = infer(plane, "doubler", "2", request([[1, 2]], ["total"]))
    assert [o.name for o in response.outputs] == ["total"]
    assert response.model_version == "2"


@pytest.mark.parametrize(
    ("outputs", "fragment"),
    [
        (["nope"], "unknown output 'nope' requested; the model has 'double', 'total'"),
        (["total", "total"], "more than once"),
    ],
)
def test_bad_requested_outputs(plane: DataPlane, outputs: list[str], fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        infer(plane, "doubler", None, request([[1, 2]], outputs))


def test_unknown_model_and_version(plane: DataPlane) -> None:
    with pytest.raises(NotFound, match="unknown model 'ghost': this server does not host it") as e:
        infer(plane, "ghost", None, request([[1, 2]]))
    assert "doubler" not in str(e.value)  # other models are never named
    with pytest.raises(NotFound):
        infer(plane, "ghost", None, request([[1, 2]]))
    with pytest.raises(NotFound, match="no version '3'.*'1', '2'"):
        plane.model_metadata("doubler", "3")


def test_metadata_lists_versions_and_signature(plane: DataPlane) -> None:
    meta = plane.model_metadata("doubler", None)
    assert meta["versions"] == ["1", "2"]
    assert meta["platform"] == "python"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]


def test_unload_then_load(plane: DataPlane) -> None:
    asyncio.run(plane.unload("doubler"))
    assert not plane.ready()
    assert not plane.model_ready("doubler", "1")
    with pytest.raises(ModelNotReady, match="not ready: unloaded"):
        infer(plane, "doubler", None, request([[1, 2]]))
    assert {m["state"] for m in plane.repository_index(ready_only=False)} == {"UNAVAILABLE"}
    assert plane.repository_index(ready_only=True) == []
    asyncio.run(plane.load("doubler", {}))
    assert plane.ready()
    assert infer(plane, "doubler", None, request([[1, 2]])).outputs


def test_load_of_unknown_name_without_resolver(plane: DataPlane) -> None:
    with pytest.raises(NotFound, match="ghost"):
        asyncio.run(plane.load("ghost", {}))


def test_resolver_hot_loads_new_models(model_file: Path) -> None:
    asked: list[tuple[str, dict[str, object]]] = []

    def resolver(name: str, params: dict[str, object]) -> list[ModelSource]:
        asked.append((name, params))
        if name != "late":
            raise NotFound(f"unknown model {name!r}")
        return [source(model_file, str(params.get("version", "1")), name="late")]

    plane = DataPlane(ModelRepository(RuntimeSettings(), resolver))
    asyncio.run(plane.load("late", {"version": "4"}))
    assert infer(plane, "late", "4", request([[1, 1]])).model_version == "4"
    with pytest.raises(NotFound):
        asyncio.run(plane.load("other", {}))
    assert asked == [("late", {"version": "4"}), ("other", {})]


def test_failed_load_leaves_the_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    repository = ModelRepository(RuntimeSettings())
    model = repository.add(source(broken))
    with pytest.raises(IntegrityError):
        repository.load_all()
    assert model.state is ModelState.UNAVAILABLE
    assert "load failed" in model.reason and "boom" in model.reason
    with pytest.raises(ModelNotReady, match="boom"):
        infer(DataPlane(repository), "doubler", None, request([[1, 2]]))


def test_batched_model_gives_each_caller_its_rows(model_file: Path) -> None:
    settings = BatchingSettings(enabled=True, max_batch_rows=8, max_delay=20_000)
    repository = ModelRepository(RuntimeSettings())
    repository.add(replace(source(model_file), batching=settings))
    repository.load_all()
    plane = DataPlane(repository)
    batcher = repository.get("doubler", "1").batcher
    assert batcher is not None

    async def burst() -> list[InferenceResponse]:
        calls = [
            plane.infer("doubler", None, request([[i, i + 1]] * (i % 3 + 1), ["total"]))
            for i in range(6)
        ]
        try:
            return await asyncio.gather(*calls)
        finally:
            await plane.close()

    responses = asyncio.run(burst())
    for i, response in enumerate(responses):
        assert [o.name for o in response.outputs] == ["total"]
        np.testing.assert_array_equal(response.outputs[0].data, [2 * i + 1] * (i % 3 + 1))
    batcher_stats = plane.model_statistics("doubler", "1")[0]
    assert batcher_stats["inference_count"] == sum(i % 3 + 1 for i in range(6))
    assert batcher_stats["inference_stats"]["success"]["count"] == 6
    # One execution per batch, as Triton counts: 12 rows in batches of at most 8 rows.
    assert batcher_stats["execution_count"] == batcher.stats.batches
    assert 2 <= batcher_stats["execution_count"] < 6


@pytest.mark.parametrize("timeout", [-1, "soon", True, False, float("nan")])
def test_bad_timeout_parameter(plane: DataPlane, timeout: object) -> None:
    bad = request([[1, 2]])
    bad.parameters["timeout"] = timeout  # type: ignore[assignment]
    with pytest.raises(InvalidInput, match="timeout"):
        infer(plane, "doubler", None, bad)


def test_statistics_count_failures_and_unknown_models(plane: DataPlane) -> None:
    infer(plane, "doubler", "2", request([[1, 2], [3, 4]]))
    with pytest.raises(InvalidInput):
        infer(plane, "doubler", "2", request([[1, 2, 3]]))
    (entry,) = plane.model_statistics("doubler", "2")
    assert entry["inference_stats"]["success"]["count"] == 1
    assert entry["inference_stats"]["fail"]["count"] == 1
    assert entry["inference_count"] == 2
    assert {(e["name"], e["version"]) for e in plane.model_statistics(None, None)} == {
        ("doubler", "1"),
        ("doubler", "2"),
    }
    with pytest.raises(NotFound):
        plane.model_statistics("ghost", None)


def test_requests_reach_the_prometheus_metrics_through_the_statistics_tallies(
    model_file: Path,
) -> None:
    from modelport.monitoring import ServingMetrics

    repository = ModelRepository(RuntimeSettings())
    repository.add(source(model_file, "1"))
    repository.load_all()
    plane = DataPlane(repository, metrics=ServingMetrics(multiprocess=False))
    infer(plane, "doubler", None, request([[1, 2], [3, 4], [5, 6]]))
    with pytest.raises(InvalidInput):
        infer(plane, "doubler", None, request([[1, 2, 3]]))
    text = plane.metrics_text()[0].decode()
    assert (
        'modelport_inference_requests_total{model="doubler",outcome="ok",version="1"} 1.0' in text
    )
    assert (
        'modelport_inference_requests_total{model="doubler",outcome="invalid_input",version="1"} 1.0'
        in text
    )
    assert 'modelport_inference_rows_total{model="doubler",version="1"} 3.0' in text
    assert 'modelport_inference_duration_seconds_count{model="doubler",version="1"} 2.0' in text
    (entry,) = plane.model_statistics("doubler", "1")
    assert entry["inference_count"] == 3 and entry["execution_count"] == 1


BUSY = """
import time

import numpy as np

class Busy:
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "total", "datatype": "FP64", "shape": [-1]}],
    }

    def predict(self, inputs):
        x = inputs["x"]
        started = time.thread_time()
        while time.thread_time() - started < 0.002 * len(x):  # 2 ms of CPU per row
            pass
        return {"total": x.sum(axis=1).astype(np.float64)}
"""


def busy_plane(tmp_path: Path, batching: BatchingSettings | None = None) -> DataPlane:
    path = tmp_path / "busy.py"
    path.write_text(BUSY)
    repository = ModelRepository(RuntimeSettings())
    repository.add(ModelSource("busy", "1", "python", path, entrypoint="Busy", batching=batching))
    repository.load_all()
    return DataPlane(repository)


def test_the_cpu_time_of_an_inline_run_is_measured_when_asked(tmp_path: Path) -> None:
    plane = busy_plane(tmp_path)

    async def run() -> tuple[InferenceResponse, InferenceResponse, InferenceResponse]:
        timed = await plane.infer("busy", None, request([[1, 2], [3, 4]]), timed=True)
        plain = await plane.infer("busy", None, request([[1, 2]]))
        none = np.zeros((0, 2), dtype=np.float32)
        no_rows = InferenceRequest(inputs=[Tensor("x", Datatype.FP32, none.shape, none)])
        empty = await plane.infer("busy", None, no_rows, timed=True)
        return timed, plain, empty

    timed, plain, empty = asyncio.run(run())
    assert timed.cpu_ms is not None and 4.0 <= timed.cpu_ms < 1000.0  # 2 rows: 4 ms of CPU
    assert plain.cpu_ms is None  # not asked: the clock is not read
    assert empty.cpu_ms == 0.0  # the model was not called


def test_a_batched_request_gets_its_share_of_the_batchs_cpu_time(tmp_path: Path) -> None:
    settings = BatchingSettings(enabled=True, max_batch_rows=8, max_delay=50_000)
    plane = busy_plane(tmp_path, settings)
    batcher = plane.repository.get("busy", "1").batcher
    assert batcher is not None

    async def burst() -> list[InferenceResponse]:
        try:
            return await asyncio.gather(
                plane.infer("busy", None, request([[1, 2]])),
                plane.infer("busy", None, request([[1, 2]] * 3)),
            )
        finally:
            await plane.close()

    one, three = asyncio.run(burst())
    assert batcher.stats.batches == 1
    assert one.cpu_ms is not None and three.cpu_ms is not None
    assert three.cpu_ms == pytest.approx(3 * one.cpu_ms)
    assert one.cpu_ms + three.cpu_ms >= 8.0  # 4 rows: 8 ms of CPU, in the executor's thread


def test_the_metrics_read_each_versions_load_time_and_slo_edges(model_file: Path) -> None:
    from modelport.core.errors import ConfigError
    from modelport.monitoring import Exposition, ServingMetrics

    exposition = Exposition(slo_latency_seconds=[0.003], multiprocess=False)
    repository = ModelRepository(RuntimeSettings(), latency_buckets=exposition.latency_buckets)
    repository.add(source(model_file, "1"))
    repository.load_all()
    plane = DataPlane(repository, metrics=ServingMetrics(exposition))
    (hosted,) = plane.hosted_versions()
    assert (hosted.model, hosted.version, hosted.queued_rows, hosted.in_flight) == (
        "doubler",
        "1",
        0,
        0,
    )
    assert hosted.load_seconds is not None and hosted.load_seconds > 0
    infer(plane, "doubler", None, request([[1, 2]]))
    text = plane.metrics_text()[0].decode()
    assert 'modelport_model_load_duration_seconds{model="doubler",version="1"}' in text
    assert 'le="0.003",model="doubler",version="1"' in text
    # Tallies bucketed otherwise than the histogram would be refused, not misread.
    with pytest.raises(ConfigError, match="latency buckets"):
        DataPlane(
            ModelRepository(RuntimeSettings()),
            metrics=ServingMetrics(Exposition(slo_latency_seconds=[0.003], multiprocess=False)),
        )
