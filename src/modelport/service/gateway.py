"""The gateway's use case: deployments in front of model versions, whichever transport calls it.

A :class:`Gateway` keeps one :class:`DeploymentRoute` per deployment: its traffic plan, the
version each variant serves now, the :class:`Backend` that serves them (in-process runtimes under
``modelport up``, a pool of ``modelport serve`` replicas behind ``modelport gateway``), its
response cache and what its prediction log keeps. The table is rebuilt off the event loop when a
deployment's generation changes or an alias a variant follows moves (:meth:`Gateway.refresh`,
every ``poll_interval_s``), and swapped in one assignment: a request sees the old deployment or
the new one, never a mixture.

One inference (:meth:`Gateway.infer`) is: read the unit key (a header the transport hands over,
or a request parameter), :meth:`TrafficPlan.assign`, the cache when the deployment has one, the
backend, then the hand-offs that never hold the caller: the prediction log (a deferred record
whose tensors are decoded on the log's writer thread) and the shadow copies (tasks of their own,
bounded, their failures counted and logged, never the caller's).

A deployment with ``spec.features`` is enriched before its backend is called
(:mod:`modelport.service.enrichment`): the request is decoded, its entity keys read, the
features read in one batched online read of the gateway's :class:`FeatureStore`, and the model
input assembled for the served version's signature and encoded again as the call came; the
shadows get the same features, assembled for their own versions. An embedded SQLite store is
read inline on the event loop (one row, 20 features: 50-75 us for the read, 110 us for the
whole enrichment, while a hop to a worker thread adds 45-250 us and gains no throughput under
the GIL); a Redis store in a thread (``asyncio.to_thread``), so a network round trip never holds
the loop. The route of such a deployment holds its
:class:`~modelport.service.enrichment.Enrichment` and one assembly per served version, built
with the route from the version's signature (``signature_of``), so features that do not fit a
signature make the deployment "cannot be served" when it is applied, not a failure per
request; the routes are built again when the feature definitions change
(:meth:`FeatureStore.refresh`, every poll). A deployment without features does none of this.

The log keeps failed requests too (under the same sampling), with their error kind: a
:class:`ModelportError`'s kind, ``internal`` for any other exception (both re-raised as they
are), or an :class:`Answer`'s ``error`` when a remote replica answered with an error status. A
shadow that fails is logged the same way (``shadow`` and ``error`` set), so a comparison can count
a shadow's failures.

Requests travel as :class:`Call`, the REST body as received (JSON, or JSON and binary tensors
with its ``Inference-Header-Content-Length``), so a remote backend forwards the bytes without
decoding them; answers come back as :class:`Answer`, the REST body to send.

What the metrics read is counted on the event loop in plain dictionaries and one
:class:`~modelport.monitoring.tally.LatencyTally` per deployment and variant (one dictionary
update and one list append a request), returned by :meth:`Gateway.stats`; the metrics move them
into Prometheus once a second (bench/HOT_PATH.md, "Metrics are counted in plain Python").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random as random_module
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson

from modelport.core.clock import Clock, SystemClock
from modelport.core.deployment import Deployment
from modelport.core.errors import (
    ConfigError,
    ErrorKind,
    InvalidInput,
    ModelportError,
    NotFound,
    ServiceUnavailable,
)
from modelport.core.inference import InferenceRequest
from modelport.core.refs import ModelRef
from modelport.core.signature import Signature
from modelport.experiments.assignment import Assignment, Slot, TrafficPlan
from modelport.experiments.store import StoredDeployment
from modelport.monitoring.prediction_log import PredictionLog
from modelport.monitoring.tally import LATENCY_BUCKETS, LatencyTally, LatencyTotals
from modelport.service.response_cache import (
    AnswerCache,
    MemoryCache,
    RedisCache,
    ResponseCache,
    cache_key,
    canonical_request,
)

if TYPE_CHECKING:  # the feature store (pyarrow, DuckDB) is imported by enriched routes only
    from modelport.features import FeatureStore
    from modelport.service.enrichment import Assembly, Enrichment, Fetched

__all__ = [
    "Answer",
    "Backend",
    "BackendFactory",
    "Call",
    "DeploymentRoute",
    "DeploymentSource",
    "Gateway",
    "GatewayStats",
]

log = logging.getLogger("modelport.gateway")

_SHADOW_WARN_EVERY_S: Final = 60.0


@dataclass(slots=True)
class Call:
    """One inference request as the gateway forwards it.

    Attributes:
        deployment: The deployment called (the answer's ``model_name``).
        body: The REST body as received: JSON, or a JSON header followed by binary tensors.
        header_length: Its ``Inference-Header-Content-Length`` (``None``: all JSON).
        request_id: The request id of the call (the caller's ``x-request-id`` or a new one).
        authorization: The caller's ``Authorization`` header, for backends that pass it on.
        request: The request already decoded (the gRPC transport decodes it), else ``None``.
        identity: A short hash of the caller's identity, for the prediction log.
        protocol: The transport it came by, ``rest`` or ``grpc`` (the metrics' label).
        log_body: What the prediction log decodes in place of ``body`` (an enriched request:
            the model input and the features' keys and values); ``None``: ``body``.
        log_header_length: Its header length.
    """

    deployment: str
    body: bytes
    header_length: int | None
    request_id: str
    authorization: str | None = None
    request: InferenceRequest | None = None
    identity: str | None = None
    protocol: str = "rest"
    log_body: bytes | None = None
    log_header_length: int | None = None

    def json_header(self) -> dict[str, Any]:
        """The JSON part of the body, parsed (for a parameter key or the cache).

        Raises:
            InvalidInput: It is not a JSON object.
        """
        end = len(self.body) if self.header_length is None else self.header_length
        try:
            document = orjson.loads(self.body[:end])
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise InvalidInput("the inference request must be a JSON object")
        return document


@dataclass(slots=True)
class Answer:
    """An inference answer as the REST transport sends it.

    Attributes:
        status: HTTP status (200, or a backend's 4xx passed through).
        body: The body: JSON, or a JSON header followed by binary tensors.
        json_length: Length of the JSON header when binary tensors follow, else ``None``.
        model_version: The version that answered (``None`` for an error).
        error: The error kind (:class:`~modelport.core.errors.ErrorKind` value) a status other
            than 200 stands for; ``None`` for an answer.
        cpu_ms: CPU time the model spent on the request, in milliseconds, when this process
            ran it; ``None`` otherwise (a remote replica, a cached answer).
    """

    status: int
    body: bytes
    json_length: int | None
    model_version: str | None
    error: str | None = None
    cpu_ms: float | None = None


class Backend(Protocol):
    """Where a deployment's variants are served: in-process runtimes or remote replicas."""

    def prepare(self, model: str, version: str) -> None:
        """Make ``model@version`` servable (load it in-process); blocking, run off the loop.

        Raises:
            ModelportError: It cannot be served.
        """
        ...

    async def infer(self, model: str, version: str, call: Call) -> Answer:
        """Answer ``call`` with ``model@version``; the answer names ``call.deployment``."""
        ...

    async def metadata(self, model: str, version: str, call: Call) -> dict[str, Any]:
        """The OIP metadata of ``model@version``."""
        ...

    async def model_ready(self, model: str, version: str, call: Call) -> bool:
        """Whether ``model@version`` can answer now."""
        ...

    def ready(self) -> bool:
        """Whether the backend can take requests (some replica is up)."""
        ...


class BackendFactory(Protocol):
    """Chooses the backend of each deployment and closes those no deployment uses any more."""

    def backend(self, deployment: Deployment) -> Backend:
        """The backend serving ``deployment``'s variants.

        Raises:
            ConfigError: It can be served by none (no replicas and no in-process runtimes).
        """
        ...

    async def retain(self, used: Iterable[Backend]) -> None:
        """Start the backends in ``used`` that are new and close every other one."""
        ...


class DeploymentSource(Protocol):
    """Where deployments are read (the deployment store)."""

    def generations(self) -> dict[str, int]:
        """Every deployment's name and generation."""
        ...

    def get(self, name: str) -> StoredDeployment:
        """The deployment called ``name``.

        Raises:
            NotFound: There is none.
        """
        ...


@dataclass(frozen=True, slots=True)
class DeploymentRoute:
    """One deployment as the gateway serves it, rebuilt when it changes and then only read."""

    deployment: Deployment
    generation: int
    plan: TrafficPlan
    served: Mapping[str, tuple[str, str]]
    """Variant name -> ``(model, version)`` it serves now."""
    backend: Backend
    sticky_header: str | None
    """The unit key's header, lower-case; ``None`` when the key is a parameter or absent."""
    sticky_header_bytes: bytes | None
    """The same, as the REST transport compares raw header names."""
    sticky_parameter: str | None
    cache: AnswerCache | None
    sample_rate: float
    redact: tuple[str, ...]
    """Input and output names the prediction log never writes."""
    hashed: tuple[str, ...]
    """Input and output names the prediction log writes as keyed hashes."""
    latency: Mapping[str, LatencyTally]
    """Variant -> where its answers' durations are recorded (kept across rebuilds)."""
    enrichment: Enrichment | None = None
    """The deployment's feature enrichment; ``None`` when it declares no features."""
    assemblies: Mapping[tuple[str, str], Assembly] = field(default_factory=dict)
    """``(model, version)`` -> how its inputs are assembled (enriched deployments)."""

    @property
    def name(self) -> str:
        """The deployment's public name."""
        return self.deployment.name

    def primary(self) -> Slot:
        """The variant answering metadata calls: the heaviest answering variant (first on a tie)."""
        variants = [v for v in self.deployment.spec.variants if v.role != "shadow"]
        best = max(variants, key=lambda v: v.weight)
        return Slot(best.name, best.model)


@dataclass(frozen=True, slots=True)
class GatewayStats:
    """Counts since the gateway started."""

    answers: Mapping[tuple[str, str, bool, str, int], int]
    """``(deployment, variant, keyed, protocol, status)`` -> requests answered (a replica's
    error status included); ``keyed``: a unit key placed it."""
    failures: Mapping[tuple[str, str, bool, str, str], int]
    """``(deployment, variant, keyed, protocol, error kind)`` -> requests that raised."""
    latency: list[tuple[str, str, LatencyTotals]]
    """``(deployment, variant, totals)``: how long answers and failures took."""
    in_flight: int
    """Requests placed on a variant and not answered yet."""
    shadows: Mapping[tuple[str, str], int]
    """``(deployment, shadow variant)`` -> copies sent."""
    shadow_failures: Mapping[tuple[str, str], int]
    """``(deployment, shadow variant)`` -> copies that failed."""
    shadows_skipped: Mapping[str, int]
    """Deployment -> copies not sent (too many in flight)."""
    cache_hits: Mapping[str, int]
    """Deployment -> requests its response cache answered."""
    cache_misses: Mapping[str, int]
    """Deployment -> requests its response cache could not answer."""


@dataclass(slots=True)
class _Counts:
    answers: dict[tuple[str, str, bool, str, int], int] = field(default_factory=dict)
    failures: dict[tuple[str, str, bool, str, str], int] = field(default_factory=dict)
    in_flight: int = 0
    shadows: dict[tuple[str, str], int] = field(default_factory=dict)
    shadow_failures: dict[tuple[str, str], int] = field(default_factory=dict)
    shadows_skipped: dict[str, int] = field(default_factory=dict)
    cache_hits: dict[str, int] = field(default_factory=dict)
    cache_misses: dict[str, int] = field(default_factory=dict)


class Gateway:
    """Deployments in front of model versions: routing, cache, prediction log, shadows.

    Args:
        source: Where deployments are read.
        resolve: The version a registry reference names now (``NAME@ALIAS`` -> ``"4"``);
            blocking (it reads the registry), run off the event loop.
        backends: Chooses each deployment's backend.
        predictions: The prediction log; ``None`` logs nothing.
        poll_interval_s: Seconds between two looks at the deployments.
        max_shadow_in_flight: Shadow requests running at most; more are skipped and counted.
        clock: Time source of the caches and the log.
        random: Uniform draws in ``[0, 1)`` for requests without a unit key and log sampling.
        redis: A ``redis.asyncio.Redis`` client for deployments whose cache is in Redis;
            ``None``: such deployments cannot be served here.
        latency_buckets: Upper bounds of the latency tallies' buckets, in seconds (the
            metrics' histogram edges).
        features: The feature store enriching deployments with ``spec.features`` (its online
            store); ``None``: such deployments cannot be served here.
        signature_of: The signature of ``(model, version)`` (the registry's), which enriched
            deployments are assembled by; blocking, called off the event loop.
    """

    def __init__(
        self,
        source: DeploymentSource,
        resolve: Callable[[ModelRef], str],
        backends: BackendFactory,
        *,
        predictions: PredictionLog | None = None,
        poll_interval_s: float = 1.0,
        max_shadow_in_flight: int = 256,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        redis: Any | None = None,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
        features: FeatureStore | None = None,
        signature_of: Callable[[str, str], Signature | None] | None = None,
    ) -> None:
        self._source = source
        self._features = features
        self._signature_of = signature_of
        self._redis = redis
        self._resolve = resolve
        self._backends = backends
        self._log = predictions
        self._interval = poll_interval_s
        self._max_shadows = max_shadow_in_flight
        self._clock: Clock = clock or SystemClock()
        self._random = random or random_module.random
        self._routes: dict[str, DeploymentRoute] = {}
        self._counts = _Counts()
        self._latency_buckets = tuple(latency_buckets)
        self._latency: dict[tuple[str, str], LatencyTally] = {}
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._failed: dict[str, str] = {}
        """Deployment -> why its last change could not be served (logged once per reason)."""
        self._shadow_warned_at = -_SHADOW_WARN_EVERY_S

    # -- the deployment table --------------------------------------------------------------

    async def start(self) -> None:
        """Read every deployment, prepare its backend, and start following changes."""
        await self.refresh()
        self._poller = asyncio.create_task(self._poll(), name="modelport-gateway-poll")

    async def close(self) -> None:
        """Stop following changes, wait for shadow requests, close the backends."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._shadow_tasks:
            await asyncio.wait(self._shadow_tasks, timeout=5.0)
        await self._backends.retain(())

    async def refresh(self) -> None:
        """Read the deployments again; rebuild the routes of those that changed."""
        routes = await asyncio.to_thread(self._rebuild, self._routes)
        await self._backends.retain({route.backend for route in routes.values()})
        self._routes = routes

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except ModelportError as exc:
                log.warning("cannot read the deployments: %s", exc.message)
            except Exception:  # noqa: BLE001 - the poller must outlive a bad look
                log.exception("cannot read the deployments")

    def _rebuild(self, current: Mapping[str, DeploymentRoute]) -> dict[str, DeploymentRoute]:
        routes: dict[str, DeploymentRoute] = {}
        features_changed = False
        if self._features is not None:
            try:
                features_changed = self._features.refresh()
            except ModelportError as exc:
                log.warning("cannot read the feature definitions: %s", exc.message)
        generations = self._source.generations()
        for name in self._failed.keys() - generations.keys():
            del self._failed[name]  # deleted: no longer "cannot be served"
        for name, generation in generations.items():
            try:
                route = self._route(name, generation, current.get(name), features_changed)
            except ModelportError as exc:
                if self._failed.get(name) != exc.message:
                    self._failed[name] = exc.message
                    log.error("deployment %s (generation %d): %s", name, generation, exc.message)
                route = current.get(name)  # the last good one keeps serving
            else:
                if name in self._failed:
                    del self._failed[name]
            if route is not None:
                routes[name] = route
        for name in current.keys() - routes.keys():
            log.info("deployment %s removed", name, extra={"fields": {"deployment": name}})
        return routes

    def _route(
        self,
        name: str,
        generation: int,
        current: DeploymentRoute | None,
        features_changed: bool = False,
    ) -> DeploymentRoute | None:
        if current is not None and current.generation == generation:
            deployment = current.deployment
        else:
            try:
                deployment = self._source.get(name).deployment
            except NotFound:
                return None  # deleted since the generations were read
        served = {v.name: (v.ref.name, self._resolve(v.ref)) for v in deployment.spec.variants}
        if current is not None and current.deployment == deployment and current.served == served:
            if not (features_changed and deployment.spec.features is not None):
                return current
        enrichment: Enrichment | None = None
        assemblies: Mapping[tuple[str, str], Assembly] = {}
        if deployment.spec.features is not None:  # the feature store is imported only then
            from modelport.service.enrichment import route_enrichment

            enrichment, assemblies = route_enrichment(
                deployment, self._features, self._signature_of, served
            )
        backend = self._backends.backend(deployment)
        for model, version in set(served.values()):
            backend.prepare(model, version)
        latency = {v: self._latency_tally(name, v) for v in served}
        route = _build_route(
            deployment, generation, served, backend, self._cache(deployment, current), latency
        )
        if enrichment is not None:
            route = dataclasses.replace(route, enrichment=enrichment, assemblies=assemblies)
        log.info(
            "deployment %s generation %d serves %s",
            name,
            generation,
            ", ".join(f"{v}={m}@{n}" for v, (m, n) in served.items()),
            extra={"fields": {"deployment": name, "generation": generation}},
        )
        return route

    def _latency_tally(self, deployment: str, variant: str) -> LatencyTally:
        """The latency tally of a variant, the same one across the deployment's changes."""
        tally = self._latency.get((deployment, variant))
        if tally is None:
            tally = self._latency[(deployment, variant)] = LatencyTally(self._latency_buckets)
        return tally

    def _cache(self, deployment: Deployment, current: DeploymentRoute | None) -> AnswerCache | None:
        """The deployment's response cache: the current one while its settings hold."""
        spec = deployment.spec.cache
        if not spec.enabled:
            return None
        if current is not None and current.cache is not None:
            if current.deployment.spec.cache == spec:
                return current.cache
        if spec.backend == "redis":
            if self._redis is None:
                raise ConfigError(
                    f"deployment {deployment.name!r} keeps its cache in Redis, but this gateway "
                    "has no Redis: set MODELPORT_GATEWAY__REDIS_URL"
                )
            namespace = f"modelport:cache:{deployment.name}:"
            return RedisCache(self._redis, namespace, spec.ttl_seconds, spec.max_bytes)
        return MemoryCache(
            ResponseCache(spec.max_entries, spec.max_bytes, spec.ttl_seconds, self._clock)
        )

    def route(self, name: str) -> DeploymentRoute:
        """The route of deployment ``name``.

        Raises:
            NotFound: No deployment has that name.
            ServiceUnavailable: The deployment exists but has never been served here (its
                variants cannot be loaded, or a gateway has no replicas for it).
        """
        try:
            return self._routes[name]
        except KeyError:
            pass
        why = self._failed.get(name)
        if why is not None:
            raise ServiceUnavailable(f"deployment {name!r} cannot be served: {why}")
        raise NotFound(f"no deployment named {name!r}; apply one with modelport apply -f FILE")

    def names(self) -> list[str]:
        """The deployments served now."""
        return list(self._routes)

    def ready(self) -> bool:
        """Whether every deployment's backend can take requests."""
        return all(route.backend.ready() for route in self._routes.values())

    def stats(self) -> GatewayStats:
        """Counts since the gateway started (on the event loop, which counts them)."""
        c = self._counts
        # The rebuild thread may add a tally meanwhile: a copy of the items is one operation.
        latency = [(d, v, tally.totals()) for (d, v), tally in list(self._latency.items())]
        return GatewayStats(
            dict(c.answers),
            dict(c.failures),
            latency,
            c.in_flight,
            dict(c.shadows),
            dict(c.shadow_failures),
            dict(c.shadows_skipped),
            dict(c.cache_hits),
            dict(c.cache_misses),
        )

    # -- one request ---------------------------------------------------------------------------

    def assign(
        self, route: DeploymentRoute, call: Call, header: str | None, override: str | None
    ) -> Assignment:
        """Choose the variant of ``call``.

        Args:
            route: The deployment called.
            call: The request.
            header: The value of the deployment's sticky-key header, when it has one and the
                request carries it.
            override: The variant the caller named (authorised by the transport).

        Raises:
            InvalidInput: ``override`` names no answering variant, or the key parameter is not
                a string or integer.
        """
        key = header
        if route.sticky_parameter is not None:
            key = _parameter_key(call, route.sticky_parameter)
        return route.plan.assign(key, self._random, override)

    async def infer(self, route: DeploymentRoute, assignment: Assignment, call: Call) -> Answer:
        """Answer ``call`` with the assigned variant; log it and start its shadows.

        A failure is logged with its error kind before it is raised (or returned, for an answer
        whose status is not 200).

        Raises:
            ModelportError: The backend failed (its kind says how).
        """
        slot = assignment.slot
        variant = slot.variant
        model, version = route.served[variant]
        counts = self._counts
        counts.in_flight += 1
        started = time.perf_counter()
        fetched = None
        try:
            enrichment = route.enrichment
            if enrichment is not None:
                if enrichment.inline:
                    fetched = self._fetch(enrichment, call)
                else:
                    fetched = await asyncio.to_thread(self._fetch, enrichment, call)
                call = _enriched_call(call, route.assemblies[(model, version)], fetched)
            if route.cache is None:  # no coroutine of its own: one level less per request
                answer = await route.backend.infer(model, version, call)
            else:
                answer = await self._cached_answer(route, route.cache, model, version, call)
        except Exception as exc:
            kind = _kind(exc)
            failed = (route.name, variant, assignment.keyed, call.protocol, kind)
            counts.failures[failed] = counts.failures.get(failed, 0) + 1
            route.latency[variant].observe(time.perf_counter() - started)
            self._record_failure(route, variant, call, started, kind, shadow=False)
            raise
        finally:
            counts.in_flight -= 1
        seconds = time.perf_counter() - started
        route.latency[variant].observe(seconds)
        counted = (route.name, variant, assignment.keyed, call.protocol, answer.status)
        answers = counts.answers
        answers[counted] = answers.get(counted, 0) + 1
        self._record(route, variant, model, version, answer, call, seconds * 1000.0, shadow=False)
        for shadow in assignment.shadows:
            self._start_shadow(route, shadow, call, fetched)
        return answer

    def _fetch(self, enrichment: Enrichment, call: Call) -> Fetched:
        """The request's features: one batched online read (blocking)."""
        request = call.request
        if request is None:
            request = enrichment.decode(call.body, call.header_length)
            return enrichment.read(request, call.header_length, self._clock.now())
        # Decoded by the gRPC transport, which asks for binary outputs in the body it encodes.
        return enrichment.read(request, call.header_length, self._clock.now(), binary_outputs=True)

    async def _cached_answer(
        self, route: DeploymentRoute, cache: AnswerCache, model: str, version: str, call: Call
    ) -> Answer:
        """The answer of ``model@version``: from the deployment's cache, else from the backend."""
        document = call.json_header()  # parsed once, for the key and the id
        key = cache_key(model, version, _canonical(call, document))
        answer = _cached(await cache.get(key), document.get("id"))
        name = route.name
        if answer is not None:
            hits = self._counts.cache_hits
            hits[name] = hits.get(name, 0) + 1
            return answer
        misses = self._counts.cache_misses
        misses[name] = misses.get(name, 0) + 1
        answer = await route.backend.infer(model, version, call)
        if answer.status == 200:
            cache.put(key, _cacheable(answer))
        return answer

    def _record(
        self,
        route: DeploymentRoute,
        variant: str,
        model: str,
        version: str,
        answer: Answer,
        call: Call,
        latency_ms: float,
        *,
        shadow: bool,
    ) -> None:
        """Log an answer; one whose status is not 200 as a failure of its error kind."""
        predictions = self._log
        if predictions is None or route.sample_rate <= 0.0:
            return
        if route.sample_rate < 1.0 and self._random() >= route.sample_rate:
            return
        error = None
        if answer.status != 200:
            error = answer.error or ErrorKind.UNAVAILABLE.value
        # A plain tuple, decoded on the log's writer thread (see monitoring's Exchange).
        predictions.log(
            (
                call.request_id,
                time.time(),
                route.name,
                variant,
                model,
                answer.model_version or version,
                shadow,
                latency_ms,
                call.identity,
                call.body if call.log_body is None else call.log_body,
                call.header_length if call.log_body is None else call.log_header_length,
                answer.body,
                answer.json_length,
                route.redact,
                route.hashed,
                error,
                answer.cpu_ms,
            )
        )

    def _record_failure(
        self,
        route: DeploymentRoute,
        variant: str,
        call: Call,
        started: float,
        kind: str,
        *,
        shadow: bool,
    ) -> None:
        """Log a request that raised an error of ``kind`` (:func:`_kind`)."""
        latency_ms = (time.perf_counter() - started) * 1000.0
        model, version = route.served[variant]
        failed = Answer(500, b"", None, version, kind)
        self._record(route, variant, model, version, failed, call, latency_ms, shadow=shadow)

    def _start_shadow(
        self, route: DeploymentRoute, slot: Slot, call: Call, fetched: Fetched | None
    ) -> None:
        if len(self._shadow_tasks) >= self._max_shadows:
            skipped = self._counts.shadows_skipped
            skipped[route.name] = skipped.get(route.name, 0) + 1
            return
        task = asyncio.create_task(self._shadow(route, slot, call, fetched))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(
        self, route: DeploymentRoute, slot: Slot, call: Call, fetched: Fetched | None
    ) -> None:
        model, version = route.served[slot.variant]
        started = time.perf_counter()
        shadows, pair = self._counts.shadows, (route.name, slot.variant)
        shadows[pair] = shadows.get(pair, 0) + 1
        try:
            if fetched is not None:  # the caller's features, assembled for this version
                call = _enriched_call(call, route.assemblies[(model, version)], fetched)
            answer = await route.backend.infer(model, version, call)
        except Exception as exc:  # noqa: BLE001 - a shadow's failure is never the caller's
            self._record_failure(route, slot.variant, call, started, _kind(exc), shadow=True)
            self._shadow_failed(route, slot, getattr(exc, "message", None) or repr(exc))
            return
        latency_ms = (time.perf_counter() - started) * 1000.0
        self._record(route, slot.variant, model, version, answer, call, latency_ms, shadow=True)
        if answer.status != 200:
            self._shadow_failed(route, slot, f"status {answer.status}")

    def _shadow_failed(self, route: DeploymentRoute, slot: Slot, why: str) -> None:
        failures, pair = self._counts.shadow_failures, (route.name, slot.variant)
        failures[pair] = failures.get(pair, 0) + 1
        now = time.monotonic()
        if now - self._shadow_warned_at >= _SHADOW_WARN_EVERY_S:
            self._shadow_warned_at = now
            log.warning(
                "shadow %s of deployment %s failed: %s (%d shadow failures so far)",
                slot.variant,
                route.name,
                why,
                sum(failures.values()),
            )


def _build_route(
    deployment: Deployment,
    generation: int,
    served: Mapping[str, tuple[str, str]],
    backend: Backend,
    cache: AnswerCache | None,
    latency: Mapping[str, LatencyTally],
) -> DeploymentRoute:
    spec = deployment.spec
    sticky = spec.traffic.sticky_key
    header = sticky.header.lower() if sticky and sticky.header else None
    return DeploymentRoute(
        deployment=deployment,
        generation=generation,
        plan=TrafficPlan.of(deployment),
        served=dict(served),
        backend=backend,
        sticky_header=header,
        sticky_header_bytes=header.encode("latin-1") if header is not None else None,
        sticky_parameter=sticky.parameter if sticky else None,
        cache=cache,
        sample_rate=spec.prediction_log.sample_rate,
        redact=tuple(spec.prediction_log.redact),
        hashed=tuple(spec.prediction_log.hash),
        latency=dict(latency),
    )


def _enriched_call(call: Call, assembly: Assembly, fetched: Fetched) -> Call:
    """``call`` carrying the model input ``assembly`` makes of ``fetched`` (and its log body)."""
    enriched = assembly.enriched(fetched)
    return dataclasses.replace(
        call,
        body=enriched.body,
        header_length=enriched.header_length,
        request=enriched.request,
        log_body=enriched.log_body,
        log_header_length=enriched.log_header_length,
    )


def _kind(exc: Exception) -> str:
    """The error kind of ``exc``: a modelport error's, ``internal`` for any other exception."""
    return exc.kind.value if isinstance(exc, ModelportError) else ErrorKind.INTERNAL.value


def _parameter_key(call: Call, name: str) -> str | None:
    if call.request is not None:
        value = call.request.parameters.get(name)
    else:
        parameters = call.json_header().get("parameters")
        value = parameters.get(name) if isinstance(parameters, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f"parameter {name!r} is the unit key: expected a string or an integer")
    return str(value)


def _canonical(call: Call, document: dict[str, Any]) -> bytes:
    """The request as the cache compares it (see :func:`canonical_request`)."""
    head = canonical_request(document)
    if call.header_length is None:
        return head
    return head + b"\x00" + call.body[call.header_length :]


def _cacheable(answer: Answer) -> bytes:
    """An answer as the cache keeps it: JSON header length, then the body without its ``id``."""
    end = len(answer.body) if answer.json_length is None else answer.json_length
    document = orjson.loads(answer.body[:end])
    document.pop("id", None)
    head = orjson.dumps(document)
    tail = answer.body[end:]
    marker = b"-" if answer.json_length is None else str(len(head)).encode()
    return marker + b"\n" + (answer.model_version or "").encode() + b"\n" + head + tail


def _cached(entry: bytes | None, request_id: object) -> Answer | None:
    """A cached answer, with the caller's request ``id`` put back."""
    if entry is None:
        return None
    marker, version, rest = entry.split(b"\n", 2)
    json_length = None if marker == b"-" else int(marker)
    end = len(rest) if json_length is None else json_length
    head = rest[:end]
    if isinstance(request_id, str):
        document = orjson.loads(head)
        document["id"] = request_id
        head = orjson.dumps(document)
    body = head + rest[end:]
    return Answer(200, body, None if json_length is None else len(head), version.decode())
