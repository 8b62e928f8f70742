"""The batcher: callers get exactly their rows and outputs; limits, deadlines, errors and close."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Collection, Iterator, Sequence

import numpy as np
import pytest

from modelport.batching import Batcher, BatcherStats
from modelport.core.clock import SystemClock
from modelport.core.errors import (
    DeadlineExceeded,
    InferenceFailed,
    InvalidInput,
    ModelNotReady,
    Overloaded,
    PayloadTooLarge,
)
from modelport.core.settings import BatchingSettings

from ._support import OUTPUTS, FakeClock, RecordingModel, row_model, rows_of


def cfg(**overrides: object) -> BatchingSettings:
    values: dict[str, object] = {
        "enabled": True,
        "max_batch_rows": 64,
        "max_delay": 20_000,
        "max_queue_rows": 1024,
    }
    values.update(overrides)
    return BatchingSettings.model_validate(values)


@pytest.fixture(params=["inline", "executor"])
def executor(request: pytest.FixtureRequest) -> Iterator[concurrent.futures.Executor | None]:
    if request.param == "inline":
        yield None
        return
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        yield pool


def check(caller: int, x: np.ndarray, wanted: Collection[str], got: dict[str, np.ndarray]) -> None:
    assert set(got) == set(wanted)
    expected = row_model({"x": x}, wanted)
    for name in wanted:
        assert got[name].shape == expected[name].shape, (caller, name)
        assert np.array_equal(got[name], expected[name]), (caller, name)


def test_each_caller_gets_its_own_rows_and_outputs(
    executor: concurrent.futures.Executor | None,
) -> None:
    model = RecordingModel()
    wanted = [OUTPUTS[: 1 + i % 3] if i % 2 else OUTPUTS[i % 3 :] for i in range(10)]
    xs = [rows_of(i, 1 + i % 4) for i in range(10)]

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(model, cfg(), SystemClock(), executor)
        results = await asyncio.gather(
            *(batcher.submit({"x": x}, w) for x, w in zip(xs, wanted, strict=True))
        )
        await batcher.close()
        return results

    results = asyncio.run(main())
    for i, (x, w, got) in enumerate(zip(xs, wanted, results, strict=True)):
        check(i, x, w, got)
    # All ten queued before the loop first looked: one call with the union of requested outputs.
    assert model.sizes == [sum(x.shape[0] for x in xs)]
    assert set(model.calls[0][1]) == set(OUTPUTS)


def test_single_request_passes_arrays_through() -> None:
    x = rows_of(0, 3)
    returned: dict[str, np.ndarray] = {}

    def model(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
        assert inputs["x"] is x
        returned.update(row_model(inputs, OUTPUTS))
        return returned

    async def main() -> dict[str, np.ndarray]:
        batcher = Batcher(model, cfg(max_delay=0), SystemClock())
        got = await batcher.submit({"x": x}, ["total"])
        await batcher.close()
        return got

    got = asyncio.run(main())
    assert list(got) == ["total"]
    assert got["total"] is returned["total"]


def test_concurrency_forms_batches_up_to_max_rows() -> None:
    model = RecordingModel()

    async def main() -> BatcherStats:
        batcher = Batcher(model, cfg(max_batch_rows=4), SystemClock())
        await asyncio.gather(*(batcher.submit({"x": rows_of(i, 1)}, ["double"]) for i in range(16)))
        await batcher.close()
        return batcher.stats

    stats = asyncio.run(main())
    assert model.sizes == [4, 4, 4, 4]
    assert (stats.batches, stats.rows, stats.requests) == (4, 16, 16)


def test_max_batch_rows_never_exceeded(executor: concurrent.futures.Executor | None) -> None:
    model = RecordingModel()
    sizes = [1 + (i * 7) % 5 for i in range(30)]
    xs = [rows_of(i, n) for i, n in enumerate(sizes)]

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(model, cfg(max_batch_rows=8, max_delay=1000), SystemClock(), executor)
        results = await asyncio.gather(*(batcher.submit({"x": x}, ["double"]) for x in xs))
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert max(model.sizes) <= 8
    assert sum(model.sizes) == sum(sizes)
    for i, (x, got) in enumerate(zip(xs, results, strict=True)):
        check(i, x, ["double"], got)


def test_oversize_request_runs_alone() -> None:
    model = RecordingModel()
    xs = [rows_of(0, 2), rows_of(1, 10), rows_of(2, 2)]

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(model, cfg(max_batch_rows=4, max_delay=1000), SystemClock())
        results = await asyncio.gather(*(batcher.submit({"x": x}, ["first"]) for x in xs))
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert sorted(model.sizes) == [4, 10]
    assert model.sizes.count(10) == 1
    for i, (x, got) in enumerate(zip(xs, results, strict=True)):
        check(i, x, ["first"], got)


def test_requests_queue_while_a_batch_runs() -> None:
    started, gate = threading.Event(), threading.Event()
    model = RecordingModel()

    def gated(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
        if not started.is_set():
            started.set()
            gate.wait(5)
        return model(inputs, outputs)

    async def main() -> None:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            batcher = Batcher(gated, cfg(max_delay=0), SystemClock(), pool)
            first = asyncio.create_task(batcher.submit({"x": rows_of(0, 1)}, ["double"]))
            while not started.is_set():
                await asyncio.sleep(0.001)
            rest = [
                asyncio.create_task(batcher.submit({"x": rows_of(i, 1)}, ["double"]))
                for i in range(1, 6)
            ]
            await asyncio.sleep(0.01)
            assert batcher.queued_rows == 5
            gate.set()
            await asyncio.gather(first, *rest)
            await batcher.close()

    asyncio.run(main())
    assert model.sizes == [1, 5]


def test_full_queue_is_refused_with_retry_after() -> None:
    model = RecordingModel()

    async def main() -> None:
        batcher = Batcher(model, cfg(max_queue_rows=4, max_delay=30_000), SystemClock())
        queued = asyncio.create_task(batcher.submit({"x": rows_of(0, 3)}, ["double"]))
        await asyncio.sleep(0)
        assert batcher.queued_rows == 3
        with pytest.raises(Overloaded) as refused:
            await batcher.submit({"x": rows_of(1, 2)}, ["double"])
        assert refused.value.retry_after > 0
        with pytest.raises(PayloadTooLarge):
            await batcher.submit({"x": rows_of(2, 5)}, ["double"])
        check(0, rows_of(0, 3), ["double"], await queued)
        assert batcher.stats.refused == 2
        await batcher.close()

    asyncio.run(main())
    assert model.sizes == [3]


def test_retry_after_follows_recent_run_times() -> None:
    clock = FakeClock()

    def slow(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
        clock.t += 0.5  # every call takes half a second on the batcher's clock
        return row_model(inputs, outputs)

    async def main() -> float:
        batcher = Batcher(slow, cfg(max_queue_rows=4, max_delay=0), clock)
        await batcher.submit({"x": rows_of(0, 2)}, ["double"])
        batcher._settings = cfg(max_queue_rows=4, max_delay=10_000_000)  # now hold the queue
        waiting = asyncio.create_task(batcher.submit({"x": rows_of(1, 4)}, ["double"]))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as refused:
            await batcher.submit({"x": rows_of(2, 2)}, ["double"])
        await batcher.close()
        with pytest.raises(ModelNotReady):
            await waiting
        return refused.value.retry_after

    # 2 rows too many, calls of 2 rows taking 0.5 s each: one call.
    assert asyncio.run(main()) == pytest.approx(0.5)


def test_deadline_in_queue_fails_without_running() -> None:
    model = RecordingModel()
    clock = FakeClock(100.0)

    async def main() -> None:
        # The head waits until 100.05 for company; the late request's deadline is 100.01.
        batcher = Batcher(model, cfg(max_delay=50_000), clock)
        late = asyncio.create_task(
            batcher.submit({"x": rows_of(0, 2)}, ["double"], deadline=100.01)
        )
        patient = asyncio.create_task(batcher.submit({"x": rows_of(1, 1)}, ["double"]))
        await asyncio.sleep(0)
        clock.t = 100.02  # past the deadline, before the batch is due
        with pytest.raises(DeadlineExceeded, match=r"after 20\.0 ms in the queue; it was not run"):
            await late
        assert model.calls == []  # failed on its deadline's wake-up, not when the batch ran
        clock.t = 100.05
        check(1, rows_of(1, 1), ["double"], await patient)
        with pytest.raises(DeadlineExceeded):
            await batcher.submit({"x": rows_of(2, 1)}, ["double"], deadline=clock.t)
        assert batcher.stats.expired == 2
        await batcher.close()

    asyncio.run(main())
    assert model.sizes == [1]
    assert np.array_equal(model.seen[0], rows_of(1, 1))


def test_cancelled_caller_is_removed_and_never_run() -> None:
    model = RecordingModel()

    async def main() -> None:
        batcher = Batcher(model, cfg(max_delay=20_000), SystemClock())
        gone = asyncio.create_task(batcher.submit({"x": rows_of(0, 3)}, ["double"]))
        stays = asyncio.create_task(batcher.submit({"x": rows_of(1, 2)}, ["double"]))
        await asyncio.sleep(0)
        assert batcher.queued_rows == 5
        gone.cancel()
        await asyncio.sleep(0)
        assert batcher.queued_rows == 2
        check(1, rows_of(1, 2), ["double"], await stays)
        assert gone.cancelled()
        assert batcher.stats.cancelled == 1
        await batcher.close()

    asyncio.run(main())
    assert model.sizes == [2]
    assert np.array_equal(model.seen[0], rows_of(1, 2))


def test_bad_input_fails_only_its_caller(executor: concurrent.futures.Executor | None) -> None:
    model = RecordingModel()
    xs = [rows_of(0, 2), rows_of(1, 3), rows_of(2, 1)]
    xs[1][1, 2] = np.nan

    async def main() -> list[dict[str, np.ndarray] | BaseException]:
        batcher = Batcher(model, cfg(), SystemClock(), executor)
        results = await asyncio.gather(
            *(batcher.submit({"x": x}, ["double", "total"]) for x in xs), return_exceptions=True
        )
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert isinstance(results[1], InvalidInput)
    for i in (0, 2):
        got = results[i]
        assert isinstance(got, dict)
        check(i, xs[i], ["double", "total"], got)
    assert model.sizes == [6, 2, 3, 1]  # the batch, then each request alone


@pytest.mark.parametrize("error", [RuntimeError("boom"), InferenceFailed("model says no")])
def test_model_failure_fails_every_caller_of_the_batch(error: Exception) -> None:
    def broken(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
        raise error

    async def main() -> Sequence[object]:
        batcher = Batcher(broken, cfg(), SystemClock(), name="m")
        results = await asyncio.gather(
            *(batcher.submit({"x": rows_of(i, 1)}, ["double"]) for i in range(3)),
            return_exceptions=True,
        )
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, InferenceFailed) for r in results)
    assert results[0] is results[1] is results[2]
    if not isinstance(error, InferenceFailed):
        assert isinstance(results[0], InferenceFailed)
        assert results[0].__cause__ is error
        assert "RuntimeError: boom" in str(results[0])


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda x: x.sum(axis=0), "output 'bad' has 3 rows for a batch of 4 rows"),
        (lambda x: np.float64(x.sum()), "output 'bad' has no rows for a batch of 4 rows"),
    ],
)
def test_output_rows_mismatch_fails_every_caller(output: object, message: str) -> None:
    def unbatchable(
        inputs: dict[str, np.ndarray], outputs: Collection[str]
    ) -> dict[str, np.ndarray]:
        return {"bad": output(inputs["x"])}  # type: ignore[operator]

    async def main() -> Sequence[object]:
        batcher = Batcher(unbatchable, cfg(), SystemClock())
        results = await asyncio.gather(
            batcher.submit({"x": rows_of(0, 1)}, ["bad"]),
            batcher.submit({"x": rows_of(1, 3)}, ["bad"]),
            return_exceptions=True,
        )
        await batcher.close()
        return results

    results = asyncio.run(main())
    for result in results:
        assert isinstance(result, InferenceFailed)
        assert message in str(result)
        assert "cannot be batched, turn batching off" in str(result)


def test_missing_output_fails() -> None:
    async def main() -> None:
        batcher = Batcher(lambda inputs, outputs: {}, cfg(max_delay=0), SystemClock())
        with pytest.raises(InferenceFailed, match="no output 'double'"):
            await batcher.submit({"x": rows_of(0, 1)}, ["double"])
        await batcher.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"x": np.zeros((2, 3)), "y": np.zeros((3, 1))}, "disagree on the number of rows"),
        ({"x": np.float64(1.0)}, "is a scalar"),
        ({}, "no inputs"),
    ],
)
def test_inputs_must_agree_on_rows(inputs: dict[str, np.ndarray], message: str) -> None:
    model = RecordingModel()

    async def main() -> None:
        batcher = Batcher(model, cfg(), SystemClock())
        with pytest.raises(InvalidInput, match=message):
            await batcher.submit(inputs, ["double"])
        await batcher.close()

    asyncio.run(main())
    assert model.calls == []


def test_different_keys_never_share_a_batch() -> None:
    model = RecordingModel()
    xs = [
        rows_of(0, 1, width=3),
        rows_of(1, 1, width=2),
        rows_of(2, 2, width=3),
        rows_of(3, 1).astype(np.float32),
    ]

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(model, cfg(max_delay=1000), SystemClock())
        results = await asyncio.gather(*(batcher.submit({"x": x}, ["double"]) for x in xs))
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert model.sizes == [3, 1, 1]
    for i, (x, got) in enumerate(zip(xs, results, strict=True)):
        check(i, x, ["double"], got)
        assert got["double"].dtype == x.dtype


def test_close_fails_queued_callers_and_refuses_new_ones() -> None:
    model = RecordingModel()

    async def main() -> None:
        batcher = Batcher(model, cfg(max_delay=10_000_000), SystemClock(), name="iris")
        pending = [
            asyncio.create_task(batcher.submit({"x": rows_of(i, 1)}, ["double"])) for i in range(3)
        ]
        await asyncio.sleep(0)
        await batcher.close()
        for task in pending:
            with pytest.raises(ModelNotReady, match="'iris' was unloaded"):
                await task
        with pytest.raises(ModelNotReady):
            await batcher.submit({"x": rows_of(9, 1)}, ["double"])
        assert batcher.queued_rows == 0
        await batcher.close()  # twice is fine

    asyncio.run(main())
    assert model.calls == []


def test_close_lets_the_running_batch_finish() -> None:
    started, gate = threading.Event(), threading.Event()

    def gated(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
        started.set()
        gate.wait(5)
        return row_model(inputs, outputs)

    async def main() -> None:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            batcher = Batcher(gated, cfg(max_delay=0), SystemClock(), pool)
            running = asyncio.create_task(batcher.submit({"x": rows_of(0, 2)}, ["double"]))
            while not started.is_set():
                await asyncio.sleep(0.001)
            queued = asyncio.create_task(batcher.submit({"x": rows_of(1, 1)}, ["double"]))
            await asyncio.sleep(0)
            closing = asyncio.create_task(batcher.close())
            await asyncio.sleep(0.01)
            assert not closing.done()  # waits for the model call in flight
            gate.set()
            await closing
            check(0, rows_of(0, 2), ["double"], await running)
            with pytest.raises(ModelNotReady):
                await queued

    asyncio.run(main())


def test_batcher_survives_a_second_event_loop() -> None:
    model = RecordingModel()
    batcher = Batcher(model, cfg(max_delay=0), SystemClock())
    for i in range(2):
        got = asyncio.run(batcher.submit({"x": rows_of(i, 1)}, ["double"]))
        check(i, rows_of(i, 1), ["double"], got)
    asyncio.run(batcher.close())
    assert model.sizes == [1, 1]


def test_wait_is_not_busy() -> None:
    calls = 0

    class CountingClock(SystemClock):
        def monotonic(self) -> float:
            nonlocal calls
            calls += 1
            return time.monotonic()

    async def main() -> None:
        batcher = Batcher(row_model, cfg(max_delay=50_000), CountingClock())
        await batcher.submit({"x": rows_of(0, 1)}, ["double"])
        await batcher.close()

    asyncio.run(main())
    assert calls < 20  # a busy loop would read the clock thousands of times in 50 ms


def test_on_call_counts_the_model_calls_that_returned() -> None:
    calls: list[int] = []
    failing = {"now": False}

    def model(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
        if failing["now"]:
            raise RuntimeError("model failed")
        return row_model(inputs, outputs)

    async def main() -> None:
        batcher = Batcher(model, cfg(), SystemClock(), on_call=calls.append)
        await asyncio.gather(*(batcher.submit({"x": rows_of(i, 2)}, OUTPUTS) for i in range(5)))
        assert len(calls) == batcher.stats.batches == 1  # five requests, one execution
        assert calls == [10]  # with its rows
        failing["now"] = True
        with pytest.raises(InferenceFailed):
            await batcher.submit({"x": rows_of(9, 1)}, OUTPUTS)
        assert len(calls) == 1 and batcher.stats.batches == 2  # a failed call is no execution
        await batcher.close()

    asyncio.run(main())


def test_drain_answers_what_is_queued_then_closes() -> None:
    """Drain (a replaced version): queued requests get their rows, later ones "not ready"."""
    model = RecordingModel()
    gate = threading.Event()

    def slow(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
        gate.wait(5)
        return model(inputs, outputs)

    async def scenario() -> None:
        pool = concurrent.futures.ThreadPoolExecutor(1)
        batcher = Batcher(slow, cfg(max_batch_rows=2, max_delay=0), SystemClock(), pool)
        assert batcher.loop() is None
        calls = [
            asyncio.create_task(batcher.submit({"x": rows_of(i, 1)}, ["total"])) for i in range(5)
        ]
        await asyncio.sleep(0.05)  # one batch running, the rest queued
        assert batcher.loop() is asyncio.get_running_loop()
        drained = asyncio.create_task(batcher.drain(timeout=5))
        await asyncio.sleep(0.05)
        assert not drained.done()
        gate.set()
        await drained
        answers = await asyncio.gather(*calls)
        for i, answer in enumerate(answers):
            np.testing.assert_array_equal(answer["total"], rows_of(i, 1).sum(axis=1))
        with pytest.raises(ModelNotReady, match="unloaded"):
            await batcher.submit({"x": rows_of(9, 1)}, ["total"])
        pool.shutdown()

    asyncio.run(scenario())
    assert sum(model.sizes) == 5


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU time."""
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass


