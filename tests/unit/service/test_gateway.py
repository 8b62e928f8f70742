"""The gateway's use case: the deployment table, assignment, cache, prediction log and shadows.

Deployments live in a real (SQLite) deployment store; the backend is a small in-memory one that
answers like a model server (the real backends have their own tests), so these tests see
exactly which version each request reached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from modelport.core.deployment import Deployment, parse_deployment
from modelport.core.errors import ConfigError, InvalidInput, NotFound, ServiceUnavailable
from modelport.core.refs import ModelRef
from modelport.experiments.store import DeploymentStore
from modelport.features import FeatureStore
from modelport.monitoring.prediction_log import PredictionLog, read_predictions
from modelport.protocol.rest import decode_infer_request, encode_infer_request
from modelport.service.enrichment import LOG_INPUT
from modelport.service.gateway import Answer, Backend, Call, Gateway
from modelport.testing import FakeClock
from tests.unit.service.test_enrichment import NOW as ENRICH_NOW
from tests.unit.service.test_enrichment import enriched_document, open_store, signature

REQUEST = orjson.dumps(
    {"id": "r-1", "inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [[1, 2]]}]}
)


def document(name: str = "fraud", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "variants": [
            {"name": "current", "model": "fraud@1", "weight": 90},
            {"name": "candidate", "model": "fraud@latest", "weight": 10, "role": "treatment"},
        ],
        "traffic": {"stickyKey": {"header": "X-User-Id"}},
    }
    body.update(spec)
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": body,
    }


class ModelServer:
    """A backend answering ``{"model_name", "model_version", "outputs"}`` like a model server."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.prepared: list[tuple[str, str]] = []
        self.slow: dict[str, asyncio.Event] = {}
        self.failing: set[str] = set()
        self.raising: dict[str, Exception] = {}
        self.answering: dict[str, Answer] = {}
        self.refuse: set[tuple[str, str]] = set()

    def prepare(self, model: str, version: str) -> None:
        if (model, version) in self.refuse:
            raise ConfigError(f"{model}@{version} cannot be loaded")
        self.prepared.append((model, version))

    async def infer(self, model: str, version: str, call: Call) -> Answer:
        self.calls.append((model, version, call.request_id))
        if version in self.slow:
            await self.slow[version].wait()
        if version in self.failing:
            raise ServiceUnavailable(f"version {version} is down")
        if version in self.raising:
            raise self.raising[version]
        if version in self.answering:
            return self.answering[version]
        request_id = orjson.loads(call.body).get("id")
        answer: dict[str, Any] = {"model_name": call.deployment, "model_version": version}
        if request_id is not None:
            answer["id"] = request_id
        answer["outputs"] = [
            {"name": "y", "datatype": "FP64", "shape": [1], "data": [float(version)]}
        ]
        return Answer(200, orjson.dumps(answer), None, version, cpu_ms=float(version) / 8)

    async def metadata(self, model: str, version: str, call: Call) -> dict[str, Any]:
        return {"name": model, "versions": [version]}

    async def model_ready(self, model: str, version: str, call: Call) -> bool:
        return True

    def ready(self) -> bool:
        return True


class Backends:
    def __init__(self, backend: ModelServer) -> None:
        self.one = backend
        self.retained: list[set[Backend]] = []

    def backend(self, deployment: Deployment) -> Backend:
        return self.one

    async def retain(self, used: Iterable[Backend]) -> None:
        self.retained.append(set(used))


@pytest.fixture
def store(tmp_path: Path) -> DeploymentStore:
    with DeploymentStore(f"sqlite:///{tmp_path / 'm.db'}", FakeClock()) as store:
        yield store


def apply(store: DeploymentStore, doc: dict[str, Any]) -> None:
    store.apply(parse_deployment(doc), "alice")


class Registry:
    def __init__(self) -> None:
        self.aliases = {"latest": "2"}

    def resolve(self, ref: ModelRef) -> str:
        if ref.version is not None:
            return str(ref.version)
        assert ref.alias is not None
        return self.aliases[ref.alias]


def gateway(
    store: DeploymentStore,
    backend: ModelServer,
    registry: Registry | None = None,
    predictions: PredictionLog | None = None,
    **options: Any,
) -> Gateway:
    registry = registry or Registry()
    return Gateway(
        store,
        registry.resolve,
        Backends(backend),
        predictions=predictions,
        clock=options.pop("clock", None) or FakeClock(),
        **options,
    )


