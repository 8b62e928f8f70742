"""The job runner: jobs run off the event loop, summaries and failures are logged, never fatal."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelport.core.errors import ConfigError
from modelport.core.settings import ControlPlaneSettings, PredictionLogSettings, Settings
from modelport.service.jobs import Job, JobRunner, JobSkipped, JobStats, exclusive, turn
from modelport.service.wiring import control_plane_jobs
from modelport.testing import FakeClock


class Turns:
    """A fake sleep: each call waits until the test lets one more turn happen."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(0)


def test_jobs_run_in_worker_threads_and_failures_do_not_stop_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop_thread: list[int] = []
    threads: list[int] = []
    runs = {"good": 0, "broken": 0, "refused": 0}

    def good() -> str:
        threads.append(threading.get_ident())
        runs["good"] += 1
        return f"run {runs['good']}"

    def broken() -> None:
        runs["broken"] += 1
        raise RuntimeError("a bug")

    def refused() -> None:
        runs["refused"] += 1
        raise ConfigError("the folder is not writable")

    async def main() -> None:
        loop_thread.append(threading.get_ident())
        sleep = Turns()
        runner = JobRunner(
            [Job("good", 60, good), Job("broken", 60, broken), Job("refused", 60, refused)],
            sleep,
        )
        await runner.start()
        while min(runs.values()) < 4:  # run 3 was logged before run 4 began
            await asyncio.sleep(0.001)
        await runner.stop()
        assert set(sleep.asked) == {60}

    with caplog.at_level(logging.INFO, logger="modelport.jobs"):
        asyncio.run(main())
    assert loop_thread[0] not in threads
    messages = [r.getMessage() for r in caplog.records]
    assert "job good: run 1" in messages and "job good: run 3" in messages
    assert messages.count("job broken failed") >= 3
    assert "job refused failed: the folder is not writable" in messages
    failure = next(r for r in caplog.records if r.getMessage() == "job broken failed")
    assert failure.exc_info is not None  # a bug keeps its traceback
    done = next(r for r in caplog.records if r.getMessage() == "job good: run 1")
    assert done.fields["event"] == "job_done" and done.fields["job"] == "good"  # type: ignore[attr-defined]


def test_a_job_not_at_start_waits_one_interval_and_none_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    async def main() -> None:
        sleep = Turns()
        runner = JobRunner([Job("quiet", 5, lambda: calls.append("ran"), at_start=False)], sleep)
        await runner.start()
        while not calls:
            await asyncio.sleep(0.001)
        await runner.stop()
        assert sleep.asked[0] == 5

    with caplog.at_level(logging.INFO, logger="modelport.jobs"):
        asyncio.run(main())
    assert not [r for r in caplog.records if r.getMessage().startswith("job quiet")]


def test_run_once_reports_success() -> None:
    runner = JobRunner([])
    assert asyncio.run(runner.run_once(Job("ok", 1, lambda: None))) is True
    assert asyncio.run(runner.run_once(Job("bad", 1, lambda: 1 / 0))) is False


def test_runs_failures_and_skipped_turns_are_counted_per_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(datetime(2026, 12, 7, 12, tzinfo=UTC))

    def skip() -> None:
        raise JobSkipped("another process is doing it")

    ok, bad, skipped = Job("ok", 1, lambda: None), Job("bad", 1, lambda: 1 / 0), Job("s", 1, skip)
    runner = JobRunner([ok, bad, skipped], clock=clock)
    assert runner.stats()["ok"] == JobStats()  # every job is known before it runs

    async def main() -> None:
        for job in (ok, ok, bad, skipped, skipped, skipped):
            await runner.run_once(job)

    with caplog.at_level(logging.INFO, logger="modelport.jobs"):
        asyncio.run(main())
    stats = runner.stats()
    noon = clock.now().timestamp()
    assert stats["ok"] == JobStats(runs=2, failures=0, skipped=0, last_success=noon)
    assert stats["bad"] == JobStats(runs=1, failures=1, skipped=0, last_success=None)
    assert stats["s"] == JobStats(runs=0, failures=0, skipped=3, last_success=None)
    assert not [r for r in caplog.records if r.getMessage().startswith("job s")]  # quiet


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s must be positive"):
        Job("never", 0, lambda: None)


def test_the_control_plane_job_prunes_the_prediction_log_by_its_settings(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2024, 3, 31, 12, tzinfo=UTC))
    settings = Settings(
        home=tmp_path,
        predictions=PredictionLogSettings(retention_days=7),
        controlplane=ControlPlaneSettings(prune_interval_s=60),
    )
    folder = settings.predictions_dir
    for day in ("2024-03-01", "2024-03-02", "2024-03-30"):
        (folder / "fraud" / day).mkdir(parents=True)
        (folder / "fraud" / day / "segment-1.parquet").write_bytes(b"x")
    jobs = {job.name: job for job in control_plane_jobs(settings, clock)}
    assert {"evaluate-experiments", "score-drift", "prune-predictions"} <= jobs.keys()
    job = jobs["prune-predictions"]
    assert (job.name, job.interval_s) == ("prune-predictions", 60)
    assert job.run() == (
        f"deleted 2 segment(s) of {folder}: fraud/2024-03-01/segment-1.parquet, "
        "fraud/2024-03-02/segment-1.parquet"
    )
    assert job.run() == "deleted no segment"
    assert [p.parent.name for p in folder.glob("*/*/*.parquet")] == ["2024-03-30"]


