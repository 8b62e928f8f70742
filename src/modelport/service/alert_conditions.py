"""Whether an alert rule's condition holds, per alert: the signals read, the pure maths applied.

:func:`judge` takes a rule, what was measured (a :class:`SignalWindow` of the deployment's
``traffic_windows`` rows, and the drift job's verdicts for ``driftScore``) and returns one
:class:`Finding` per alert the condition speaks of: the deployment as a whole (latencySlo,
errorRate, trafficAnomaly), each variant (modelNotReady, queueSaturation) or each variant and
feature (driftScore). The README's "modelport alerts list" section states each condition's
meaning; in short:

- latencySlo: per burn-rate pair, the requests slower than the threshold over its long and its
  short window (:meth:`~modelport.monitoring.signals.SignalTotals.slower_than`) burn the error
  budget faster than the pair's factor in both
  (:func:`~modelport.monitoring.alerting.slo_burning`).
- errorRate: server errors (5xx) over requests in the window, above ``above``, with at least
  ``minRequests`` requests.
- trafficAnomaly: the signal over the observation window (:data:`OBSERVATION_INTERVALS` signal
  intervals, or one alert interval if longer) at least ``zScore`` standard deviations from the
  rule's baseline, in either direction; judged (and the baseline updated) only with at least
  ``minRequests`` requests in that window. The baseline is a plain mean of its first
  observations until the half-life's weight is larger (:func:`_warming`), and judges from its
  fifth.
- modelNotReady: a variant with a not-ready sample in the last two signal intervals, or with no
  sample at all there although some process reported it in the last hour.
- queueSaturation: a variant whose batch queue was fuller than ``above`` in the last signal
  interval.
- driftScore: a feature of a variant's newest verdict against its reference on the rule's
  window that drifted (or scored above ``above``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from modelport.core.alert import (
    AlertRule,
    DriftScore,
    ErrorRate,
    LatencySlo,
    QueueSaturation,
    TrafficAnomaly,
)
from modelport.monitoring.alert_records import DriftVerdict
from modelport.monitoring.alerting import Baseline, slo_burning
from modelport.monitoring.signals import SignalRow, SignalTotals, add_up

__all__ = [
    "HOUR_S",
    "OBSERVATION_INTERVALS",
    "Finding",
    "Judgement",
    "SignalWindow",
    "judge",
    "needed_seconds",
    "observation_seconds",
]

OBSERVATION_INTERVALS: Final = 4
"""Signal intervals a trafficAnomaly observation spans (at least one alert interval)."""
HOUR_S: Final = 3600.0
"""How far back modelNotReady looks for a variant that some process reported."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One alert's verdict in one evaluation.

    Attributes:
        labels: The labels that tell it from the rule's other alerts (``variant``, ``feature``).
        holds: Whether the condition holds.
        value: What was measured (a share, a burn rate, a z-score, a score); ``None``: nothing.
        description: One sentence of what was found, sent as the ``description`` annotation.
    """

    labels: dict[str, str]
    holds: bool
    value: float | None
    description: str


@dataclass(frozen=True, slots=True)
class Judgement:
    """A rule's findings, and its baseline after this evaluation (trafficAnomaly only)."""

    findings: list[Finding]
    baseline: Baseline | None = None


@dataclass(frozen=True, slots=True)
class SignalWindow:
    """A deployment's signal rows ending in ``(until - longest, until]``, and the timings.

    Attributes:
        rows: The rows.
        until: The end of every window read (a signal-interval boundary).
        signal_interval_s: How often each process writes its rows.
        alert_interval_s: How often rules are evaluated.
        variants: The deployment's variants now.
    """

    rows: Sequence[SignalRow]
    until: datetime
    signal_interval_s: float
    alert_interval_s: float
    variants: Sequence[str] = field(default=())

    def totals(self, seconds: float, variant: str | None = None) -> SignalTotals:
        """The rows (of one variant, or all) that end in the last ``seconds``, added up."""
        since = self.until - timedelta(seconds=seconds)
        return add_up(
            r for r in self.rows if r.end > since and (variant is None or r.variant == variant)
        )


def observation_seconds(signal_interval_s: float, alert_interval_s: float) -> float:
    """The window a trafficAnomaly rule observes its signal over."""
    return max(OBSERVATION_INTERVALS * signal_interval_s, alert_interval_s)


