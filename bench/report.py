"""Medians across rounds, ratios, and the results tables (markdown): all servers, auth cost."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.load import Sample
from bench.targets import Target

AUTH_TARGET = 0.9
ACCESS_LOG_TARGET = 0.9
"""Issue 14: access logging costs at most 10% of throughput at 16 connections."""
"""Authenticated modelport must keep at least this share of its --no-auth requests/s."""


@dataclass(frozen=True)
class Point:
    """Where a measurement is taken: model, transport and concurrency."""

    model: str
    transport: str  # "REST" or "gRPC"
    connections: int

    def label(self) -> str:
        return f"{self.model} {self.transport} c={self.connections}"

    def sort_key(self) -> tuple[bool, bool, int]:
        return (self.transport != "REST", self.model != "tiny", self.connections)


@dataclass
class Run:
    """One measurement (or its failure) of one configuration at one point in one round."""

    round: int
    target: Target
    point: Point
    sample: Sample | None = None
    failure: str | None = None


@dataclass
class Summary:
    """A configuration at a point over all rounds: medians of the successful rounds."""

    target: Target
    point: Point
    rounds: int
    ok: int
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    failure: str | None = None
    first_error: str = ""

    @property
    def failed(self) -> bool:
        return self.ok == 0


def summarize(runs: list[Run], order: list[str]) -> list[Summary]:
    """Medians per configuration and point, sorted by point, then by ``order`` (keys)."""
    grouped: dict[tuple[str, Point], list[Run]] = {}
    for run in runs:
        grouped.setdefault((run.target.key, run.point), []).append(run)
    out = []
    for group in grouped.values():
        good = [r.sample for r in group if r.sample is not None]
        failures = [r.failure for r in group if r.failure]
        summary = Summary(group[0].target, group[0].point, rounds=len(group), ok=len(good))
        if good:
            summary.rps = statistics.median(s.rps for s in good)
            summary.p50_ms = statistics.median(s.p50_ms for s in good)
            summary.p99_ms = statistics.median(s.p99_ms for s in good)
            summary.errors = sum(s.errors for s in good)
            summary.first_error = next((s.first_error for s in good if s.first_error), "")
        if failures:
            summary.failure = failures[0]
        out.append(summary)
    rank = {key: i for i, key in enumerate(order)}
    out.sort(key=lambda s: (s.point.sort_key(), rank.get(s.target.key, len(rank))))
    return out


def _ratio(mine: Summary, others: list[Summary], name: bool) -> str:
    alive = [o for o in others if not o.failed and o.rps > 0]
    if mine.failed or not alive:
        return "n/a"
    best = max(alive, key=lambda o: o.rps)
    text = f"{mine.rps / best.rps:.2f}x"
    return f"{text} ({best.target.label})" if name else text


def table(summaries: list[Summary], labels: dict[str, str]) -> str:
    """The results as one markdown table; ``labels`` overrides a configuration's label."""
    head = (
        "| point | server | req/s | p50 ms | p99 ms | errors | "
        "modelport / best peer | modelport / best MLServer | modelport / floor |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---|---|---|"]
    by_point: dict[Point, list[Summary]] = {}
    for s in summaries:
        by_point.setdefault(s.point, []).append(s)
    for point, rows in by_point.items():
        peers = [r for r in rows if r.target.is_peer]
        mlservers = [r for r in rows if r.target.family == "mlserver"]
        floors = [r for r in rows if r.target.family == "floor"]
        for row in rows:
            label = labels.get(row.target.key, row.target.label)
            if row.failed:
                reason = (row.failure or "failed").replace("|", "/")[:160]
                lines.append(f"| {point.label()} | {label} | failed: {reason} | | | | | | |")
                continue
            partial = f" ({row.ok}/{row.rounds} rounds)" if row.ok < row.rounds else ""
            cells = [
                point.label(),
                label + partial,
                f"{row.rps:,.0f}",
                f"{row.p50_ms:.2f}",
                f"{row.p99_ms:.2f}",
                str(row.errors),
            ]
            if row.target.modelport_authenticated and not row.target.access_log:
                cells += [
                    _ratio(row, peers, name=True),
                    _ratio(row, mlservers, name=False),
                    _ratio(row, floors, name=False) if point.transport == "REST" else "",
                ]
            else:
                cells += ["", "", ""]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _auth_pairs(summaries: list[Summary]) -> list[tuple[Summary, Summary]]:
    """Per point, modelport with its API key and modelport --no-auth, both measured."""
    pairs = []
    by_point: dict[Point, list[Summary]] = {}
    for s in summaries:
        if s.target.family == "modelport" and not s.failed and not s.target.access_log:
            by_point.setdefault(s.point, []).append(s)
    for rows in by_point.values():
        keyed = [r for r in rows if r.target.auth]
        open_ = [r for r in rows if not r.target.auth]
        if keyed and open_ and open_[0].rps > 0:
            pairs.append((keyed[0], open_[0]))
    return pairs


