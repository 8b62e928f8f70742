"""The experiments' decision job end to end: ``ExperimentService.evaluate`` on a large log.

    .venv/bin/python -m bench.experiments_job [--rows 10000000] [--feedback 1000000] [--runs 3]

Issue 16's target: the evaluation of an experiment with 10 million logged predictions and
1 million feedback rows completes in under 10 s on this 2-core machine. One evaluation is
everything the control plane's job does for an experiment: read the experiment, its deployment
and the feedback of the window from the metadata database (SQLite here, as embedded), read the
window of the Parquet prediction log and join it with the feedback (``monitoring/log_query``),
the sample-ratio counts, the per-variant metrics with their intervals (F1's bootstrap
included), the sequential tests, the shadow comparison, store the decision, audit it, and act
on it (a deployment apply, through the same checks as ``modelport apply``).

The log and the feedback are ``bench.experiments_query``'s (made once, fixed seeds, under
``bench/.out/experiments-query/``): two arms 50/50 over two days, 2% failures, a shadow on 10%
of the requests, feedback for 1% unknown ids. The feedback is imported into the metadata
database once per run of this benchmark (that time is reported too: it is ``modelport feedback
import``'s write path). Each run starts a fresh experiment over the two days and times one
evaluation in this process; the first run also pays for importing DuckDB and scipy. Peak
resident memory is the process's (``VmHWM``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from typing import Any

import pyarrow.parquet as pq
from bench.experiments_query import CACHE, DEPLOYMENT, WINDOW, build_log, log, peak_rss_mib

HOME = CACHE.parent / "experiments-job"
CHUNK = 50_000

DEPLOYMENT_DOC: dict[str, Any] = {
    "apiVersion": "modelport.io/v1",
    "kind": "Deployment",
    "metadata": {"name": DEPLOYMENT},
    "spec": {
        "variants": [
            {"name": "a", "model": "fraud@1", "weight": 50, "role": "control"},
            {"name": "b", "model": "fraud@2", "weight": 50, "role": "treatment"},
            {"name": "s", "model": "fraud@2", "role": "shadow", "mirror": 10},
        ]
    },
}


def experiment(number: int) -> dict[str, Any]:
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "Experiment",
        "metadata": {"name": f"bench-{number}"},
        "spec": {
            "deployment": DEPLOYMENT,
            "control": "a",
            "treatment": "b",
            "output": "label",
            "scoreOutput": "probabilities",
            "primary": {"metric": "accuracy"},
            "guardrails": [
                {"metric": "error_rate", "tolerance": 0.01},
                {"metric": "latency_p99", "tolerance": "20%"},
                {"metric": "recall", "class": "1", "tolerance": 0.02},
            ],
            "maxDuration": "7d",
        },
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--feedback", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    from modelport.core.errors import NotFound
    from modelport.experiments.experiment_store import ExperimentStore
    from modelport.experiments.feedback import Feedback, FeedbackStore
    from modelport.experiments.store import DeploymentStore
    from modelport.registry import Lineage, MetadataStore, NewVersion
    from modelport.service.deployments import DeploymentService
    from modelport.service.experiments import ExperimentService, PredictionLogData
    from modelport.testing import FakeClock

    folder, feedback_path = build_log(args.rows, args.feedback, random_ids=False)
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    url = f"sqlite:///{HOME / 'modelport.db'}"
    clock = FakeClock(WINDOW[0])
    with (
        DeploymentStore(url, clock) as deployments,
        MetadataStore(url, clock) as registry,
        ExperimentStore(url, clock) as experiments,
        FeedbackStore(url, clock) as feedback,
    ):
        for _ in range(2):
            registry.create_version(
                NewVersion(
                    name="fraud",
                    artifact_digest="sha256:" + "ab" * 32,
                    artifact_size=1,
                    artifact_filename="model.onnx",
                    framework="onnx",
                    lineage=Lineage(registered_by="bench"),
                )
            )
        service = DeploymentService(deployments, registry, None)
        service.apply([DEPLOYMENT_DOC], "bench")
        table = pq.read_table(feedback_path)
        started = time.perf_counter()
        for offset in range(0, table.num_rows, CHUNK):
            part = table.slice(offset, CHUNK).to_pylist()
            items = [Feedback(r["request_id"], "label", r["truth"], None) for r in part]
            feedback.put(DEPLOYMENT, items, "bench")
        imported_s = time.perf_counter() - started
        log(f"feedback: {table.num_rows:,} rows written in {imported_s:.1f} s")

        data = PredictionLogData(folder, feedback)
        decider = ExperimentService(experiments, service, None, clock, data)
        times, decisions = [], []
        for number in range(args.runs):
            clock.advance((WINDOW[0] - clock.now()).total_seconds())
            try:
                decider.store.delete(f"bench-{number - 1}")
            except NotFound:
                pass
            service.apply([DEPLOYMENT_DOC], "bench", by_experiment=True)
            decider.apply([experiment(number)], "bench")
            clock.advance((WINDOW[1] - WINDOW[0]).total_seconds())
            started = time.perf_counter()
            decision = decider.evaluate(f"bench-{number}")
            times.append(time.perf_counter() - started)
            decisions.append(decision)
            log(f"run {number + 1}: {times[-1]:.2f} s, {decision.action}: {decision.reason}")
        stored = decider.store.decisions(f"bench-{args.runs - 1}", 1)[0]

    arms = {a["variant"]: a for a in stored.inputs["arms"]}
    requests = sum(a["requests"] for a in arms.values())
    labelled = sum(a["labelled"] for a in arms.values())
    shadow = stored.inputs["shadows"][0]
    later = times[1:] or times
    print(
        "\n".join(
            [
                f"### The decision job: one evaluation, {args.rows:,} logged predictions, "
                f"{args.feedback:,} feedback rows (Parquet log, SQLite metadata)",
                "",
                "| | seconds |",
                "|---|---:|",
                f"| first evaluation (imports DuckDB, scipy) | {times[0]:.2f} |",
                f"| later evaluations (median of {len(later)}) | {statistics.median(later):.2f} "
                f"(range {min(later):.2f}-{max(later):.2f}) |",
                f"| feedback import ({args.feedback:,} rows, 50k per transaction) | "
                f"{imported_s:.1f} |",
                "",
                f"Read: {requests:,} requests in the window, {labelled:,} labelled rows, "
                f"{stored.inputs['feedback']['unmatched']:,} feedback rows without a logged "
                f"prediction, {shadow['pairs']:,} shadow pairs (agreement "
                f"{shadow['agreement']['value']:.3f}); decision: {stored.decision}. Peak "
                f"memory {peak_rss_mib():,.0f} MiB.",
                "",
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