def needed_seconds(rule: AlertRule, signal_interval_s: float, alert_interval_s: float) -> float:
    """The longest window of signals ``rule`` reads (0 for driftScore, which reads verdicts)."""
    condition = rule.spec.condition
    if condition.latency_slo is not None:
        return max(w.long for w in condition.latency_slo.windows)
    if condition.error_rate is not None:
        return condition.error_rate.window
    if condition.traffic_anomaly is not None:
        return observation_seconds(signal_interval_s, alert_interval_s)
    if condition.model_not_ready is not None:
        return max(HOUR_S, 2 * signal_interval_s)
    if condition.queue_saturation is not None:
        return signal_interval_s
    return 0.0


def judge(
    rule: AlertRule,
    window: SignalWindow,
    verdicts: Sequence[DriftVerdict] = (),
    baseline: tuple[Baseline, float] | None = None,
) -> Judgement:
    """Every alert's finding for ``rule``.

    Args:
        rule: The rule.
        window: The deployment's signals.
        verdicts: The drift verdicts on the rule's window (driftScore).
        baseline: The trafficAnomaly baseline and the seconds since its last update; ``None``:
            none yet.
    """
    c = rule.spec.condition
    if c.latency_slo is not None:
        return Judgement([_latency_slo(c.latency_slo, window)])
    if c.error_rate is not None:
        return Judgement([_error_rate(c.error_rate, window)])
    if c.traffic_anomaly is not None:
        return _traffic_anomaly(c.traffic_anomaly, window, baseline)
    if c.model_not_ready is not None:
        return Judgement([_not_ready(window, variant) for variant in window.variants])
    if c.queue_saturation is not None:
        q = c.queue_saturation
        return Judgement([_saturated(q, window, variant) for variant in window.variants])
    if c.drift_score is not None:
        return Judgement(_drift(c.drift_score, verdicts))
    raise ValueError(f"rule {rule.name!r} has no condition")  # the document forbids it


def _latency_slo(slo: LatencySlo, window: SignalWindow) -> Finding:
    lengths = {length for w in slo.windows for length in (w.long, w.short)}
    counts = {}
    for length in lengths:
        totals = window.totals(length)
        total = float(totals.latency_count)
        counts[length] = (min(totals.slower_than(slo.threshold), total), total)
    pairs = [(w.long, w.short, w.burn_rate) for w in slo.windows]
    burning, report = slo_burning(pairs, counts, slo.objective)
    worst = max(report, key=lambda r: min(r["long_rate"], r["short_rate"]))
    rate = min(worst["long_rate"], worst["short_rate"])
    description = (
        f"requests slower than {slo.threshold:g} s burn the error budget "
        f"{worst['long_rate']:.1f}x over {_span(worst['long_s'])} and "
        f"{worst['short_rate']:.1f}x over {_span(worst['short_s'])} "
        f"(alert above {worst['factor']:g}x; objective {slo.objective:g})"
    )
    return Finding({}, burning, rate, description)


def _error_rate(spec: ErrorRate, window: SignalWindow) -> Finding:
    totals = window.totals(spec.window)
    if totals.requests == 0:
        return Finding({}, False, None, f"no requests in the last {_span(spec.window)}")
    share = totals.errors / totals.requests
    enough = totals.requests >= spec.min_requests
    description = (
        f"{totals.errors} of {totals.requests} requests failed with a server error in the last "
        f"{_span(spec.window)} ({share:.2%}; alert above {spec.above:.2%}"
        + ("" if enough else f", judged from {spec.min_requests} requests")
        + ")"
    )
    return Finding({}, enough and share > spec.above, share, description)


