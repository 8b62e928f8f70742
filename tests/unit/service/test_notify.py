"""Delivering the outbox to a real HTTP receiver on a loopback port.

The receiver is ``http.server`` in a thread; it answers each POST with the next status of its
script and keeps what it got. Alerts are made by a real AlertService over SQLite, so what is
delivered is what an evaluation queued.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelport.core.alert import parse_alert_rule
from modelport.core.deployment import parse_deployment
from modelport.experiments.store import DeploymentStore
from modelport.monitoring.alert_records import Evaluation, NewNotification
from modelport.monitoring.alert_rules import AlertRuleStore
from modelport.monitoring.alert_state import AlertStateStore
from modelport.monitoring.alerting import ZERO_TIME, fingerprint
from modelport.monitoring.signals import SignalRow
from modelport.service.alerts import AlertService, AlertTimings
from modelport.service.notify import GIVE_UP_AFTER_S, Notifier, backoff
from modelport.testing import FakeClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Receiver:
    """A webhook receiver: answers POSTs with the statuses of ``script`` (then 200)."""

    def __init__(self, *script: int) -> None:
        self.script = list(script)
        self.got: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.got.append(json.loads(body))
                status = outer.script.pop(0) if outer.script else 200
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


def receiver(receivers: list[Receiver], *script: int) -> Receiver:
    made = Receiver(*script)
    receivers.append(made)
    return made


class Plane:
    """One control plane's alert service over a data directory (open, close, open again)."""

    def __init__(self, url: str, clock: FakeClock) -> None:
        self.rules = AlertRuleStore(url, clock)
        self.state = AlertStateStore(url)
        self.deployments = DeploymentStore(url, clock)
        self.service = AlertService(
            self.rules, self.state, self.deployments, clock, AlertTimings(15, 15, 14400)
        )
        self.notifier = Notifier(self.state, clock, random=lambda: 0.5)

    def close(self) -> None:
        for store in (self.rules, self.state, self.deployments):
            store.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'm.db'}"


def firing_rule(plane: Plane, clock: FakeClock, *urls: str) -> None:
    """A deployment, an errorRate rule over it, and five minutes of failing traffic."""
    doc = {
        "apiVersion": "modelport.io/v1",
        "kind": "Deployment",
        "metadata": {"name": "fraud"},
        "spec": {"variants": [{"name": "a", "model": "fraud@1", "weight": 100}]},
    }
    plane.deployments.apply(parse_deployment(doc), "tests")
    rule = {
        "apiVersion": "modelport.io/v1",
        "kind": "AlertRule",
        "metadata": {"name": "fraud-errors"},
        "spec": {
            "deployment": "fraud",
            "severity": "critical",
            "condition": {"errorRate": {"above": 0.05, "window": "5m"}},
            "annotations": {"summary": "fraud fails"},
            "receivers": [{"url": u} for u in urls],
        },
    }
    plane.rules.apply(parse_alert_rule(rule), "tests")
    rows = [
        SignalRow(
            "fraud",
            "a",
            T0 + timedelta(seconds=15 * i),
            15.0,
            requests=100,
            errors=50,
            edges=(0.1,),
            buckets=(100, 0),
        )  # fmt: skip
        for i in range(20)
    ]
    plane.state.add_signals(rows, "w1")
    clock.advance(300 + 5)


LABELS = {"alertname": "fraud-errors", "deployment": "fraud", "severity": "critical"}


def test_a_firing_alert_reaches_the_receiver_as_alertmanager_v4(
    url: str, receivers: list[Receiver]
) -> None:
    hook = receiver(receivers)
    clock = FakeClock(T0)
    plane = Plane(url, clock)
    try:
        firing_rule(plane, clock, hook.url)
        plane.service.evaluate()
        assert plane.notifier.deliver_due() == "1 notification(s) delivered, 0 to retry, 0 given up"
        [payload] = hook.got
        assert payload["version"] == "4" and payload["status"] == "firing"
        assert payload["receiver"] == "fraud-errors" and payload["commonLabels"] == LABELS
        [alert] = payload["alerts"]
        assert alert["fingerprint"] == fingerprint(LABELS) and alert["endsAt"] == ZERO_TIME
        assert alert["annotations"]["summary"] == "fraud fails"
        assert plane.notifier.deliver_due() is None  # delivered once
        assert plane.state.pending_notifications() == {}
    finally:
        plane.close()