def call(request_id: str = "r-1", body: bytes = REQUEST) -> Call:
    return Call("fraud", body, None, request_id)


def test_each_variant_serves_the_version_its_reference_names_now(store: DeploymentStore) -> None:
    apply(store, document())
    backend, registry = ModelServer(), Registry()
    gw = gateway(store, backend, registry)

    async def run() -> None:
        await gw.refresh()
        route = gw.route("fraud")
        assert route.served == {"current": ("fraud", "1"), "candidate": ("fraud", "2")}
        assert sorted(backend.prepared) == [("fraud", "1"), ("fraud", "2")]
        registry.aliases["latest"] = "3"  # the alias moved: same generation, new version
        await gw.refresh()
        assert gw.route("fraud").served["candidate"] == ("fraud", "3")
        assert gw.route("fraud").generation == route.generation

    asyncio.run(run())


def test_a_changed_deployment_replaces_its_route_in_one_assignment(
    store: DeploymentStore,
) -> None:
    apply(store, document())
    gw = gateway(store, ModelServer())

    async def run() -> None:
        await gw.refresh()
        before = gw.route("fraud")
        changed = document()
        changed["spec"]["variants"][0]["weight"] = 0
        changed["spec"]["variants"][1]["weight"] = 100
        apply(store, changed)
        # Requests in flight while the table is rebuilt see the old route or the new one.
        answers = []

        async def traffic() -> None:
            for n in range(200):
                route = gw.route("fraud")
                answers.append((route.generation, gw.assign(route, call(), f"u{n}", None).slot))
                await asyncio.sleep(0)

        await asyncio.gather(traffic(), gw.refresh())
        after = gw.route("fraud")
        assert after.generation == before.generation + 1
        for generation, slot in answers:
            if generation == after.generation:
                assert slot.variant == "candidate"
        assert all(
            gw.assign(after, call(), f"u{n}", None).slot.variant == "candidate" for n in range(100)
        )

    asyncio.run(run())


def test_a_deployment_that_cannot_be_served_keeps_its_last_good_route(
    store: DeploymentStore, caplog: pytest.LogCaptureFixture
) -> None:
    apply(store, document())
    backend = ModelServer()
    gw = gateway(store, backend)

    async def run() -> None:
        await gw.refresh()
        changed = document()
        changed["spec"]["variants"][0]["model"] = "fraud@7"
        apply(store, changed)
        backend.refuse.add(("fraud", "7"))
        await gw.refresh()
        await gw.refresh()
        assert gw.route("fraud").served["current"] == ("fraud", "1")

    asyncio.run(run())
    errors = [r for r in caplog.records if "fraud@7 cannot be loaded" in r.getMessage()]
    assert len(errors) == 1  # logged once, not at every look


def test_deleted_deployments_disappear_and_unknown_names_are_not_found(
    store: DeploymentStore,
) -> None:
    apply(store, document())
    gw = gateway(store, ModelServer())

    async def run() -> None:
        await gw.refresh()
        store.delete("fraud")
        await gw.refresh()

    asyncio.run(run())
    with pytest.raises(NotFound, match="no deployment named 'fraud'"):
        gw.route("fraud")


def test_the_unit_key_can_be_a_request_parameter(store: DeploymentStore) -> None:
    apply(store, document(traffic={"stickyKey": {"parameter": "user"}}))
    gw = gateway(store, ModelServer())
    asyncio.run(gw.refresh())
    route = gw.route("fraud")

    def body(user: object) -> bytes:
        return orjson.dumps({"parameters": {"user": user}, "inputs": []})

    first = gw.assign(route, call(body=body("u-1")), None, None)
    assert first.keyed
    again = [gw.assign(route, call(body=body("u-1")), None, None).slot for _ in range(10)]
    assert set(again) == {first.slot}
    assert gw.assign(route, call(body=body(42)), None, None).keyed  # integers are keys too
    assert not gw.assign(route, call(body=orjson.dumps({"inputs": []})), None, None).keyed
    with pytest.raises(InvalidInput, match="expected a string or an integer"):
        gw.assign(route, call(body=body([1])), None, None)


