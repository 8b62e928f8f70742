"""Alert evaluation and notification payloads, against published values and hand-worked cases."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from modelport.monitoring.alerting import (
    ZERO_TIME,
    Alert,
    AlertState,
    Baseline,
    alertmanager_payload,
    burn_rate,
    fingerprint,
    slack_payload,
    slo_burning,
    step,
)

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_fingerprints_match_prometheus() -> None:
    # prometheus/common model: TestMetricToFingerprint's label set and the empty one.
    labels = {"name": "garland, briggs", "fear": "love is not enough"}
    assert int(fingerprint(labels), 16) == 5799056148416392346
    assert int(fingerprint({}), 16) == 14695981039346656037
    assert fingerprint(labels) == fingerprint(dict(reversed(list(labels.items()))))


def test_burn_rates_follow_the_sre_workbook() -> None:
    # 99.9% objective: 1.44% of requests bad burns the budget 14.4 times too fast.
    assert burn_rate(144, 10_000, 0.999) == pytest.approx(14.4)
    assert burn_rate(0, 0, 0.99) == 0.0
    with pytest.raises(ValueError, match="bad <= total"):
        burn_rate(5, 4, 0.99)
    with pytest.raises(ValueError, match="between 0 and 1"):
        burn_rate(1, 4, 1.0)
    windows = [(3600.0, 300.0, 14.4), (21600.0, 1800.0, 6.0)]
    counts = {
        3600.0: (200, 10_000),
        300.0: (30, 1_000),
        21600.0: (300, 60_000),
        1800.0: (40, 8_000),
    }
    burning, report = slo_burning(windows, counts, 0.999)
    assert burning and report[0]["long_rate"] == pytest.approx(20.0)
    # The long window burns, the short one no longer does: the alert stops (resolves fast).
    counts[300.0] = (1, 1_000)
    assert slo_burning(windows, counts, 0.999)[0] is False
    # Too few events burn nothing.
    assert slo_burning(windows, {k: (1, 2) for k in counts}, 0.999, min_events=100)[0] is False


def test_an_ewma_baseline_and_its_z_score() -> None:
    rng = np.random.default_rng(0)
    base = Baseline()
    assert base.z(100.0) == 0.0  # not ready
    for value in rng.normal(100.0, 5.0, 2_000):
        base = base.update(float(value), elapsed_s=60, half_life_s=3600)
    assert base.mean == pytest.approx(100.0, abs=2.0)
    assert math.sqrt(base.variance) == pytest.approx(5.0, rel=0.2)
    assert abs(base.z(101.0)) < 1.0 and base.z(140.0) > 6.0 and base.z(60.0) < -6.0
    flat = Baseline()
    for _ in range(10):
        flat = flat.update(3.0, 60, 3600)
    assert flat.z(3.0) == 0.0 and flat.z(4.0) == math.inf
    with pytest.raises(ValueError, match="finite"):
        base.update(math.nan, 60, 3600)


def test_the_weighting_matches_the_closed_form() -> None:
    # Two observations a half-life apart: the second has weight 1/2.
    base = Baseline().update(10.0, 1, 60).update(20.0, 60, 60)
    assert base.mean == pytest.approx(15.0)
    assert base.variance == pytest.approx(0.5 * (0.0 + 0.5 * 100.0))


def test_an_alert_waits_for_its_for_fires_once_and_resolves() -> None:
    state = AlertState()
    state, sent = step(state, True, T0, for_s=120)
    assert (state.status, sent) == ("pending", None)
    state, sent = step(state, True, T0 + timedelta(seconds=60), for_s=120)
    assert (state.status, sent) == ("pending", None)
    state, sent = step(state, True, T0 + timedelta(seconds=120), for_s=120)
    assert (state.status, sent, state.fired_at) == ("firing", "firing", T0 + timedelta(seconds=120))
    state, sent = step(state, True, T0 + timedelta(seconds=180), for_s=120)
    assert sent is None  # still firing: notified once
    state, sent = step(state, False, T0 + timedelta(seconds=240), for_s=120)
    assert (state.status, sent) == ("inactive", "resolved")
    # A pending alert whose condition stops holding starts its wait again.
    state, _ = step(AlertState(), True, T0, for_s=120)
    state, sent = step(state, False, T0 + timedelta(seconds=60), for_s=120)
    assert (state.status, sent) == ("inactive", None)
    assert step(AlertState(), True, T0, for_s=0)[1] == "firing"


def test_the_alertmanager_payload_has_version_4s_shape() -> None:
    labels = {"alertname": "fraud-latency", "deployment": "fraud", "severity": "critical"}
    firing = Alert(labels, {"summary": "slow"}, "firing", T0, None, "http://cp/v1/alerts")
    resolved = Alert(
        {**labels, "variant": "b"}, {"summary": "slow"}, "resolved", T0, T0 + timedelta(minutes=5)
    )
    payload = alertmanager_payload("ops", [firing, resolved], "http://cp")
    assert set(payload) == {
        "version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
        "commonLabels", "commonAnnotations", "externalURL", "alerts",
    }  # fmt: skip
    assert payload["version"] == "4" and payload["status"] == "firing"
    assert payload["groupLabels"] == {"alertname": "fraud-latency", "deployment": "fraud"}
    assert payload["commonLabels"] == labels and payload["commonAnnotations"] == {"summary": "slow"}
    assert payload["groupKey"] == '{}:{alertname="fraud-latency", deployment="fraud"}'
    first, second = payload["alerts"]
    assert first["startsAt"] == "2026-12-07T12:00:00Z" and first["endsAt"] == ZERO_TIME
    assert second["endsAt"] == "2026-12-07T12:05:00Z" and second["status"] == "resolved"
    assert first["fingerprint"] == fingerprint(labels) != second["fingerprint"]
    assert alertmanager_payload("ops", [resolved])["status"] == "resolved"
    with pytest.raises(ValueError, match="at least one alert"):
        alertmanager_payload("ops", [])


def test_the_slack_payload() -> None:
    labels = {"alertname": "fraud-errors", "deployment": "fraud"}
    payload = slack_payload([Alert(labels, {"summary": "5% errors"}, "firing", T0)])
    assert payload["text"] == ":red_circle: *FIRING* fraud-errors (fraud): 5% errors"
    assert payload["blocks"][0]["text"]["type"] == "mrkdwn"
