"""Feast 0.67's ``materialize`` and ``get_online_features`` on ``bench/features_online.py``'s data.

Runs in the ``features-feast`` environment (``python bench/setup_peers.py features-feast``);
``bench/features_online.py`` starts it once per round and backend:

    bench/.venvs/features-feast/bin/python bench/peers/feast_online.py \\
        --data bench/.out/features_online/100000 --backend sqlite

A feature repository is written to a temporary folder (``provider: local``, ``offline_store:
type: duckdb``, a file registry, ``online_store: type: sqlite`` in that folder or ``type:
redis`` at ``127.0.0.1:6379,db=<--redis-db>`` under a project name of its own), the view
``user_stats`` (entity ``user``, 10 Float64 features ``f0``-``f9``, ttl 7 days) applied over
``online.parquet``, then ``store.materialize(start, end)`` (timed once). Then, for each batch
in ``batches.json`` (the same entity ids as modelport's side reads), one timed
``store.get_online_features(refs, [{"user_id": i}, ...]).to_dict()``; the first 200 of each
shape are a warm-up. One JSON line is printed: materialise seconds, p50/p99/mean per shape,
and the values read for the check batch. The Redis keys are removed with ``teardown()`` at the
end (and any key of the project left over is deleted).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

WARMUP = 200


def _percentiles(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "mean_ms": statistics.fmean(ordered) / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--backend", choices=["sqlite", "redis"], required=True)
    parser.add_argument("--redis-db", type=int, default=13)
    args = parser.parse_args()

    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    spec = json.loads((args.data / "batches.json").read_text())
    now = datetime.fromisoformat(spec["now"])
    project = f"bench_online_{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="feast-online-") as tmp:
        folder = Path(tmp)
        online = (
            f"  type: sqlite\n  path: {folder / 'online.db'}\n"
            if args.backend == "sqlite"
            else f'  type: redis\n  connection_string: "127.0.0.1:6379,db={args.redis_db}"\n'
        )
        (folder / "feature_store.yaml").write_text(
            f"project: {project}\n"
            f"registry: {folder / 'registry.db'}\n"
            "provider: local\n"
            "offline_store:\n  type: duckdb\n"
            f"online_store:\n{online}"
            "entity_key_serialization_version: 3\n"
        )
        store = FeatureStore(repo_path=str(folder))
        user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
        view = FeatureView(
            name="user_stats",
            entities=[user],
            schema=[Field(name="user_id", dtype=Int64)]
            + [Field(name=f"f{j}", dtype=Float64) for j in range(10)],
            source=FileSource(
                path=str(args.data / "online.parquet"),
                timestamp_field="event_ts",
                created_timestamp_column="created",
            ),
            ttl=timedelta(days=7),
            online=True,
        )
        store.apply([user, view])
        try:
            t0 = time.perf_counter()
            store.materialize(now - timedelta(days=10), now)
            materialize_s = time.perf_counter() - t0
            refs = [f"user_stats:f{j}" for j in range(10)]
            check = store.get_online_features(
                features=refs, entity_rows=[{"user_id": i} for i in spec["check"]]
            ).to_dict()
            shapes: dict[str, Any] = {}
            clock = time.perf_counter_ns
            for shape, batches in spec["batches"].items():
                rows = [[{"user_id": i} for i in ids] for ids in batches]
                samples = []
                for n, entity_rows in enumerate(rows):
                    t0 = clock()
                    store.get_online_features(features=refs, entity_rows=entity_rows).to_dict()
                    if n >= WARMUP:
                        samples.append(clock() - t0)
                shapes[shape] = _percentiles(samples) | {"iterations": len(samples)}
        finally:
            store.teardown()
            if args.backend == "redis":
                import redis

                client = redis.Redis(host="127.0.0.1", port=6379, db=args.redis_db)
                left = list(client.scan_iter(b"*" + project.encode()))
                if left:
                    client.delete(*left)
    print(
        json.dumps(
            {
                "side": "feast",
                "backend": args.backend,
                "at": datetime.now(UTC).isoformat(),
                "materialize_s": materialize_s,
                "shapes": shapes,
                "check": {f"f{j}": check[f"f{j}"] for j in range(10)},
                "leftover_redis_keys": len(left) if args.backend == "redis" else 0,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