def test_answers_count_by_variant_and_by_keyed_or_random(store: DeploymentStore) -> None:
    apply(store, document())
    backend = ModelServer()
    gw = gateway(store, backend)

    async def run() -> None:
        await gw.refresh()
        route = gw.route("fraud")
        for key in ("u1", None, None):
            answer = await gw.infer(route, gw.assign(route, call(), key, "current"), call())
            assert orjson.loads(answer.body)["model_name"] == "fraud"

    asyncio.run(run())
    stats = gw.stats()
    answers = stats.answers
    assert sum(answers.values()) == 3
    # Overridden: never counted as keyed; a REST call, answered with 200.
    assert answers[("fraud", "current", False, "rest", 200)] == 3
    assert stats.failures == {} and stats.in_flight == 0
    ((deployment, variant, latency),) = [t for t in stats.latency if t[2].count]
    assert (deployment, variant, latency.count) == ("fraud", "current", 3)
    assert sum(latency.buckets) == 3 and latency.seconds > 0


def test_a_request_is_in_flight_from_its_placement_to_its_answer(store: DeploymentStore) -> None:
    variants = [{"name": "current", "model": "fraud@8", "weight": 100}]
    apply(store, document(variants=variants))
    backend = ModelServer()
    gw = gateway(store, backend)

    async def run() -> None:
        release = backend.slow["8"] = asyncio.Event()
        await gw.refresh()
        route = gw.route("fraud")
        grpc_call = call()
        grpc_call.protocol = "grpc"
        task = asyncio.create_task(gw.infer(route, gw.assign(route, call(), "u1", None), grpc_call))
        await asyncio.sleep(0.01)
        assert gw.stats().in_flight == 1
        release.set()
        await task
        assert gw.stats().in_flight == 0
        assert gw.stats().answers == {("fraud", "current", True, "grpc", 200): 1}

    asyncio.run(run())


def test_the_cache_answers_repeats_per_version_and_puts_the_callers_id_back(
    store: DeploymentStore,
) -> None:
    apply(store, document(cache={"enabled": True}))
    backend, registry = ModelServer(), Registry()
    gw = gateway(store, backend, registry)

    async def ask(request_id: str) -> dict[str, Any]:
        route = gw.route("fraud")
        body = orjson.dumps({**orjson.loads(REQUEST), "id": request_id})
        answer = await gw.infer(route, gw.assign(route, call(), None, "candidate"), call(body=body))
        return dict(orjson.loads(answer.body))

    async def run() -> None:
        await gw.refresh()
        first = await ask("a")
        second = await ask("b")
        assert len(backend.calls) == 1  # the second came from the cache
        assert first["id"] == "a" and second["id"] == "b"
        assert second["model_version"] == "2"
        registry.aliases["latest"] = "3"  # a new version never gets the old one's answers
        await gw.refresh()
        third = await ask("c")
        assert third["model_version"] == "3"
        assert len(backend.calls) == 2

    asyncio.run(run())
    stats = gw.stats()
    assert (stats.cache_hits, stats.cache_misses) == ({"fraud": 1}, {"fraud": 2})


def test_a_slow_or_failing_shadow_never_holds_or_fails_the_caller(
    store: DeploymentStore, tmp_path: Path
) -> None:
    variants = [
        {"name": "current", "model": "fraud@1", "weight": 100},
        {"name": "slow", "model": "fraud@8", "role": "shadow", "mirror": 100},
        {"name": "broken", "model": "fraud@9", "role": "shadow", "mirror": 100},
    ]
    apply(store, document(variants=variants))
    backend = ModelServer()
    backend.failing.add("9")
    log = PredictionLog(tmp_path / "predictions", flush_interval_s=3600)
    gw = gateway(store, backend, predictions=log)

    async def run() -> None:
        release = backend.slow["8"] = asyncio.Event()  # made on the test's event loop
        await gw.refresh()
        route = gw.route("fraud")
        assignment = gw.assign(route, call(), "u1", None)
        assert {s.variant for s in assignment.shadows} == {"slow", "broken"}
        answer = await asyncio.wait_for(gw.infer(route, assignment, call("req-9")), 1.0)
        assert answer.status == 200 and answer.model_version == "1"
        await asyncio.sleep(0.05)
        # The broken one; the slow one still runs.
        assert gw.stats().shadow_failures == {("fraud", "broken"): 1}
        assert gw.stats().shadows == {("fraud", "slow"): 1, ("fraud", "broken"): 1}
        release.set()
        await gw.close()

    asyncio.run(run())
    log.close()
    rows = read_predictions(tmp_path / "predictions").to_pylist()
    by_variant = {row["variant"]: row for row in rows}
    assert set(by_variant) == {"current", "slow", "broken"}
    assert by_variant["slow"]["shadow"] and not by_variant["current"]["shadow"]
    assert {row["request_id"] for row in rows} == {"req-9"}
    assert orjson.loads(by_variant["current"]["inputs"]) == {"x": [[1, 2]]}
    assert orjson.loads(by_variant["slow"]["outputs"]) == {"y": [8.0]}
    assert by_variant["slow"]["error"] is None and by_variant["current"]["error"] is None
    # The failed shadow is logged as a shadow's failure, never as an answer.
    broken = by_variant["broken"]
    assert (broken["shadow"], broken["error"], broken["outputs"]) == (True, "unavailable", "{}")
    assert broken["model_version"] == "9" and broken["cpu_ms"] is None


