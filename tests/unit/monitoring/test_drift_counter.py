"""Drift windows counted from logged records, per version and minute, mergeable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson

from modelport.drift import Profile, detect, profile
from modelport.monitoring.drift_counter import DriftCounter
from modelport.monitoring.prediction_log import PredictionRecord

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RNG = np.random.default_rng(0)
REFERENCE = RNG.normal(size=(2_000, 2))
PROFILE = profile(
    {"input[0]": REFERENCE[:, 0], "input[1]": REFERENCE[:, 1],
     "output:predict": (REFERENCE[:, 0] > 0).astype(int)},
    categorical=["output:predict"],
)  # fmt: skip


def record(rows: np.ndarray, at: datetime, *, shadow: bool = False, error: str | None = None,
           version: str = "1") -> PredictionRecord:  # fmt: skip
    outputs = {"predict": (rows[:, 0] > 0).astype(int).tolist()}
    return PredictionRecord(
        "r", at, "fraud", "a", "fraud", version, shadow, 1.0, None,
        orjson.dumps({"input": rows.tolist()}).decode(),
        "{}" if error else orjson.dumps(outputs).decode(), error,
    )  # fmt: skip


def counter(known: Profile | None = PROFILE, hidden: tuple[str, ...] = ()) -> DriftCounter:
    return DriftCounter(lambda model, version: known if version == "1" else None,
                        lambda deployment: hidden)  # fmt: skip


def test_answers_are_counted_per_minute_and_add_up_to_the_whole() -> None:
    window = RNG.normal(size=(300, 2))
    drift = counter()
    records = [record(window[i : i + 3], T0 + timedelta(seconds=i // 3)) for i in range(0, 300, 3)]
    records.append(record(window[:5], T0, shadow=True))  # a shadow's copy: not counted
    records.append(record(window[:5], T0, error="unavailable"))  # a failure: not counted
    records.append(record(window[:5], T0, version="2"))  # no profile: not counted
    drift.observe(records[:50])
    drift.observe(records[50:])
    slices = drift.take()
    assert [(s.start, s.counts.rows) for s in slices] == [
        (T0, 180), (T0 + timedelta(minutes=1), 120),
    ]  # fmt: skip
    whole = slices[0].counts + slices[1].counts
    columns = {"input[0]": window[:, 0], "input[1]": window[:, 1],
               "output:predict": (window[:, 0] > 0).astype(int)}  # fmt: skip
    assert whole == PROFILE.count(columns)
    assert detect(PROFILE, whole).drifted == ()
    assert drift.take() == []  # taken


def test_a_shift_is_seen_and_hidden_inputs_are_missing_not_drift() -> None:
    shifted = RNG.normal(size=(3_000, 2)) + np.array([0.0, 1.0])
    drift = counter()
    drift.observe([record(shifted, T0)])
    [window] = drift.take()
    assert detect(PROFILE, window.counts).drifted == ("input[1]",)
    private = counter(hidden=("input",))
    private.observe([record(shifted, T0)])
    [hidden] = private.take()
    report = detect(PROFILE, hidden.counts)
    assert report["input[1]"].missing_rate == 1.0 and not report["input[1]"].drifted


def test_bad_records_are_counted_as_failures_never_raised() -> None:
    drift = counter()
    broken = record(RNG.normal(size=(2, 2)), T0)
    broken.inputs = '{"input": [["x", "y"], ["z", "w"]]}'
    drift.observe([broken, record(RNG.normal(size=(2, 2)), T0, version="1")])
    assert drift.failures == 1 and drift.take() == []  # the group with the bad one is skipped
    nothing = counter(known=None)
    nothing.observe([record(RNG.normal(size=(2, 2)), T0)])
    assert nothing.take() == [] and nothing.failures == 0


def test_profiles_are_looked_up_once_per_version_and_again_later() -> None:
    asked: list[tuple[str, str]] = []
    now = [0.0]

    def profiles(model: str, version: str) -> Profile | None:
        asked.append((model, version))
        return None

    drift = DriftCounter(profiles, lambda d: (), monotonic=lambda: now[0])
    for _ in range(3):
        drift.observe([record(RNG.normal(size=(2, 2)), T0)])
    assert asked == [("fraud", "1")]
    now[0] = 301.0
    drift.observe([record(RNG.normal(size=(2, 2)), T0)])
    assert asked == [("fraud", "1"), ("fraud", "1")]  # a profile may have been made since


def test_only_ended_buckets_are_taken_and_a_late_record_makes_a_new_slice() -> None:
    drift = counter()
    rows = RNG.normal(size=(4, 2))
    drift.observe([record(rows, T0 + timedelta(seconds=59)),
                   record(rows, T0 + timedelta(seconds=61))])  # fmt: skip
    minute = (T0 + timedelta(minutes=1)).timestamp()
    [ended] = drift.take(before=minute)
    assert (ended.start, ended.seconds, ended.variant, ended.counts.rows) == (T0, 60.0, "a", 4)
    drift.observe([record(rows[:1], T0 + timedelta(seconds=30))])  # arrived late
    late, running = drift.take(before=minute)[0], drift.take()
    assert (late.start, late.counts.rows) == (T0, 1)
    assert [(s.start, s.counts.rows) for s in running] == [(T0 + timedelta(minutes=1), 4)]
