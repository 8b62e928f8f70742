"""``modelport drift report``: a terminal table, JSON, and a self-contained HTML report.

The HTML page has no script and loads nothing: one inline SVG bar chart per feature (the
reference's share of each bin or category beside the window's), so it opens offline and can be
attached to a ticket as it is.
"""

from __future__ import annotations

import html as escape
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from modelport.service.drift_report import VariantDrift

__all__ = ["html", "json_text", "table"]

_BAR_W = 14
_CHART_H = 90


def json_text(
    deployment: str, start: datetime, end: datetime, variants: Sequence[VariantDrift]
) -> str:
    """The report as JSON: per variant its requests and every feature's verdict."""
    return orjson.dumps(
        {
            "deployment": deployment,
            "since": start.isoformat(),
            "until": end.isoformat(),
            "variants": [
                {
                    "variant": v.variant,
                    "model": v.model,
                    "version": v.version,
                    "requests": v.requests,
                    "rows": None if v.counts is None else v.counts.rows,
                    "profiled": v.report is not None,
                    "features": [] if v.report is None else _features(v.report),
                }
                for v in variants
            ],
        },
        option=orjson.OPT_INDENT_2,
    ).decode()


def table(
    deployment: str, start: datetime, end: datetime, variants: Sequence[VariantDrift]
) -> None:
    """Print each variant's features: method, score, threshold, verdict, missing, out of range."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(
        f"drift of deployment [bold]{deployment}[/bold], {start:%Y-%m-%d %H:%M} to "
        f"{end:%Y-%m-%d %H:%M} UTC"
    )
    if not variants:
        console.print("no answered requests in the window")
    for v in variants:
        title = f"{v.variant}: {v.model}@{v.version}, {_size(v)}"
        if v.report is None:
            console.print(
                f"{title}: no reference profile; make one with modelport drift profile "
                f"{v.model}@{v.version} --reference FILE"
            )
            continue
        drifted = v.report.drifted
        console.print(f"{title}: {len(drifted)} of {len(v.report.features)} features drifted")
        grid = Table("feature", "method", "score", "threshold", "drifted", "test p",
                     "missing", "out of range")  # fmt: skip
        for f in v.report.features:
            grid.add_row(
                f.name, f.method, f"{f.score:.4f}", f"{f.threshold:g}",
                "[bold red]yes[/bold red]" if f.drifted else "no",
                "-" if f.p_value is None else f"{f.p_value:.2g}",
                f"{f.missing_rate:.1%}", f"{f.out_of_range_rate:.1%}",
            )  # fmt: skip
        console.print(grid)


def html(deployment: str, start: datetime, end: datetime, variants: Sequence[VariantDrift]) -> str:
    """A self-contained HTML page: per variant a table and a chart per feature."""
    title = f"Drift of {deployment}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape.escape(title)}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:left}.drift{color:#b00;font-weight:bold}"
        ".chart{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}"
        ".ref{fill:#8aa}.cur{fill:#e83}.legend span{padding:0 .5em}</style></head><body>",
        f"<h1>{escape.escape(title)}</h1>",
        "<p class='legend'><span style='color:#8aa'>&#9632; reference</span>"
        "<span style='color:#e83'>&#9632; window</span></p>",
    ]
    if not variants:
        parts.append("<p>No answered requests in the window.</p>")
    for v in variants:
        parts.append(
            f"<h2>{escape.escape(v.variant)}: {escape.escape(v.model)}@{escape.escape(v.version)}"
            f", {_size(v)}</h2>"
        )
        if v.report is None:
            parts.append("<p>No reference profile for this version.</p>")
            continue
        parts.append(_html_table(v.report))
        for feature in v.report.features:
            parts.append(_chart(v.profile, v.counts, feature))
    parts.append("</body></html>")
    return "\n".join(parts)


def _size(v: VariantDrift) -> str:
    """How much of the window was judged: requests (from the log) and rows."""
    rows = "" if v.counts is None else f"{v.counts.rows} rows"
    if v.requests is None:
        return rows or "no rows"
    return f"{v.requests} requests" + (f", {rows}" if rows else "")


def _features(report: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "kind": f.kind,
            "method": f.method,
            "score": f.score,
            "threshold": f.threshold,
            "drifted": f.drifted,
            "test": f.test,
            "pValue": f.p_value,
            "missingRate": f.missing_rate,
            "referenceMissingRate": f.reference_missing_rate,
            "outOfRangeRate": f.out_of_range_rate,
        }
        for f in report.features
    ]


def _html_table(report: Any) -> str:
    rows = [
        "<table><tr><th>feature</th><th>method</th><th>score</th><th>threshold</th>"
        "<th>drifted</th><th>missing</th><th>out of range</th></tr>"
    ]
    for f in report.features:
        verdict = "<span class='drift'>yes</span>" if f.drifted else "no"
        rows.append(
            f"<tr><td>{escape.escape(f.name)}</td><td>{f.method}</td><td>{f.score:.4f}</td>"
            f"<td>{f.threshold:g}</td><td>{verdict}</td><td>{f.missing_rate:.1%}</td>"
            f"<td>{f.out_of_range_rate:.1%}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _chart(profile: Any, counts: Any, feature: Any) -> str:
    """Reference and window shares of each bin (or category) of one feature, as SVG bars."""
    reference = profile[feature.name]
    window = next(c for c in counts.features if c.name == feature.name)
    ref_shares = _shares(reference.counts)
    cur_shares = _shares(window.counts)
    top = max([*ref_shares, *cur_shares, 1e-9])
    width = len(ref_shares) * (2 * _BAR_W + 6) + 10
    bars = []
    for index, (r, c) in enumerate(zip(ref_shares, cur_shares, strict=True)):
        x = 5 + index * (2 * _BAR_W + 6)
        for offset, share, kind in ((0, r, "ref"), (_BAR_W, c, "cur")):
            height = _CHART_H * share / top
            bars.append(
                f"<rect class='{kind}' x='{x + offset}' y='{_CHART_H - height:.1f}' "
                f"width='{_BAR_W - 1}' height='{height:.1f}'><title>{share:.1%}</title></rect>"
            )
    mark = " <span class='drift'>drifted</span>" if feature.drifted else ""
    return (
        f"<div class='chart'><div>{escape.escape(feature.name)}: {feature.method} "
        f"{feature.score:.4f}{mark}</div><svg width='{width}' height='{_CHART_H + 2}' "
        f"role='img' aria-label='{escape.escape(feature.name)}'>{''.join(bars)}</svg></div>"
    )


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]
