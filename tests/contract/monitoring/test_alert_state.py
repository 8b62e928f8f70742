"""The alert state store, against SQLite and PostgreSQL: signals, drift verdicts, alerts, outbox.

Also the migrated schema (up to 0003) matches ``_state_schema.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from modelport import db
from modelport.monitoring._state_schema import MIGRATIONS, drift_results, metadata
from modelport.monitoring.alert_records import (
    Evaluation,
    NewNotification,
    StoredAlert,
    StoredBaseline,
)
from modelport.monitoring.alert_state import AlertStateStore
from modelport.monitoring.alerting import Baseline
from modelport.monitoring.signals import SignalRow
from tests.contract._schema import schema_drift

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EDGES = (0.1, 0.25)


@pytest.fixture
def store(backend_url: str) -> Iterator[AlertStateStore]:
    with AlertStateStore(backend_url) as opened:
        yield opened


def row(start: datetime, variant: str = "a", requests: int = 10, **kw: object) -> SignalRow:
    return SignalRow(
        "fraud", variant, start, 15.0, requests=requests, edges=EDGES,
        buckets=(requests, 0, 0), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def alert(state: str = "firing", fingerprint: str = "00000000000000aa") -> StoredAlert:
    return StoredAlert(
        "fraud-errors", fingerprint, "fraud", {"alertname": "fraud-errors", "team": "risk"},
        {"summary": "s"}, (("http://127.0.0.1:9/hook", "alertmanager"),), state,  # type: ignore[arg-type]
        T0, T0 if state != "pending" else None, T0 if state == "resolved" else None, T0, 0.2, T0,
    )  # fmt: skip


def test_the_migrated_schema_matches_the_tables(backend_url: str, store: AlertStateStore) -> None:
    assert schema_drift(backend_url, MIGRATIONS, metadata) == []


def test_signals_of_every_writer_come_back_by_the_end_of_their_bucket(
    store: AlertStateStore,
) -> None:
    store.add_signals([row(T0), row(T0, "b", errors=2, queue_fill=0.5)], "host:1:0")
    store.add_signals([row(T0, requests=3, samples=4, not_ready=1)], "host:2:0")
    store.add_signals([row(T0 + timedelta(seconds=15))], "host:1:0")
    got = store.signals("fraud", T0, T0 + timedelta(seconds=15))
    assert sorted((r.variant, r.requests, r.errors, r.samples) for r in got) == [
        ("a", 3, 0, 4), ("a", 10, 0, 0), ("b", 10, 2, 0),
    ]  # fmt: skip
    b = next(r for r in got if r.variant == "b")
    assert b.edges == EDGES and b.buckets == (10, 0, 0) and b.queue_fill == 0.5
    assert b.start == T0 and b.end == T0 + timedelta(seconds=15)
    assert store.signals("other", T0 - timedelta(hours=1), T0 + timedelta(hours=1)) == []
    later = store.signals("fraud", T0 + timedelta(seconds=15), T0 + timedelta(seconds=30))
    assert [r.start for r in later] == [T0 + timedelta(seconds=15)]


def test_a_retried_write_of_rows_already_stored_skips_them(store: AlertStateStore) -> None:
    store.add_signals([row(T0)], "w")
    store.add_signals([row(T0), row(T0 + timedelta(seconds=15))], "w")
    assert len(store.signals("fraud", T0 - timedelta(hours=1), T0 + timedelta(hours=1))) == 2


def test_the_newest_reference_verdict_per_variant_on_the_rules_window(
    store: AlertStateStore,
) -> None:
    def verdict(variant: str, end: datetime, hours: float, against: str, score: float) -> dict:
        return {
            "deployment": "fraud", "variant": variant, "model": "m", "version": "3",
            "window_start": end - timedelta(hours=hours), "window_end": end,
            "against": against, "rows": 100, "baseline_rows": 1000,
            "report": {"features": [
                {"name": "input[0]", "score": score, "threshold": 0.2, "drifted": score > 0.2},
                {"name": "output:predict", "score": None, "threshold": 0.1, "drifted": False},
            ]},
            "drifted": ["input[0]"] if score > 0.2 else [], "evaluated_at": end,
        }  # fmt: skip

    with db.write(store._engine) as conn:
        conn.execute(
            insert(drift_results),
            [
                verdict("a", T0 - timedelta(hours=1), 1, "reference", 0.9),
                verdict("a", T0, 1, "reference", 0.05),
                verdict("a", T0 + timedelta(minutes=5), 1, "previous", 0.9),
                verdict("a", T0 + timedelta(minutes=5), 24, "reference", 0.9),
                verdict("b", T0 - timedelta(hours=5), 1, "reference", 0.9),
            ],
        )
    [newest] = store.latest_drift("fraud", 3600.0, since=T0 - timedelta(hours=2))
    assert (newest.variant, newest.window_end, newest.version) == ("a", T0, "3")
    assert [(f.name, f.score, f.drifted) for f in newest.features] == [
        ("input[0]", 0.05, False), ("output:predict", None, False),
    ]  # fmt: skip
    [day] = store.latest_drift("fraud", 86400.0, since=T0 - timedelta(days=2))
    assert day.features[0].drifted


def test_an_evaluation_writes_alerts_baselines_and_notifications_together(
    store: AlertStateStore,
) -> None:
    note = NewNotification("fraud-errors", "http://127.0.0.1:9/hook", "alertmanager", {"v": "4"})
    store.save(
        Evaluation(
            T0, [alert(), alert("pending", "00000000000000bb")], (),
            [StoredBaseline("fraud-traffic", "request_rate", Baseline(3.0, 0.5, 7), T0)], (),
            [note, note],
        )
    )  # fmt: skip
    [firing, pending] = store.alerts()
    assert firing.state == "firing" and firing.labels["team"] == "risk"
    assert firing.receivers == (("http://127.0.0.1:9/hook", "alertmanager"),)
    assert pending.state == "pending" and pending.fired_at is None
    assert store.baselines()["fraud-traffic"].baseline == Baseline(3.0, 0.5, 7)
    assert store.pending_notifications() == {"fraud-errors": 2}
    assert [n.created_at for n in store.due(T0)] == [T0, T0]
    store.save(
        Evaluation(
            T0 + timedelta(minutes=1),
            [alert("resolved")],
            [("fraud-errors", "00000000000000bb")],
            [StoredBaseline("fraud-traffic", "request_rate", Baseline(4.0, 0.5, 8), T0)],
            (),
        )
    )
    [resolved] = store.alerts(deployment="fraud")
    assert resolved.state == "resolved" and resolved.resolved_at == T0
    assert store.baselines()["fraud-traffic"].baseline.observations == 8
    store.save(Evaluation(T0, baselines_removed=["fraud-traffic"]))
    assert store.baselines() == {} and store.alerts(rule="nope") == []


def test_the_outbox_records_attempts_and_is_due_oldest_first(store: AlertStateStore) -> None:
    notes = [
        NewNotification("r", f"http://127.0.0.1:9/{i}", "slack", {"text": str(i)}) for i in range(3)
    ]
    store.save(Evaluation(T0, notifications=notes))
    first, second, third = store.due(T0)
    assert first.id < second.id < third.id and first.payload == {"text": "0"}
    store.attempted(first.id, 1, delivered_at=T0)
    store.attempted(second.id, 1, next_attempt_at=T0 + timedelta(seconds=5), error="HTTP 500")
    store.attempted(third.id, 1, error="HTTP 404", given_up=True)
    assert store.due(T0) == []
    [retry] = store.due(T0 + timedelta(seconds=5))
    assert (retry.id, retry.attempts, retry.last_error) == (second.id, 1, "HTTP 500")
    assert store.pending_notifications() == {"r": 1}
    by_id = {n.id: n for n in store.notifications("r")}
    assert by_id[first.id].delivered_at == T0 and by_id[third.id].given_up


def test_pruning_keeps_what_is_recent_and_what_is_pending(store: AlertStateStore) -> None:
    store.add_signals([row(T0 - timedelta(days=8)), row(T0)], "w")
    store.save(
        Evaluation(
            T0 - timedelta(days=8),
            [alert("resolved")],
            notifications=[NewNotification("r", "http://127.0.0.1:9/", "slack", {})] * 3,
        )
    )
    old = store.due(T0)
    store.attempted(old[0].id, 1, delivered_at=T0 - timedelta(days=8))
    store.attempted(old[1].id, 1, given_up=True, error="HTTP 400")
    cutoff = T0 - timedelta(days=7)
    assert store.prune(cutoff, cutoff, T0 - timedelta(days=7, hours=12)) == (1, 2, 0)
    assert len(store.signals("fraud", T0 - timedelta(days=30), T0 + timedelta(days=1))) == 1
    assert [n.id for n in store.notifications()] == [old[2].id]  # never delivered: kept
    assert store.prune(cutoff, cutoff, T0 + timedelta(days=1)) == (0, 0, 1)
