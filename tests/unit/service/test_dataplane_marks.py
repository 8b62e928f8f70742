"""DataPlane.infer fills a traced request's RunMarks, inline and through the batcher."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from modelport.batching import RunMarks
from modelport.core.datatypes import Datatype
from modelport.core.errors import InvalidInput
from modelport.core.inference import InferenceRequest, Tensor
from modelport.core.settings import BatchingSettings, RuntimeSettings
from modelport.service.dataplane import DataPlane
from modelport.service.models import ModelRepository, ModelSource

MODEL = """
import time

class Slow:
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "total", "datatype": "FP32", "shape": [-1]}],
    }

    def predict(self, inputs):
        time.sleep(0.003)
        return {"total": inputs["x"].sum(axis=1)}
"""


def plane(tmp_path: Path, batching: BatchingSettings | None) -> DataPlane:
    path = tmp_path / "slow.py"
    path.write_text(MODEL)
    repository = ModelRepository(RuntimeSettings())
    repository.add(ModelSource("slow", "1", "python", path, entrypoint="Slow", batching=batching))
    repository.load_all()
    return DataPlane(repository)


def request(rows: int, columns: int = 2) -> InferenceRequest:
    data = np.ones((rows, columns), dtype=np.float32)
    return InferenceRequest(inputs=[Tensor("x", Datatype.FP32, data.shape, data)])


@pytest.mark.parametrize("batching", [None, BatchingSettings(enabled=True, max_delay=1000)])
def test_marks_say_when_the_request_was_queued_and_ran(
    tmp_path: Path, batching: BatchingSettings | None
) -> None:
    data_plane = plane(tmp_path, batching)
    marks = RunMarks()

    async def run() -> float | None:
        try:
            response = await data_plane.infer("slow", None, request(2), timed=True, marks=marks)
        finally:
            await data_plane.close()
        return response.cpu_ms

    before = time.monotonic()
    cpu_ms = asyncio.run(run())
    assert before <= marks.queued <= marks.started < marks.finished <= time.monotonic()
    assert marks.finished - marks.started >= 0.002  # the model's 3 ms
    assert cpu_ms is not None  # asked for (timed), with or without the marks


def test_an_invalid_request_is_not_marked(tmp_path: Path) -> None:
    data_plane = plane(tmp_path, None)
    marks = RunMarks()
    with pytest.raises(InvalidInput):
        asyncio.run(data_plane.infer("slow", None, request(1, columns=3), marks=marks))
    assert (marks.queued, marks.started, marks.finished) == (0.0, 0.0, 0.0)


def test_a_request_without_rows_is_not_marked(tmp_path: Path) -> None:
    data_plane = plane(tmp_path, None)
    marks = RunMarks()
    response = asyncio.run(data_plane.infer("slow", None, request(0), marks=marks))
    assert response.outputs[0].shape == (0,)
    assert marks.started == 0.0


def test_marks_alone_read_no_cpu_clock(tmp_path: Path) -> None:
    data_plane = plane(tmp_path, None)
    marks = RunMarks()
    response = asyncio.run(data_plane.infer("slow", None, request(1), marks=marks))
    assert response.cpu_ms is None  # not asked for: only the monotonic clock is read
    assert 0.0 < marks.queued == marks.started < marks.finished
