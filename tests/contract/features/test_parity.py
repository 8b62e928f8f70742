"""Online/offline parity on every backend: after materialising, an online read at ``T`` equals
the point-in-time join at ``T`` wherever the online store holds the row that join would pick
(``T`` at or after the entity's newest materialised event), ttl expiry included."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.features import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float64,
    Int64,
    String,
)
from modelport.features.online import (
    FeatureStatus,
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
)

BASE = datetime(2024, 3, 1, tzinfo=UTC)
USER = Entity(name="user", join_keys=["user_id"])
PAIR = Entity(name="pair", join_keys=["user_id", "merchant_id"])


def m(minutes: int) -> datetime:
    return BASE + timedelta(minutes=minutes)


def _write(path: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def _data(tmp_path: Path, rng: random.Random) -> tuple[list[FeatureView], dict[str, list[Any]]]:
    """Two views: a composite key, created-time ties and a 30-minute ttl; one key, no ttl."""
    ts = pa.timestamp("us", tz="UTC")
    created = rng.sample(range(100_000), 400)  # distinct: the tie-break is never ambiguous
    orders = [
        {
            "user_id": rng.randint(0, 7),
            "merchant_id": f"m{rng.randint(0, 2)}",
            "ts": m(rng.randint(0, 300)),
            "created": m(created[i]),
            "amount": None if rng.random() < 0.15 else round(rng.uniform(0, 100), 3),
            "count": None if rng.random() < 0.15 else rng.randint(0, 1000),
        }
        for i in range(400)
    ]
    profile = [
        {"user_id": user, "ts": m(t), "label": rng.choice(["x", "y", None])}
        for user in range(7)
        for t in rng.sample(range(300), 20)
    ]
    _write(
        tmp_path / "orders.parquet",
        orders,
        pa.schema(
            [
                ("user_id", pa.int64()),
                ("merchant_id", pa.string()),
                ("ts", ts),
                ("created", ts),
                ("amount", pa.float64()),
                ("count", pa.int64()),
            ]
        ),
    )
    _write(
        tmp_path / "profile.parquet",
        profile,
        pa.schema([("user_id", pa.int64()), ("ts", ts), ("label", pa.string())]),
    )
    views = [
        FeatureView(
            name="orders",
            entities=[PAIR],
            schema=[Field(name="amount", dtype=Float64), Field(name="count", dtype=Int64)],
            source=FileSource(
                path=str(tmp_path / "orders.parquet"),
                timestamp_field="ts",
                created_timestamp_column="created",
            ),
            ttl=timedelta(minutes=30),
        ),
        FeatureView(
            name="profile",
            entities=[USER],
            schema=[Field(name="label", dtype=String)],
            source=FileSource(path=str(tmp_path / "profile.parquet"), timestamp_field="ts"),
        ),
    ]
    newest: dict[str, list[Any]] = {"orders": orders, "profile": profile}
    return views, newest


def _newest(rows: list[dict[str, Any]], keys: list[str]) -> dict[tuple[Any, ...], datetime]:
    out: dict[tuple[Any, ...], datetime] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        out[key] = max(out.get(key, row["ts"]), row["ts"])
    return out


REFS = ["orders:amount", "orders:count", "profile:label"]


@pytest.mark.parametrize("incremental", [False, True])
def test_online_reads_equal_point_in_time_joins(
    online_config: SqliteOnlineStoreConfig | RedisOnlineStoreConfig,
    tmp_path: Path,
    incremental: bool,
) -> None:
    rng = random.Random(18 + incremental)
    views, rows = _data(tmp_path, rng)
    fs = FeatureStore([USER, PAIR, *views], online_store=online_config)
    try:
        if incremental:  # in two steps, the second re-reading from the first's end
            fs.materialize(m(0), m(150), progress=False, chunk_rows=7)
            fs.materialize_incremental(m(300), progress=False, chunk_rows=7)
        else:
            fs.materialize(m(0), m(300), progress=False, chunk_rows=7)
        newest_order = _newest(rows["orders"], ["user_id", "merchant_id"])
        newest_profile = _newest(rows["profile"], ["user_id"])
        expired = compared = 0
        for _ in range(40):
            at = m(rng.randint(0, 400))
            candidates = [(u, f"m{k}") for u in range(9) for k in range(4)]
            entities = [
                c
                for c in candidates
                if newest_order.get(c, at) <= at and newest_profile.get((c[0],), at) <= at
            ]
            if not entities:
                continue
            rng.shuffle(entities)
            entities = entities[: rng.randint(1, len(entities))]
            entity_rows = [{"user_id": u, "merchant_id": k} for u, k in entities]
            got = fs.get_online_features(REFS, entity_rows, now=at)
            offline = fs.get_historical_features(
                pa.table(
                    {
                        "user_id": pa.array([u for u, _ in entities], pa.int64()),
                        "merchant_id": [k for _, k in entities],
                        "event_timestamp": pa.array([at] * len(entities), pa.timestamp("us")),
                    }
                ),
                REFS,
            ).to_arrow()
            expected = offline.drop_columns(["event_timestamp"]).to_pydict()
            assert got.to_dict() == expected, at
            expired += got.statuses["amount"].count(FeatureStatus.OUTSIDE_MAX_AGE)
            compared += len(entities)
        assert compared > 200 and expired > 20  # the ttl was exercised, not only fresh rows
    finally:
        fs.close()