def _traffic_anomaly(
    spec: TrafficAnomaly, window: SignalWindow, baseline: tuple[Baseline, float] | None
) -> Judgement:
    seconds = observation_seconds(window.signal_interval_s, window.alert_interval_s)
    totals = window.totals(seconds)
    volume = totals.latency_count if spec.signal == "latency_p99" else totals.requests
    value = _anomaly_signal(spec, totals, seconds)
    current, elapsed = baseline if baseline is not None else (Baseline(), 0.0)
    if volume < spec.min_requests or value is None:
        note = f"{volume} requests in the last {_span(seconds)}, fewer than {spec.min_requests}"
        return Judgement([Finding({}, False, None, f"not judged: {note}")])
    z = current.z(value)
    holds = abs(z) >= spec.z_score
    description = (
        f"{spec.signal} {value:.4g} over the last {_span(seconds)} is {z:+.1f} standard "
        f"deviations from its baseline {current.mean:.4g} (alert at {spec.z_score:g})"
        if current.ready
        else f"{spec.signal} {value:.4g}: the baseline is still learning "
        f"({current.observations} of 5 observations)"
    )
    if current.observations > 0 and elapsed <= 0:
        return Judgement([Finding({}, holds, z, description)])  # no time passed: no update
    elapsed = _warming(elapsed, spec.half_life, current.observations) if current.observations else 1
    updated = current.update(value, elapsed, spec.half_life)
    return Judgement([Finding({}, holds, z, description)], updated)


def _warming(elapsed_s: float, half_life_s: float, observations: int) -> float:
    """``elapsed_s``, or more while the baseline is young: a new value weighs at least 1/(n+1).

    With the half-life's weight alone (about 0.3% for 15 s of a 1 h half-life) the first
    observation would be the mean for hours; so the baseline is a plain mean of its first
    observations until the half-life's weight is the larger.
    """
    floor = 1.0 / (observations + 1)
    return max(elapsed_s, -half_life_s * math.log2(1.0 - floor))


def _anomaly_signal(spec: TrafficAnomaly, totals: SignalTotals, seconds: float) -> float | None:
    if spec.signal == "request_rate":
        return totals.requests / seconds
    if spec.signal == "error_rate":
        return totals.errors / totals.requests if totals.requests else None
    return totals.quantile(0.99)


def _not_ready(window: SignalWindow, variant: str) -> Finding:
    recent_s = 2 * window.signal_interval_s
    recent = window.totals(recent_s, variant)
    labels = {"variant": variant}
    if recent.samples == 0:
        hour = window.totals(HOUR_S, variant)
        seen = hour.samples > 0 or hour.requests > 0
        description = (
            f"variant {variant} was reported in the last hour but no process sampled its "
            f"readiness in the last {_span(recent_s)}"
            if seen
            else f"variant {variant} was not reported in the last hour"
        )
        return Finding(labels, seen, 1.0 if seen else None, description)
    share = recent.not_ready / recent.samples
    description = (
        f"variant {variant} was not ready in {recent.not_ready} of {recent.samples} readiness "
        f"samples in the last {_span(recent_s)}"
    )
    return Finding(labels, recent.not_ready > 0, share, description)


def _saturated(spec: QueueSaturation, window: SignalWindow, variant: str) -> Finding:
    totals = window.totals(window.signal_interval_s, variant)
    labels = {"variant": variant}
    peak = totals.peak_fill
    if peak is None:
        return Finding(labels, False, None, f"variant {variant} has no batch queue measured")
    description = (
        f"variant {variant}'s batch queue reached {peak:.0%} of its capacity in the last "
        f"{_span(window.signal_interval_s)} (alert above {spec.above:.0%})"
    )
    return Finding(labels, peak > spec.above, peak, description)


def _drift(spec: DriftScore, verdicts: Sequence[DriftVerdict]) -> list[Finding]:
    findings = []
    for verdict in verdicts:
        for feature in verdict.features:
            if spec.feature not in ("*", feature.name):
                continue
            if spec.above is None:
                holds = feature.drifted
                rule_text = "the drift job's verdict"
            else:
                holds = feature.score is not None and feature.score > spec.above
                rule_text = f"alert above {spec.above:g}"
            score = "no values" if feature.score is None else f"score {feature.score:.4g}"
            description = (
                f"feature {feature.name} of variant {verdict.variant} (version "
                f"{verdict.version}) {'drifted' if feature.drifted else 'did not drift'} in the "
                f"window ending {verdict.window_end:%Y-%m-%d %H:%M} UTC: {score} ({rule_text})"
            )
            labels = {"variant": verdict.variant, "feature": feature.name}
            findings.append(Finding(labels, holds, feature.score, description))
    return findings


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
