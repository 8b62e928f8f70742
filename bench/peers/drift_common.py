"""What every drift peer script shares (``bench/drift.py`` runs them, one process per point).

It runs in each tool's own environment, so it needs only the standard library and pyarrow (and
pandas where a tool wants DataFrames). A peer script gives ``run`` two functions:

- ``prepare(reference)``: what the tool keeps between windows (its detector, a profile, the
  reference Dataset); timed once, as ``setup_s``;
- ``score(state, window)``: one window's verdicts, ``{feature: (drifted, score, method)}``.

``run`` reads the reference and the three windows of one size (identical, shifted, tiny: the
files ``bench/drift.py`` wrote), none of it timed; prepares; scores the shifted and the tiny
window once (their verdicts, and a warm-up for the timing); then scores the identical window
``--runs`` times, each timed, the last giving its verdicts. It prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

NUMERIC = [f"x{j}" for j in range(15)]
CATEGORICAL = [f"c{j}" for j in range(5)]
FEATURES = NUMERIC + CATEGORICAL
SETS = ("shifted", "tiny", "identical")  # the order they are scored in; identical is timed

Verdicts = dict[str, tuple[bool, float, str]]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True, help="bench/.out/drift/")
    parser.add_argument("--rows", type=int, required=True, help="the windows' rows")
    parser.add_argument("--runs", type=int, default=5, help="timed scorings of the identical set")
    parser.add_argument("--variant", default="default")
    return parser.parse_args()


def read(path: Path, form: str) -> Any:
    """A Parquet file as ``"pandas"`` (a DataFrame) or ``"numpy"`` (a dict of columns)."""
    table = pq.read_table(path)
    if form == "pandas":
        return table.to_pandas()
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in FEATURES}


def peak_rss_mib() -> float:
    """This process's peak resident memory (``VmHWM``), the data it read included."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(
    tool: str,
    version: str,
    form: str,
    prepare: Callable[[Any], Any],
    score: Callable[[Any, Any], Verdicts],
    args: argparse.Namespace,
) -> None:
    reference = read(args.data / "reference.parquet", form)
    windows = {name: read(args.data / f"{name}-{args.rows}.parquet", form) for name in SETS}
    started = time.perf_counter()
    state = prepare(reference)
    setup_s = time.perf_counter() - started
    out: dict[str, Any] = {
        "tool": tool,
        "version": version,
        "variant": args.variant,
        "rows": args.rows,
        "setup_s": setup_s,
        "verdicts": {},
        "scoring_s": {},
    }
    times: list[float] = []
    for name in SETS:
        for _ in range(args.runs if name == "identical" else 1):
            started = time.perf_counter()
            verdicts = score(state, windows[name])
            elapsed = time.perf_counter() - started
            if name == "identical":
                times.append(elapsed)
        out["scoring_s"][name] = elapsed
        out["verdicts"][name] = {
            feature: {"drifted": bool(d), "score": float(s), "method": m}
            for feature, (d, s, m) in verdicts.items()
        }
    out["times_s"] = times
    out["peak_rss_mib"] = peak_rss_mib()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
