"""Randomized point-in-time joins against a brute-force reference written with plain loops."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
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

BASE = datetime(2024, 3, 1)
ORDERS_TTL = timedelta(minutes=30)


def _minutes(m: int) -> datetime:
    return BASE + timedelta(minutes=m)


def _orders_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Composite key (user_id, merchant_id), many event-time ties, distinct created times per tie."""
    created = rng.sample(range(100_000), n)  # distinct: the tie-break is never ambiguous
    rows = []
    for i in range(n):
        rows.append(
            {
                "user_id": rng.randint(0, 6),
                "merchant_id": f"m{rng.randint(0, 3)}",
                "ts": _minutes(rng.randint(0, 300)),
                "created": _minutes(created[i]),
                "amount": None if rng.random() < 0.15 else round(rng.uniform(0, 100), 3),
                "count": None if rng.random() < 0.15 else rng.randint(0, 1000),
                "label": None if rng.random() < 0.15 else rng.choice(["x", "y", "z"]),
            }
        )
    return rows


def _profile_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Key user_id only, no created column: event times distinct per user."""
    rows = []
    for user in range(8):
        for ts in rng.sample(range(300), n // 8):
            score = None if rng.random() < 0.15 else rng.randint(-50, 50)
            rows.append({"user_id": user, "ts": _minutes(ts), "score": score})
    rng.shuffle(rows)
    return rows


def _entity_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    return [
        {
            "user_id": rng.randint(0, 8),  # 7 and 8 have no orders, 8 no profile
            "merchant_id": f"m{rng.randint(0, 4)}",
            "event_timestamp": _minutes(rng.randint(-20, 330)),
            "row": i,
        }
        for i in range(n)
    ]


def _reference(
    entity: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    keys: list[str],
    features: list[str],
    ttl: timedelta,
    created: str | None,
) -> list[dict[str, Any]]:
    """The definition, with loops: best qualifying row by (event time, created time)."""
    out = []
    for e in entity:
        best: dict[str, Any] | None = None
        for r in rows:
            if any(r[k] != e[k] for k in keys):
                continue
            if r["ts"] > e["event_timestamp"]:
                continue
            if ttl > timedelta(0) and r["ts"] < e["event_timestamp"] - ttl:
                continue
            if best is None or (r["ts"], r[created] if created else 0) > (
                best["ts"],
                best[created] if created else 0,
            ):
                best = r
        out.append({f: (best[f] if best is not None else None) for f in features})
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_matches_brute_force(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    orders = _orders_rows(rng, 400)
    profile = _profile_rows(rng, 240)
    entity = _entity_rows(rng, 500)

    orders_path = tmp_path / "orders.parquet"
    if seed % 3 == 2:  # a glob of part files: the features travel through the join
        (tmp_path / "orders").mkdir()
        for part in range(3):
            rows = pa.Table.from_pylist(orders[part::3])
            pq.write_table(rows, tmp_path / "orders" / f"part-{part}.parquet")
        orders_path = tmp_path / "orders" / "*.parquet"
    else:  # one file: the winning rows are fetched by row number
        pq.write_table(pa.Table.from_pylist(orders), orders_path, row_group_size=97)
    profile_path = tmp_path / "profile.csv"
    pacsv.write_csv(pa.Table.from_pylist(profile), profile_path)

    user = Entity(name="user", join_keys=["user_id"])
    merchant = Entity(name="merchant", join_keys=["merchant_id"])
    orders_view = FeatureView(
        name="orders",
        entities=[user, merchant],
        schema=[
            Field(name="amount", dtype=Float64),
            Field(name="count", dtype=Int64),
            Field(name="label", dtype=String),
        ],
        source=FileSource(
            path=str(orders_path), timestamp_field="ts", created_timestamp_column="created"
        ),
        ttl=ORDERS_TTL,
    )
    profile_view = FeatureView(
        name="profile",
        entities=[user],
        schema=[Field(name="score", dtype=Int64)],
        source=FileSource(path=str(profile_path), timestamp_field="ts"),
        ttl=timedelta(0),
    )
    store = FeatureStore()
    store.apply([user, merchant, orders_view, profile_view])

    # aware timestamps in a zone other than UTC on odd seeds: the same instants
    tz = "America/New_York" if seed % 2 else None
    stamps = [e["event_timestamp"] for e in entity]
    if tz is not None:
        stamps = [s.replace(tzinfo=UTC) for s in stamps]
    entity_df = pa.table(
        {
            "user_id": [e["user_id"] for e in entity],
            "merchant_id": [e["merchant_id"] for e in entity],
            "event_timestamp": pa.array(stamps, pa.timestamp("us", tz=tz)),
            "row": [e["row"] for e in entity],
        }
    )
    out = store.get_historical_features(
        entity_df,
        ["orders:amount", "profile:score", "orders:count", "orders:label"],
    ).to_arrow()

    want_orders = _reference(
        entity,
        orders,
        ["user_id", "merchant_id"],
        ["amount", "count", "label"],
        ORDERS_TTL,
        "created",
    )
    want_profile = _reference(entity, profile, ["user_id"], ["score"], timedelta(0), None)
    assert out.num_rows == len(entity)
    assert out["row"].to_pylist() == list(range(len(entity)))
    assert out["amount"].to_pylist() == [w["amount"] for w in want_orders]
    assert out["count"].to_pylist() == [w["count"] for w in want_orders]
    assert out["label"].to_pylist() == [w["label"] for w in want_orders]
    assert out["score"].to_pylist() == [w["score"] for w in want_profile]
    # the test is not vacuous: most rows matched, and some did not
    matched = sum(w["count"] is not None for w in want_orders)
    assert 0 < matched < len(entity)
