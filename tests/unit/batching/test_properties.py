"""Property: with batching, every caller gets what calling the model alone would have given it."""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.batching import Batcher
from modelport.core.clock import SystemClock
from modelport.core.settings import BatchingSettings

from ._support import OUTPUTS, RecordingModel, row_model


@dataclass(frozen=True)
class Request:
    x: np.ndarray
    outputs: tuple[str, ...]
    yields: int  # event-loop turns to wait before submitting
    sleep_us: int  # then real time to wait before submitting


@st.composite
def requests(draw: st.DrawFn) -> Request:
    rows = draw(st.integers(0, 10))
    width = draw(st.sampled_from([2, 3]))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    seed = draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).integers(-100, 100, (rows, width)).astype(dtype)
    outputs = tuple(draw(st.lists(st.sampled_from(OUTPUTS), unique=True, max_size=3)))
    return Request(x, outputs, draw(st.integers(0, 3)), draw(st.sampled_from([0, 0, 100, 400])))


@settings(max_examples=50, deadline=None)
@given(
    mix=st.lists(requests(), min_size=1, max_size=12),
    max_batch_rows=st.integers(1, 16),
    max_delay=st.sampled_from([0, 200, 1000]),
    preferred=st.none() | st.integers(1, 16),
    threaded=st.booleans(),
)
def test_batching_matches_running_each_request_alone(
    mix: list[Request],
    max_batch_rows: int,
    max_delay: int,
    preferred: int | None,
    threaded: bool,
) -> None:
    config = BatchingSettings(
        enabled=True,
        max_batch_rows=max_batch_rows,
        max_delay=max_delay,
        preferred_batch_rows=preferred,
    )
    model = RecordingModel()

    async def one(batcher: Batcher, request: Request) -> dict[str, np.ndarray]:
        for _ in range(request.yields):
            await asyncio.sleep(0)
        if request.sleep_us:
            await asyncio.sleep(request.sleep_us / 1e6)
        return await batcher.submit({"x": request.x}, request.outputs)

    async def main(pool: concurrent.futures.Executor | None) -> list[dict[str, np.ndarray]]:
        batcher = Batcher(model, config, SystemClock(), pool)
        results = await asyncio.gather(*(one(batcher, r) for r in mix))
        await batcher.close()
        return results

    if threaded:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = asyncio.run(main(pool))
    else:
        results = asyncio.run(main(None))

    for request, got in zip(mix, results, strict=True):
        alone = row_model({"x": request.x}, request.outputs)
        assert list(got) == list(alone)
        for name, array in alone.items():
            assert got[name].dtype == array.dtype
            assert got[name].shape == array.shape
            assert np.array_equal(got[name], array)
    # Every row ran exactly once, and no call mixed more rows than allowed unless it was alone.
    assert sum(model.sizes) == sum(r.x.shape[0] for r in mix)
    assert all(
        rows <= max_batch_rows or rows in {r.x.shape[0] for r in mix} for rows in model.sizes
    )
