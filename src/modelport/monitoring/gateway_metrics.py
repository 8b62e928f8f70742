"""The gateway's Prometheus metrics: requests per deployment and variant, latency, shadows, cache.

A gateway counts its requests in plain dictionaries and per-variant
:class:`~modelport.monitoring.tally.LatencyTally` records on the event loop (one dictionary
update and one list append a request); :class:`GatewayMetrics` reads them as a
:class:`GatewayCounts` at every flush of the process's
:class:`~modelport.monitoring.exposition.Exposition` and moves what grew into the Prometheus
metrics, which multiprocess mode adds up over the workers.

Every label is bounded: deployments and their variants are what the operators applied (a request
naming an unknown deployment is not counted here), ``protocol`` is ``rest`` or ``grpc`` and
``code`` an HTTP status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from modelport.monitoring.exposition import CounterFlush, Exposition, GaugeFlush, HistogramFlush
from modelport.monitoring.tally import LatencyTotals

__all__ = ["GatewayCounts", "GatewayMetrics"]


@dataclass(frozen=True, slots=True)
class GatewayCounts:
    """What one gateway process counted since it started.

    Attributes:
        requests: ``(deployment, variant, protocol, code, keyed)`` -> requests answered:
            ``protocol`` is ``rest`` or ``grpc``, ``code`` the HTTP status (for gRPC, the one
            REST answers for the same outcome), ``keyed`` whether a unit key placed them.
        latency: ``(deployment, variant, totals)``: the time each variant took to answer.
        in_flight: Requests placed on a variant and not answered yet.
        shadows: ``(deployment, variant)`` -> copies sent to that shadow.
        shadow_failures: ``(deployment, variant)`` -> those that failed.
        shadows_skipped: deployment -> copies not sent (too many shadows in flight).
        cache_hits: deployment -> requests its response cache answered.
        cache_misses: deployment -> requests its response cache could not answer.
    """

    requests: Mapping[tuple[str, str, str, str, bool], int] = field(default_factory=dict)
    latency: Iterable[tuple[str, str, LatencyTotals]] = ()
    in_flight: int = 0
    shadows: Mapping[tuple[str, str], int] = field(default_factory=dict)
    shadow_failures: Mapping[tuple[str, str], int] = field(default_factory=dict)
    shadows_skipped: Mapping[str, int] = field(default_factory=dict)
    cache_hits: Mapping[str, int] = field(default_factory=dict)
    cache_misses: Mapping[str, int] = field(default_factory=dict)


class GatewayMetrics:
    """The gateway's metric families, fed from a :class:`GatewayCounts` source at every flush.

    Args:
        exposition: The process's metrics.
        source: Returns the gateway's counts (on the event loop, which counts them).
    """

    def __init__(self, exposition: Exposition, source: Callable[[], GatewayCounts]) -> None:
        self._source = source
        variant = ("deployment", "variant")
        self._requests = CounterFlush(
            exposition.counter(
                "modelport_gateway_requests",
                "Requests the gateway placed on a variant, by protocol (rest, grpc) and HTTP "
                "status (gRPC calls count the status REST answers for the same outcome). Per "
                "deployment and variant these are the traffic plan's assignment counts: an "
                "experiment's arms",
                [*variant, "protocol", "code"],
            )
        )
        self._keyed = CounterFlush(
            exposition.counter(
                "modelport_gateway_keyed_requests",
                "Of those, the requests a unit key (spec.traffic.stickyKey) placed; the others "
                "were drawn at random or named by X-Modelport-Variant",
                variant,
            )
        )
        self._latency = HistogramFlush(
            exposition.histogram(
                "modelport_gateway_request_duration_seconds",
                "Time the gateway took to answer a request placed on a variant (cache and "
                "backend; failures included)",
                variant,
            ),
            exposition.latency_buckets,
        )
        self._in_flight = GaugeFlush(
            exposition.gauge(
                "modelport_gateway_in_flight_requests",
                "Requests placed on a variant and not answered yet",
            )
        )
        self._shadows = CounterFlush(
            exposition.counter(
                "modelport_gateway_shadow_requests",
                "Copies of requests sent to shadow variants",
                variant,
            )
        )
        self._shadow_failures = CounterFlush(
            exposition.counter(
                "modelport_gateway_shadow_failures",
                "Shadow requests that failed (the callers were not affected)",
                variant,
            )
        )
        self._shadows_skipped = CounterFlush(
            exposition.counter(
                "modelport_gateway_shadows_skipped",
                "Shadow copies not sent: too many shadow requests in flight",
                ["deployment"],
            )
        )
        self._cache_hits = CounterFlush(
            exposition.counter(
                "modelport_gateway_cache_hits",
                "Requests answered from the deployment's response cache",
                ["deployment"],
            )
        )
        self._cache_misses = CounterFlush(
            exposition.counter(
                "modelport_gateway_cache_misses",
                "Requests the deployment's response cache could not answer",
                ["deployment"],
            )
        )
        exposition.on_flush(self.flush)

    def flush(self) -> None:
        """Move what the gateway counted since the last flush into the Prometheus metrics."""
        counts = self._source()
        by_code: dict[tuple[str, str, str, str], int] = {}
        keyed: dict[tuple[str, str], int] = {}
        for (deployment, variant, protocol, code, was_keyed), n in counts.requests.items():
            labels = (deployment, variant, protocol, code)
            by_code[labels] = by_code.get(labels, 0) + n
            if was_keyed:
                keyed[(deployment, variant)] = keyed.get((deployment, variant), 0) + n
        for labels, n in by_code.items():
            self._requests.update(labels, n)
        for pair, n in keyed.items():
            self._keyed.update(pair, n)
        for deployment, variant, totals in counts.latency:
            self._latency.update((deployment, variant), totals.seconds, totals.buckets)
        self._in_flight.update((), counts.in_flight)
        for pair, n in counts.shadows.items():
            self._shadows.update(pair, n)
        for pair, n in counts.shadow_failures.items():
            self._shadow_failures.update(pair, n)
        for name, n in counts.shadows_skipped.items():
            self._shadows_skipped.update((name,), n)
        for name, n in counts.cache_hits.items():
            self._cache_hits.update((name,), n)
        for name, n in counts.cache_misses.items():
            self._cache_misses.update((name,), n)