def test_a_failing_receiver_gets_it_on_the_fourth_try_after_growing_delays(
    url: str, receivers: list[Receiver]
) -> None:
    hook = receiver(receivers, 500, 500, 500)
    clock = FakeClock(T0)
    plane = Plane(url, clock)
    try:
        firing_rule(plane, clock, hook.url)
        plane.service.evaluate()
        delays = []
        for _ in range(3):
            assert "1 to retry" in (plane.notifier.deliver_due() or "")
            [entry] = plane.state.notifications()
            delays.append((entry.next_attempt_at - clock.now()).total_seconds())
            assert entry.last_error is not None and entry.last_error.startswith("HTTP 500")
            assert plane.notifier.deliver_due() is None  # not due before its time
            clock.advance(delays[-1])
        assert delays == [backoff(1, 0.5), backoff(2, 0.5), backoff(3, 0.5)]
        assert delays[0] < delays[1] < delays[2]
        assert "1 notification(s) delivered" in (plane.notifier.deliver_due() or "")
        [entry] = plane.state.notifications()
        assert entry.attempts == 4 and entry.delivered_at == clock.now()
        assert len(hook.got) == 4 and hook.got[0] == hook.got[3]
    finally:
        plane.close()


def test_backoff_doubles_from_five_seconds_up_to_five_minutes_with_jitter() -> None:
    assert [backoff(n, 0.0) for n in (1, 2, 3)] == [2.5, 5.0, 10.0]
    assert [backoff(n, 0.999999) for n in (1, 2)] == pytest.approx([5.0, 10.0])
    assert backoff(20, 0.0) == 150.0 and backoff(20, 0.999999) == pytest.approx(300.0)


def test_what_one_process_queued_is_delivered_by_the_next(
    url: str, receivers: list[Receiver]
) -> None:
    hook = receiver(receivers)
    clock = FakeClock(T0)
    first = Plane(url, clock)
    firing_rule(first, clock, hook.url)
    first.service.evaluate()
    first.close()  # stopped before delivering: a restart
    second = Plane(url, clock)
    try:
        assert "1 notification(s) delivered" in (second.notifier.deliver_due() or "")
        assert hook.got[0]["alerts"][0]["fingerprint"] == fingerprint(LABELS)
    finally:
        second.close()


def test_a_resolved_notification_has_ends_at(url: str, receivers: list[Receiver]) -> None:
    hook = receiver(receivers)
    clock = FakeClock(T0)
    plane = Plane(url, clock)
    try:
        firing_rule(plane, clock, hook.url)
        plane.service.evaluate()
        clock.advance(600)  # no traffic since: the window holds nothing, the condition ends
        plane.service.evaluate()
        plane.notifier.deliver_due()
        firing, resolved = hook.got
        assert firing["alerts"][0]["endsAt"] == ZERO_TIME
        assert resolved["status"] == "resolved"
        ends = datetime.fromisoformat(resolved["alerts"][0]["endsAt"].replace("Z", "+00:00"))
        assert ends == clock.now()
        assert resolved["alerts"][0]["startsAt"] == firing["alerts"][0]["startsAt"]
    finally:
        plane.close()


def test_a_refusing_receiver_is_given_up_and_does_not_hold_the_others(
    url: str, receivers: list[Receiver]
) -> None:
    refusing, down, fine = receiver(receivers, 404), receiver(receivers, 503), receiver(receivers)
    clock = FakeClock(T0)
    with AlertStateStore(url) as state:
        state.save(
            Evaluation(
                T0,
                notifications=[
                    NewNotification("r", refusing.url, "alertmanager", {"n": 1}),
                    NewNotification("r", down.url, "slack", {"n": 2}),
                    NewNotification("r", down.url, "slack", {"n": 3}),
                    NewNotification("r", fine.url, "slack", {"n": 4}),
                ],
            )
        )
        notifier = Notifier(state, clock, random=lambda: 0.0)
        summary = notifier.deliver_due()
        assert summary == "1 notification(s) delivered, 1 to retry, 1 given up"
        assert [r.got for r in (refusing, down, fine)] == [[{"n": 1}], [{"n": 2}], [{"n": 4}]]
        by_n = {n.payload["n"]: n for n in state.notifications()}
        assert by_n[1].given_up and by_n[1].last_error == "HTTP 404: no"
        assert by_n[3].attempts == 0  # its receiver failed first: it waits its turn
        clock.advance(2.5)
        assert notifier.deliver_due() == "2 notification(s) delivered, 0 to retry, 0 given up"
        # a receiver that never answers is given up 24 h after the notification was made
        state.save(Evaluation(clock.now(), notifications=[
            NewNotification("r", "http://127.0.0.1:9/closed", "slack", {"n": 5})]))  # fmt: skip
        assert "1 to retry" in (notifier.deliver_due() or "")
        clock.advance(GIVE_UP_AFTER_S)
        assert "1 given up" in (notifier.deliver_due() or "")
