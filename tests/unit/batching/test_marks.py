"""RunMarks: a traced request learns when it was queued and when its model call ran."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Collection

import numpy as np
import pytest

from modelport.batching import Batcher, RunMarks
from modelport.core.clock import SystemClock
from modelport.core.errors import InvalidInput
from modelport.core.settings import BatchingSettings

from ._support import row_model, rows_of


def slow(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
    time.sleep(0.005)
    return row_model(inputs, outputs)


@pytest.mark.parametrize("executor", [False, True])
def test_marks_hold_the_queue_entry_and_the_batchs_call(executor: bool) -> None:
    settings = BatchingSettings(enabled=True, max_batch_rows=8, max_delay=20_000)

    async def main(pool: concurrent.futures.Executor | None) -> list[RunMarks]:
        batcher = Batcher(slow, settings, SystemClock(), pool)
        marks = [RunMarks(), RunMarks()]
        before = time.monotonic()
        await asyncio.gather(
            *(
                batcher.submit_timed({"x": rows_of(i, 1)}, ["total"], None, m)
                for i, m in enumerate(marks)
            )
        )
        untraced = await batcher.submit_timed({"x": rows_of(3, 1)}, ["total"])
        await batcher.close()
        assert untraced[1] is not None
        assert all(before <= m.queued for m in marks)
        return marks

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first, second = asyncio.run(main(pool if executor else None))
    # One batch: the same call, after both were queued; it took the model's 5 ms.
    assert (first.started, first.finished) == (second.started, second.finished)
    assert first.queued <= second.queued <= first.started
    assert first.finished - first.started >= 0.004


def test_a_request_that_fails_keeps_its_marks_at_zero() -> None:
    def rejects(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
        raise InvalidInput("no")

    async def main() -> RunMarks:
        batcher = Batcher(rejects, BatchingSettings(enabled=True, max_delay=0), SystemClock())
        marks = RunMarks()
        with pytest.raises(InvalidInput):
            await batcher.submit_timed({"x": rows_of(0, 1)}, ["total"], None, marks)
        await batcher.close()
        return marks

    marks = asyncio.run(main())
    assert (marks.queued, marks.started, marks.finished) == (0.0, 0.0, 0.0)