def test_shadows_beyond_the_limit_are_skipped_and_counted(store: DeploymentStore) -> None:
    variants = [
        {"name": "current", "model": "fraud@1", "weight": 100},
        {"name": "slow", "model": "fraud@8", "role": "shadow", "mirror": 100},
    ]
    apply(store, document(variants=variants))
    backend = ModelServer()
    gw = gateway(store, backend, max_shadow_in_flight=2)

    async def run() -> None:
        release = backend.slow["8"] = asyncio.Event()
        await gw.refresh()
        route = gw.route("fraud")
        for n in range(5):
            await gw.infer(route, gw.assign(route, call(), f"u{n}", None), call())
        assert gw.stats().shadows_skipped == {"fraud": 3}
        release.set()
        await gw.close()

    asyncio.run(run())


def test_the_log_keeps_a_sample_and_protects_named_fields(
    store: DeploymentStore, tmp_path: Path
) -> None:
    apply(store, document(predictionLog={"sampleRate": 0.0}))
    apply(store, document("hashed", predictionLog={"hash": ["x"]}))
    log = PredictionLog(tmp_path / "predictions", flush_interval_s=3600, secret=b"s" * 32)
    gw = gateway(store, ModelServer(), predictions=log)

    async def run() -> None:
        await gw.refresh()
        for name in ("fraud", "hashed"):
            route = gw.route(name)
            for n in range(10):
                request = Call(name, REQUEST, None, f"{name}-{n}")
                await gw.infer(route, gw.assign(route, request, f"u{n}", None), request)

    asyncio.run(run())
    log.close()
    rows = read_predictions(tmp_path / "predictions").to_pylist()
    assert {row["deployment"] for row in rows} == {"hashed"}
    assert len(rows) == 10
    hashed = orjson.loads(rows[0]["inputs"])["x"]
    assert isinstance(hashed, list) and len(hashed[0]) == 64  # one keyed hash per row


def test_a_redis_cache_without_redis_is_refused_with_the_setting_to_set(
    store: DeploymentStore,
) -> None:
    apply(store, document(cache={"enabled": True, "backend": "redis"}))
    gw = gateway(store, ModelServer())
    asyncio.run(gw.refresh())
    with pytest.raises(ServiceUnavailable, match="MODELPORT_GATEWAY__REDIS_URL"):
        gw.route("fraud")


# -- failed requests in the prediction log ------------------------------------------------------