def test_no_retention_rule_no_job(tmp_path: Path) -> None:
    keep = PredictionLogSettings(retention_days=None, max_bytes=None)
    kept = control_plane_jobs(Settings(home=tmp_path, predictions=keep))
    assert [j.name for j in kept] == [
        "evaluate-experiments",
        "score-drift",
        "materialize-features",
        "evaluate-alerts",
        "deliver-notifications",
        "prune-alerts",
    ]  # nothing to prune in the prediction log


def test_exclusive_lets_one_holder_in_at_a_time(tmp_path: Path) -> None:
    lock = tmp_path / "jobs" / "experiments.lock"
    with exclusive(lock) as first:
        assert first
        # flock locks belong to an open file: a second open of it is another holder.
        with exclusive(lock) as second:
            assert not second
    with exclusive(lock) as again:
        assert again


def test_the_evaluation_job_runs_on_an_empty_installation(tmp_path: Path) -> None:
    evaluate = control_plane_jobs(Settings(home=tmp_path))[0]
    assert evaluate.name == "evaluate-experiments"
    assert evaluate.run() is None  # no experiments: nothing to say
    with exclusive(tmp_path / "experiments.lock"), pytest.raises(JobSkipped):
        evaluate.run()  # another process evaluates: this one skips its turn


def test_the_drift_job_takes_turns_and_hands_its_scores_over(tmp_path: Path) -> None:
    told: list[list[object]] = []
    jobs = control_plane_jobs(Settings(home=tmp_path), on_drift=told.append)
    [drift] = [job for job in jobs if job.name == "score-drift"]
    assert drift.interval_s == 300
    assert drift.run() == (
        "scored 0 windows of 0 deployments; 0 features drifted from their reference; "
        "pruned 0 buckets, 0 verdicts"
    )
    assert told == [[]]
    with pytest.raises(JobSkipped, match="another process did it"):
        drift.run()  # done this interval (by whoever): the scores are still handed over
    assert told == [[], []]
    with exclusive(tmp_path / "drift.lock"), pytest.raises(JobSkipped):
        drift.run()


def test_a_turn_is_taken_once_per_interval_whoever_takes_it(tmp_path: Path) -> None:
    now = [1000.0]
    lock = tmp_path / "job.lock"
    with turn(lock, 10, lambda: now[0]):
        pass  # did the work
    now[0] += 8.9
    with pytest.raises(JobSkipped, match="did it 8.9 s ago"), turn(lock, 10, lambda: now[0]):
        pass
    now[0] += 0.1  # 9 s: the share of the interval after which another may go
    with turn(lock, 10, lambda: now[0]):
        pass
    with pytest.raises(RuntimeError), turn(lock, 10, lambda: now[0] + 20):
        raise RuntimeError("failed")  # a failed run does not stamp: the next one may go
    with turn(lock, 10, lambda: now[0] + 20):
        pass
    with exclusive(lock), pytest.raises(JobSkipped, match="another process is doing it"):
        with turn(lock, 10, lambda: now[0] + 100):
            pass
    lock.write_text("garbage")
    with turn(lock, 10, lambda: now[0]):
        pass


def test_the_materialisation_job_continues_each_online_view(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa
    import pyarrow.parquet as pq

    from modelport.features import Entity, FeatureView, Field, FileSource, Float64
    from modelport.service.wiring import open_feature_store

    now = datetime(2026, 12, 8, tzinfo=UTC)
    settings = Settings(home=tmp_path)
    [job] = [
        j for j in control_plane_jobs(settings, FakeClock(now)) if j.name == "materialize-features"
    ]
    assert job.interval_s == 300
    assert job.run() == "no online feature views"
    source = tmp_path / "stats.parquet"
    pq.write_table(
        pa.table({"user_id": [1, 2], "ts": [now - timedelta(hours=1), now], "spend": [1.0, 2.0]}),
        source,
    )
    user = Entity(name="user", join_keys=["user_id"])
    view = FeatureView(
        name="stats",
        entities=[user],
        schema=[Field(name="spend", dtype=Float64)],
        source=FileSource(path=str(source), timestamp_field="ts"),
        ttl=timedelta(days=1),
    )
    with open_feature_store(settings) as store:
        store.apply([user, view])
    later = control_plane_jobs(settings, FakeClock(now + timedelta(minutes=10)))
    [job] = [j for j in later if j.name == "materialize-features"]
    with pytest.raises(JobSkipped, match="another process did it"):
        job.run()  # the empty run took this interval's turn
    (tmp_path / "materialize.lock").unlink()
    assert job.run() == "stats: 2 rows"
    with open_feature_store(settings) as store:
        got = store.get_online_features(["stats:spend"], [{"user_id": 2}], now=now)
        assert got.to_dict() == {"user_id": [2], "spend": [2.0]}
