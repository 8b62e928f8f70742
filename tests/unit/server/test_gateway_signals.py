"""GatewaySignals: a worker's samples and counts written as traffic_windows rows.

A real Gateway over a real (SQLite) deployment store and a real alert state store; the backends
are small stand-ins: one like a pool of replicas (readiness is the pool's), one like the
in-process data plane (readiness and batch queues are the hosted versions').
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from modelport.core.deployment import Deployment, parse_deployment
from modelport.core.settings import BatchingSettings, Settings
from modelport.experiments.store import DeploymentStore
from modelport.monitoring.alert_state import AlertStateStore
from modelport.monitoring.signals import SignalRow
from modelport.server.gateway.local import LocalBackend
from modelport.server.gateway.signals import MAX_PENDING_ROWS, GatewaySignals
from modelport.service.gateway import Answer, Backend, Call, Gateway
from modelport.testing import FakeClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EDGES = (0.1, 0.25)


class Replicas:
    """Answers like a pool of model servers; ``up`` is its readiness."""

    def __init__(self) -> None:
        self.up = True
        self.status = 200

    def prepare(self, model: str, version: str) -> None:
        pass

    async def infer(self, model: str, version: str, call: Call) -> Answer:
        body = orjson.dumps({"model_name": call.deployment, "outputs": []})
        return Answer(self.status, body, None, version, None if self.status == 200 else "x")

    async def metadata(self, model: str, version: str, call: Call) -> dict[str, Any]:
        return {}

    async def model_ready(self, model: str, version: str, call: Call) -> bool:
        return self.up

    def ready(self) -> bool:
        return self.up


@dataclass
class Source:
    name: str
    version: str
    batching: BatchingSettings | None


@dataclass
class Batcher:
    queued_rows: int = 0


@dataclass
class Hosted:
    source: Source
    batcher: Batcher | None
    ready: bool = True


@dataclass
class Repository:
    hosted: list[Hosted] = field(default_factory=list)

    def __iter__(self) -> Iterator[Hosted]:
        return iter(self.hosted)

    def load_source(self, source: Any) -> tuple[None, list[Any]]:
        return None, []

    def get(self, model: str, version: str) -> Hosted:
        return next(h for h in self.hosted if (h.source.name, h.source.version) == (model, version))


@dataclass
class DataPlane:
    repository: Repository

    def model_ready(self, model: str, version: str) -> bool:
        return self.repository.get(model, version).ready


class Backends:
    def __init__(self, backend: Any) -> None:
        self.one = backend

    def backend(self, deployment: Deployment) -> Backend:
        return self.one  # type: ignore[no-any-return]

    async def retain(self, used: Iterable[Backend]) -> None:
        pass


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'm.db'}"


def world(url: str, backend: Any) -> tuple[Gateway, DeploymentStore]:
    store = DeploymentStore(url, FakeClock())
    doc = {
        "apiVersion": "modelport.io/v1",
        "kind": "Deployment",
        "metadata": {"name": "fraud"},
        "spec": {"variants": [{"name": "a", "model": "fraud@1", "weight": 50},
                              {"name": "b", "model": "fraud@2", "weight": 50}]},
    }  # fmt: skip
    store.apply(parse_deployment(doc), "tests")
    gateway = Gateway(
        store, lambda ref: str(ref.version), Backends(backend), clock=FakeClock(),
        latency_buckets=EDGES,
    )  # fmt: skip
    return gateway, store


def signals(url: str, gateway: Gateway, dataplane: Any, clock: FakeClock) -> GatewaySignals:
    settings = Settings(database_url=url)
    return GatewaySignals(settings, gateway, dataplane, clock, EDGES, worker_index=3)


def stored(url: str) -> list[SignalRow]:
    with AlertStateStore(url) as state:
        return state.signals("fraud", T0 - timedelta(days=1), T0 + timedelta(days=1))


def test_requests_and_replica_readiness_become_rows_of_the_bucket(url: str) -> None:
    replicas = Replicas()
    gateway, store = world(url, replicas)
    clock = FakeClock(T0)

    async def run() -> None:
        await gateway.refresh()
        recorder = signals(url, gateway, None, clock)
        route = gateway.route("fraud")
        for n in range(10):
            call = Call("fraud", b"{}", None, f"r{n}")
            replicas.status = 503 if n < 3 else 200
            assignment = gateway.assign(route, call, None, "a")
            await gateway.infer(route, assignment, call)
        recorder.sample()
        replicas.up = False
        recorder.sample()
        clock.advance(15)
        await recorder.flush(clock.now())
        await recorder.stop()

    asyncio.run(run())
    store.close()
    rows = {r.variant: r for r in stored(url)}
    assert (rows["a"].requests, rows["a"].errors, rows["a"].latency_count) == (10, 3, 10)
    assert (rows["a"].samples, rows["a"].not_ready, rows["a"].queue_fill) == (2, 1, None)
    assert (rows["b"].requests, rows["b"].samples, rows["b"].not_ready) == (0, 2, 1)
    assert rows["a"].start == T0 and rows["a"].seconds == 15 and rows["a"].edges == EDGES
    assert len(rows["a"].buckets) == len(EDGES) + 1


def test_in_process_versions_report_their_readiness_and_queue_share(url: str) -> None:
    batching = BatchingSettings(max_queue_rows=200)
    repository = Repository(
        [
            Hosted(Source("fraud", "1", batching), Batcher(queued_rows=150)),
            Hosted(Source("fraud", "2", None), None, ready=False),
        ]
    )
    dataplane = DataPlane(repository)
    local = LocalBackend(dataplane, lambda model, version: None)  # type: ignore[arg-type,return-value]
    gateway, store = world(url, local)
    clock = FakeClock(T0)

    async def run() -> None:
        await gateway.refresh()
        recorder = signals(url, gateway, dataplane, clock)
        recorder.sample()
        repository.hosted[0].batcher = Batcher(queued_rows=20)
        recorder.sample()
        clock.advance(7)
        await recorder.stop()  # the last, partial bucket is written

    asyncio.run(run())
    store.close()
    rows = {r.variant: r for r in stored(url)}
    # two samples, and the one stopping takes
    assert rows["a"].queue_fill == 0.75 and (rows["a"].samples, rows["a"].not_ready) == (3, 0)
    assert rows["b"].queue_fill is None and rows["b"].not_ready == 3
    assert rows["a"].seconds == 7


class Refusing(AlertStateStore):
    """Refuses the first ``failures`` writes, as a database that is down would."""

    def __init__(self, url: str, failures: int) -> None:
        super().__init__(url)
        self.failures = failures

    def add_signals(self, rows: Any, writer: str) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("the database is down")
        super().add_signals(rows, writer)


def test_rows_the_database_refused_are_written_with_the_next_bucket(url: str) -> None:
    replicas = Replicas()
    gateway, store = world(url, replicas)
    clock = FakeClock(T0)
    refusing = Refusing(url, failures=1)

    async def run() -> None:
        await gateway.refresh()
        recorder = GatewaySignals(
            Settings(database_url=url), gateway, None, clock, EDGES, store=refusing
        )
        recorder.sample()
        clock.advance(15)
        await recorder.flush(clock.now())
        assert len(recorder.pending) == 2  # kept
        recorder.sample()
        clock.advance(15)
        await recorder.flush(clock.now())
        assert recorder.pending == []
        recorder.pending = [stored_row(i) for i in range(MAX_PENDING_ROWS + 5)]
        refusing.failures = 1
        await recorder.flush(clock.now())
        assert len(recorder.pending) == MAX_PENDING_ROWS and recorder.dropped == 5
        await recorder.stop()

    asyncio.run(run())
    store.close()
    later = T0 + timedelta(seconds=15)
    assert sorted(r.start for r in stored(url)) == [T0, T0, later, later]


def stored_row(i: int) -> SignalRow:
    return SignalRow("other", "a", T0 + timedelta(seconds=i), 1.0, samples=1)


def test_the_task_writes_on_interval_boundaries(url: str) -> None:
    replicas = Replicas()
    gateway, store = world(url, replicas)

    async def run() -> None:
        await gateway.refresh()
        from modelport.core.clock import SystemClock

        settings = Settings(database_url=url, monitoring={"signal_interval_s": 0.2})
        recorder = GatewaySignals(settings, gateway, None, SystemClock(), EDGES)
        recorder.start()
        await asyncio.sleep(0.7)
        await recorder.stop()

    asyncio.run(run())
    store.close()
    with AlertStateStore(url) as state:
        now = datetime.now(UTC)
        rows = state.signals("fraud", now - timedelta(minutes=1), now + timedelta(minutes=1))
    starts = sorted({r.start for r in rows})
    assert len(starts) >= 3
    for start in starts[1:]:  # every bucket after the first starts on a boundary of 0.2 s
        assert round(start.timestamp() * 1000) % 200 == 0
    assert all(r.samples >= 1 for r in rows)