def test_a_batchs_cpu_time_is_shared_among_its_requests_by_rows(
    executor: concurrent.futures.Executor | None,
) -> None:
    def busy(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
        burn(0.002 * inputs["x"].shape[0])  # 2 ms per row, on the thread that calls the model
        return row_model(inputs, outputs)

    async def main() -> list[tuple[dict[str, np.ndarray], float | None]]:
        batcher = Batcher(busy, cfg(), SystemClock(), executor)
        shared = await asyncio.gather(
            *(
                batcher.submit_timed({"x": rows_of(i, rows)}, ["total"])
                for i, rows in enumerate([1, 3])
            )
        )
        alone = await batcher.submit_timed({"x": rows_of(9, 2)}, ["total"])
        await batcher.close()
        assert batcher.stats.batches == 2
        return [*shared, alone]

    (_, one), (arrays, three), (_, alone) = asyncio.run(main())
    assert list(arrays) == ["total"] and arrays["total"].shape == (3,)
    assert one is not None and three is not None and alone is not None
    assert three == pytest.approx(3 * one)
    assert one + three >= 8.0 and alone >= 4.0  # milliseconds: 4 rows, then 2 rows
    assert one + three < 1000.0


def test_a_batch_without_rows_shares_its_cpu_time_equally() -> None:
    def busy(inputs: dict[str, np.ndarray], outputs: Collection[str]) -> dict[str, np.ndarray]:
        burn(0.004)
        return row_model(inputs, outputs)

    async def main() -> list[tuple[dict[str, np.ndarray], float | None]]:
        batcher = Batcher(busy, cfg(), SystemClock())
        got = await asyncio.gather(
            *(batcher.submit_timed({"x": rows_of(i, 0)}, ["total"]) for i in range(2))
        )
        await batcher.close()
        return got

    (_, first), (_, second) = asyncio.run(main())
    assert first is not None and first == second and first >= 2.0