def test_failed_requests_are_logged_with_their_kind_and_raised_unchanged(
    store: DeploymentStore, tmp_path: Path
) -> None:
    apply(store, document())
    backend = ModelServer()
    log = PredictionLog(tmp_path / "predictions", flush_interval_s=3600)
    gw = gateway(store, backend, predictions=log)
    bug = RuntimeError("a bug in a backend")
    refused = InvalidInput("input 'x' has the wrong shape")
    raised: list[BaseException] = []

    async def run() -> None:
        await gw.refresh()
        route = gw.route("fraud")
        for request_id, error in (("down", None), ("bad", refused), ("bug", bug)):
            backend.failing, backend.raising = (
                ({"1"}, {}) if error is None else (set(), {"1": error})
            )
            try:
                await gw.infer(route, gw.assign(route, call(), None, "current"), call(request_id))
            except Exception as exc:  # noqa: BLE001 - collected for the assertions below
                raised.append(exc)
        backend.raising = {}
        backend.failing = set()
        await gw.infer(route, gw.assign(route, call(), None, "current"), call("fine"))

    asyncio.run(run())
    log.close()
    assert [type(exc) for exc in raised] == [ServiceUnavailable, InvalidInput, RuntimeError]
    assert raised[1] is refused and raised[2] is bug  # re-raised as they were
    rows = {
        row["request_id"]: row for row in read_predictions(tmp_path / "predictions").to_pylist()
    }
    assert {rid: rows[rid]["error"] for rid in rows} == {
        "down": "unavailable",
        "bad": "invalid_input",
        "bug": "internal",
        "fine": None,
    }
    for rid in ("down", "bad", "bug"):
        row = rows[rid]
        assert (row["outputs"], row["cpu_ms"], row["shadow"]) == ("{}", None, False)
        assert (row["variant"], row["model_version"]) == ("current", "1")
        assert orjson.loads(row["inputs"]) == {"x": [[1, 2]]}
        assert row["latency_ms"] >= 0.0
    assert (rows["fine"]["cpu_ms"], orjson.loads(rows["fine"]["outputs"])) == (0.125, {"y": [1.0]})
    stats = gw.stats()
    assert stats.answers == {("fraud", "current", False, "rest", 200): 1}  # failures apart
    assert stats.failures == {
        ("fraud", "current", False, "rest", "unavailable"): 1,
        ("fraud", "current", False, "rest", "invalid_input"): 1,
        ("fraud", "current", False, "rest", "internal"): 1,
    }
    latency = {(d, v): totals.count for d, v, totals in stats.latency}
    assert latency == {("fraud", "current"): 4, ("fraud", "candidate"): 0}  # failures' too


def test_an_error_status_from_a_replica_is_logged_with_the_kind_it_stands_for(
    store: DeploymentStore, tmp_path: Path
) -> None:
    apply(store, document())
    backend = ModelServer()
    log = PredictionLog(tmp_path / "predictions", flush_interval_s=3600)
    gw = gateway(store, backend, predictions=log)
    body = b'{"error": "too many requests"}'

    async def run() -> None:
        await gw.refresh()
        route = gw.route("fraud")
        backend.answering["1"] = Answer(429, body, None, None, "rate_limited")
        answer = await gw.infer(route, gw.assign(route, call(), None, "current"), call("limited"))
        assert (answer.status, answer.body) == (429, body)  # passed through as it came
        backend.answering["1"] = Answer(502, b"bad gateway", None, None)  # no kind given
        await gw.infer(route, gw.assign(route, call(), None, "current"), call("unknown"))

    asyncio.run(run())
    log.close()
    rows = {
        row["request_id"]: row for row in read_predictions(tmp_path / "predictions").to_pylist()
    }
    assert (rows["limited"]["error"], rows["limited"]["outputs"]) == ("rate_limited", "{}")
    assert (rows["unknown"]["error"], rows["unknown"]["model_version"]) == ("unavailable", "1")


def test_failures_follow_the_sampling_rule(store: DeploymentStore, tmp_path: Path) -> None:
    apply(store, document(predictionLog={"sampleRate": 0.0}))
    backend = ModelServer()
    backend.failing.add("1")
    log = PredictionLog(tmp_path / "predictions", flush_interval_s=3600)
    gw = gateway(store, backend, predictions=log)

    async def run() -> None:
        await gw.refresh()
        route = gw.route("fraud")
        with pytest.raises(ServiceUnavailable):
            await gw.infer(route, gw.assign(route, call(), None, "current"), call())

    asyncio.run(run())
    log.close()
    assert read_predictions(tmp_path / "predictions").num_rows == 0


def test_a_shadow_answering_an_error_status_is_counted_and_logged_as_failed(
    store: DeploymentStore, tmp_path: Path
) -> None:
    variants = [
        {"name": "current", "model": "fraud@1", "weight": 100},
        {"name": "mirror", "model": "fraud@8", "role": "shadow", "mirror": 100},
    ]
    apply(store, document(variants=variants))
    backend = ModelServer()
    backend.answering["8"] = Answer(400, b'{"error": "bad"}', None, None, "invalid_input")
    log = PredictionLog(tmp_path / "predictions", flush_interval_s=3600)
    gw = gateway(store, backend, predictions=log)

    async def run() -> None:
        await gw.refresh()
        route = gw.route("fraud")
        await gw.infer(route, gw.assign(route, call(), "u1", None), call("r-1"))
        await gw.close()

    asyncio.run(run())
    log.close()
    assert gw.stats().shadow_failures == {("fraud", "mirror"): 1}
    rows = {row["variant"]: row for row in read_predictions(tmp_path / "predictions").to_pylist()}
    assert (rows["mirror"]["shadow"], rows["mirror"]["error"]) == (True, "invalid_input")
    assert (rows["current"]["shadow"], rows["current"]["error"]) == (False, None)


