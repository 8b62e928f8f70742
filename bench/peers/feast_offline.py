"""Feast 0.67's ``get_historical_features`` on ``bench/features_offline.py``'s files, one run.

Runs in the ``features-feast`` environment (``python bench/setup_peers.py features-feast``);
``bench/features_offline.py`` starts it, once per timed run, so its peak RSS is its own:

    bench/.venvs/features-feast/bin/python bench/peers/feast_offline.py \\
        --data bench/.out/features_offline/10000_100000 --store duckdb --out result.parquet

The feature repository (``feature_store.yaml``, a file registry) is written to a temporary
folder: ``provider: local``, ``offline_store: type: duckdb`` (Feast's DuckDB store, through
ibis) or ``type: file`` (Feast's default, dask and pandas). The same two views as modelport's,
over the same Parquet files, ttl 2 days; ``user_stats`` has the created-time column.

Not timed: reading the entity Parquet into a pandas DataFrame (Feast wants one), writing the
repository, ``apply``. Timed: ``get_historical_features(entity_df, 10 refs).to_arrow()``.
Then (not timed) the result, sorted by ``order_id`` (Feast does not keep the entity order),
is written to ``--out`` and one JSON line printed: seconds, peak RSS, rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq


def _repo(folder: Path, store: str) -> str:
    (folder / "feature_store.yaml").write_text(
        "project: bench_offline\n"
        f"registry: {folder / 'registry.db'}\n"
        "provider: local\n"
        f"offline_store:\n  type: {store}\n"
        f"online_store:\n  type: sqlite\n  path: {folder / 'online.db'}\n"
        "entity_key_serialization_version: 3\n"
    )
    return str(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--store", choices=["duckdb", "file"], default="duckdb")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    entity_df = pq.read_table(args.data / "entity.parquet").to_pandas()
    entity_df["event_timestamp"] = entity_df["event_timestamp"].astype("datetime64[ns]")
    with tempfile.TemporaryDirectory(prefix="feast-offline-") as tmp:
        store = FeatureStore(repo_path=_repo(Path(tmp), args.store))
        user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
        merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)
        stats = FeatureView(
            name="user_stats",
            entities=[user],
            schema=[Field(name="user_id", dtype=Int64)]
            + [Field(name=f"a{i}", dtype=Float64) for i in range(5)],
            source=FileSource(
                path=str(args.data / "user_stats.parquet"),
                timestamp_field="event_ts",
                created_timestamp_column="created",
            ),
            ttl=timedelta(days=2),
        )
        pairs = FeatureView(
            name="user_merchant",
            entities=[user, merchant],
            schema=[Field(name="user_id", dtype=Int64), Field(name="merchant_id", dtype=Int64)]
            + [Field(name=f"b{i}", dtype=Int64 if i < 3 else Float64) for i in range(5)],
            source=FileSource(
                path=str(args.data / "user_merchant.parquet"), timestamp_field="event_ts"
            ),
            ttl=timedelta(days=2),
        )
        store.apply([user, merchant, stats, pairs])
        refs = [f"user_stats:a{i}" for i in range(5)] + [f"user_merchant:b{i}" for i in range(5)]
        t0 = time.perf_counter()
        result = store.get_historical_features(entity_df=entity_df, features=refs).to_arrow()
        seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.out is not None:
        order = pc.sort_indices(result, sort_keys=[("order_id", "ascending")])
        pq.write_table(result.take(order), args.out)
    print(
        json.dumps(
            {
                "side": f"feast-{args.store}",
                "seconds": seconds,
                "peak_rss_mb": round(rss_mb, 1),
                "rows": result.num_rows,
                "columns": result.column_names,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