def auth_cost(summaries: list[Summary]) -> str | None:
    """Authenticated / unauthenticated modelport requests/s per point; None without a pair."""
    pairs = _auth_pairs(summaries)
    if not pairs:
        return None
    lines = [
        "Auth cost (modelport with an API key on every request / modelport --no-auth; "
        f"target at least {AUTH_TARGET:.2f}):",
        "",
        "| point | req/s with key | req/s --no-auth | with key / --no-auth | "
        "p50 ms with key / --no-auth | p99 ms with key / --no-auth |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for keyed, open_ in pairs:
        ratio = keyed.rps / open_.rps
        flag = "" if ratio >= AUTH_TARGET else f" (below {AUTH_TARGET:.2f})"
        lines.append(
            f"| {keyed.point.label()} | {keyed.rps:,.0f} | {open_.rps:,.0f} | {ratio:.3f}{flag} | "
            f"{keyed.p50_ms:.2f} / {open_.p50_ms:.2f} | {keyed.p99_ms:.2f} / {open_.p99_ms:.2f} |"
        )
    return "\n".join(lines)


def access_log_cost(summaries: list[Summary]) -> str | None:
    """modelport with its access log on / off, per point; None without a pair."""
    by_point: dict[Point, dict[bool, Summary]] = {}
    for s in summaries:
        if s.target.modelport_authenticated and not s.failed and s.rps > 0:
            by_point.setdefault(s.point, {})[s.target.access_log] = s
    rows = [(p, r[True], r[False]) for p, r in by_point.items() if len(r) == 2]
    if not rows:
        return None
    lines = [
        "Access log cost (modelport with one access line per request / without; target at "
        f"least {ACCESS_LOG_TARGET:.2f}):",
        "",
        "| point | req/s logging | req/s not logging | logging / not | p99 ms logging / not |",
        "|---|---:|---:|---:|---:|",
    ]
    for point, on, off in rows:
        ratio = on.rps / off.rps
        flag = "" if ratio >= ACCESS_LOG_TARGET else f" (below {ACCESS_LOG_TARGET:.2f})"
        lines.append(
            f"| {point.label()} | {on.rps:,.0f} | {off.rps:,.0f} | {ratio:.3f}{flag} | "
            f"{on.p99_ms:.2f} / {off.p99_ms:.2f} |"
        )
    return "\n".join(lines)


def headroom(summaries: list[Summary]) -> str | None:
    """modelport and the bare ONNX Runtime handler as shares of the floor, per REST point.

    The floor figure alone mixes two costs: running the model at all and everything else
    modelport does per request. The bare handler (``bench/floor.py --onnx``) runs the model with
    nothing else, so bare / floor is the most any server running the model reaches on this stack
    and machine, and modelport / bare is the share of it modelport keeps. None when no point has
    all three.
    """
    by_point: dict[Point, dict[str, Summary]] = {}
    for s in summaries:
        if s.failed or s.rps <= 0 or s.point.transport != "REST":
            continue
        if s.target.access_log:
            continue
        if s.target.modelport_authenticated or s.target.family in ("floor", "bare"):
            key = "modelport" if s.target.family == "modelport" else s.target.family
            by_point.setdefault(s.point, {})[key] = s
    rows = [(p, r) for p, r in by_point.items() if len(r) == 3]
    if not rows:
        return None
    lines = [
        "Headroom (shares of the floor's req/s; the bare ONNX Runtime handler runs the model "
        "and nothing else):",
        "",
        "| point | modelport / floor | bare handler / floor | modelport / bare handler |",
        "|---|---:|---:|---:|",
    ]
    for point, r in rows:
        mine, floor, bare = r["modelport"].rps, r["floor"].rps, r["bare"].rps
        lines.append(
            f"| {point.label()} | {mine / floor:.2f}x | {bare / floor:.2f}x | {mine / bare:.2f}x |"
        )
    return "\n".join(lines)


def notes(summaries: list[Summary], extra: list[str]) -> list[str]:
    """Lines worth reading under the table: errors seen, failures, options dropped."""
    out = list(extra)
    for s in summaries:
        label = f"{s.target.label} at {s.point.label()}"
        if s.errors:
            out.append(f"{label}: {s.errors} failed requests (first: {s.first_error[:160]})")
        if s.failure and not s.failed:
            out.append(f"{label}: {s.rounds - s.ok} round(s) failed: {s.failure[:160]}")
    return out