# -- feature enrichment (spec.features) -------------------------------------------------------


class FeatureServer(ModelServer):
    """A model server that keeps the body of every call it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: dict[str, tuple[bytes, int | None]] = {}

    async def infer(self, model: str, version: str, call: Call) -> Answer:
        self.bodies[version] = (call.body, call.header_length)
        return await super().infer(model, version, call)


FEATURE_SIGNATURES = {
    "1": signature(("input", "FP32", (-1, 3))),
    "8": signature(("spend_7d", "FP64", (-1,)), ("rest", "FP64", (-1, 2))),
}


def enriched_gateway(
    store: DeploymentStore,
    backend: ModelServer,
    features: FeatureStore | None,
    predictions: PredictionLog | None = None,
) -> Gateway:
    return gateway(
        store,
        backend,
        predictions=predictions,
        features=features,
        signature_of=lambda model, version: FEATURE_SIGNATURES.get(version),
        clock=FakeClock(ENRICH_NOW),  # the features' day
    )


def enriched_call(users: list[str], request_id: str = "r-1") -> Call:
    body = orjson.dumps(
        {
            "id": request_id,
            "parameters": {"merchant": "m1"},
            "inputs": [
                {"name": "user_id", "datatype": "BYTES", "shape": [len(users)], "data": users}
            ],
        }
    )
    return Call("fraud", body, None, request_id)


def test_an_enriched_deployment_sends_the_assembled_input_and_logs_keys_and_values(
    store: DeploymentStore, tmp_path: Path
) -> None:
    doc = enriched_document()
    doc["spec"]["variants"].append(
        {"name": "next", "model": "fraud@8", "role": "shadow", "mirror": 100}
    )
    store.apply(parse_deployment(doc), "alice")
    backend = FeatureServer()
    log = PredictionLog(tmp_path / "predictions", flush_interval_s=3600)
    with open_store(tmp_path) as features:
        gw = enriched_gateway(store, backend, features, log)

        async def run() -> None:
            await gw.refresh()
            route = gw.route("fraud")
            answer = await gw.infer(
                route, gw.assign(route, call(), None, None), enriched_call(["u1", "u2"])
            )
            assert answer.status == 200
            await gw.close()

        asyncio.run(run())
    log.close()
    sent = decode_infer_request(*backend.bodies["1"])
    assert [(t.name, t.shape) for t in sent.inputs] == [("input", (2, 3))]
    assert sent.inputs[0].data.tolist() == [[30.0, 3.0, 0.25], [5.0, 1.0, 0.25]]
    shadow = {t.name: t.data.tolist() for t in decode_infer_request(*backend.bodies["8"]).inputs}
    assert shadow == {"spend_7d": [30.0, 5.0], "rest": [[3.0, 0.25], [1.0, 0.25]]}
    rows = {r["variant"]: r for r in read_predictions(tmp_path / "predictions").to_pylist()}
    logged = orjson.loads(rows["current"]["inputs"])
    assert logged["input"] == [30.0, 3.0, 0.25, 5.0, 1.0, 0.25]  # JSON is logged as sent
    records = [orjson.loads(text) for text in logged[LOG_INPUT]]
    assert [r["keys"] for r in records] == [
        {"user_id": "u1", "merchant_id": "m1"},
        {"user_id": "u2", "merchant_id": "m1"},
    ]
    assert records[1]["values"] == {
        "user_stats:spend_7d": 5.0,
        "user_stats:orders_7d": 1,
        "merchant_stats:risk": 0.25,
    }
    assert records[0]["at"] == ENRICH_NOW.isoformat()
    assert "spend_7d" in orjson.loads(rows["next"]["inputs"])  # the shadow's own assembly


def test_a_missing_feature_is_a_logged_bad_request_and_the_backend_is_not_called(
    store: DeploymentStore, tmp_path: Path
) -> None:
    store.apply(parse_deployment(enriched_document()), "alice")
    backend = FeatureServer()
    log = PredictionLog(tmp_path / "predictions", flush_interval_s=3600)
    with open_store(tmp_path) as features:
        gw = enriched_gateway(store, backend, features, log)

        async def run() -> None:
            await gw.refresh()
            route = gw.route("fraud")
            with pytest.raises(InvalidInput, match="user_id='u9'"):
                await gw.infer(route, gw.assign(route, call(), None, None), enriched_call(["u9"]))

        asyncio.run(run())
    log.close()
    assert backend.bodies == {}
    (row,) = read_predictions(tmp_path / "predictions").to_pylist()
    assert row["error"] == "invalid_input"
    assert gw.stats().failures == {("fraud", "current", False, "rest", "invalid_input"): 1}


def test_a_deployment_with_features_cannot_be_served_without_a_feature_store_or_a_fit(
    store: DeploymentStore, tmp_path: Path
) -> None:
    store.apply(parse_deployment(enriched_document()), "alice")
    gw = enriched_gateway(store, FeatureServer(), None)
    asyncio.run(gw.refresh())
    with pytest.raises(ServiceUnavailable, match="cannot be served.*FEATURES__ONLINE_STORE"):
        gw.route("fraud")
    store.apply(parse_deployment(enriched_document(input="missing")), "alice")
    with open_store(tmp_path) as features:
        gw = enriched_gateway(store, FeatureServer(), features)
        asyncio.run(gw.refresh())
        with pytest.raises(ServiceUnavailable, match="'missing', which is not an input"):
            gw.route("fraud")
        no_signatures = gateway(store, FeatureServer(), features=features)
        asyncio.run(no_signatures.refresh())
        with pytest.raises(ServiceUnavailable, match="cannot read model signatures"):
            no_signatures.route("fraud")


def test_changed_feature_definitions_rebuild_enriched_routes(
    store: DeploymentStore, tmp_path: Path
) -> None:
    store.apply(parse_deployment(enriched_document()), "alice")
    apply(store, document("plain"))
    registry = f"sqlite:///{tmp_path / 'features.db'}"
    with open_store(tmp_path, registry=registry) as features:
        gw = enriched_gateway(store, FeatureServer(), features)

        async def run() -> None:
            await gw.refresh()
            before, plain = gw.route("fraud"), gw.route("plain")
            await gw.refresh()
            assert gw.route("fraud") is before  # nothing changed: the same route
            # Another process deletes a view the deployment reads.
            with FeatureStore(registry=registry) as other:
                other.delete("FeatureView", "merchant_stats")
            await gw.refresh()
            assert gw.route("plain") is plain  # not enriched: not rebuilt
            route = gw.route("fraud")  # the last good route, which can no longer read
            with pytest.raises(ServiceUnavailable, match="feature view 'merchant_stats'"):
                await gw.infer(route, gw.assign(route, call(), None, None), enriched_call(["u1"]))

        asyncio.run(run())
    assert "merchant_stats" in gw._failed["fraud"]


def test_a_grpc_call_is_enriched_from_its_decoded_request_and_keeps_it_decoded(
    store: DeploymentStore, tmp_path: Path
) -> None:
    store.apply(parse_deployment(enriched_document()), "alice")
    backend = FeatureServer()
    received: list[Call] = []

    async def infer(model: str, version: str, call: Call) -> Answer:
        received.append(call)
        return Answer(200, b'{"model_name": "fraud", "outputs": []}', None, version)

    backend.infer = infer  # type: ignore[method-assign]  # keeps what the backend gets
    request = decode_infer_request(enriched_call(["u2"]).body, None)
    body, length = encode_infer_request(request, binary_inputs=True, binary_outputs=True)
    grpc_call = Call("fraud", body, length, "r-1", request=request, protocol="grpc")
    with open_store(tmp_path) as features:
        gw = enriched_gateway(store, backend, features)

        async def run() -> None:
            await gw.refresh()
            route = gw.route("fraud")
            await gw.infer(route, gw.assign(route, grpc_call, None, None), grpc_call)

        asyncio.run(run())
    (sent,) = received
    assert sent.request is not None and sent.header_length is not None  # binary, as it came
    assert [t.name for t in sent.request.inputs] == ["input"]
    forwarded = decode_infer_request(sent.body, sent.header_length)
    assert forwarded.parameters["binary_data_output"] is True  # as the transport asked
    assert forwarded.inputs[0].data.tolist() == [[5.0, 1.0, 0.25]]
