"""A hand-worked point-in-time join, checked cell by cell against a table computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.features import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float64,
    Int64,
)


def _t(day: int, hour: int = 0, second: int = 0, month: int = 1, year: int = 2024) -> datetime:
    return datetime(year, month, day, hour, 0, second)


# driver_stats (Parquet, ttl 2 days, created timestamps): driver_id, event_ts, created, conv_rate, trips
STATS_ROWS = [
    (1001, _t(1), _t(1), 0.1, 10),
    (1001, _t(3), _t(3), 0.3, 30),
    (1001, _t(3), _t(3, 5), 0.35, 35),  # same event time, created later: wins the tie
    (1001, _t(3), _t(2), 0.33, 33),  # same event time, created earlier: loses
    (1002, _t(2), _t(2), 0.2, 20),
    (1002, _t(10), _t(10), 0.9, 90),  # in the future of every 1002 entity row
    (1003, _t(5, 12), _t(5, 12), None, 50),  # a null feature value is returned as null
]

# driver_daily (CSV, no ttl, no created column): driver_id, day_ts, rating
DAILY_CSV = "driver_id,day_ts,rating\n1001,2023-06-01 00:00:00,4.5\n1002,2024-01-09 00:00:00,4.0\n"

# entity rows: driver_id, event_timestamp, order_id
ENTITY_ROWS = [
    (1001, _t(31, month=12, year=2023), "a"),  # before the first stats row
    (1001, _t(1), "b"),  # exactly at a feature row: inclusive
    (1001, _t(2, 12), "c"),  # 1.5 days after the row at day 1
    (1001, _t(3), "d"),  # the created-timestamp tie
    (1001, _t(5), "e"),  # exactly ttl after day 3: inclusive
    (1001, _t(5, second=1), "f"),  # one second past ttl: expired
    (1002, _t(4), "g"),  # exactly ttl after day 2
    (1002, _t(9), "h"),  # latest past row 7 days old: expired; the day-10 row is in the future
    (9999, _t(3), "i"),  # unknown entity
    (1003, _t(6), "j"),  # null feature value
    (1001, _t(3), "d"),  # a duplicate entity row stays, in place
]

# hand-computed: order_id -> (conv_rate, trips, rating)
EXPECTED = [
    ("a", None, None, 4.5),
    ("b", 0.1, 10, 4.5),
    ("c", 0.1, 10, 4.5),
    ("d", 0.35, 35, 4.5),
    ("e", 0.35, 35, 4.5),
    ("f", None, None, 4.5),
    ("g", 0.2, 20, None),
    ("h", None, None, 4.0),
    ("i", None, None, None),
    ("j", None, 50, None),
    ("d", 0.35, 35, 4.5),
]


@pytest.fixture()
def store(tmp_path: Path) -> FeatureStore:
    stats_path = tmp_path / "driver_stats.parquet"
    cols = list(zip(*STATS_ROWS, strict=True))
    pq.write_table(
        pa.table(
            {
                "driver_id": pa.array(cols[0], pa.int64()),
                "event_ts": pa.array(cols[1], pa.timestamp("us")),
                "created": pa.array(cols[2], pa.timestamp("us")),
                "conv_rate": pa.array(cols[3], pa.float64()),
                "trips": pa.array(cols[4], pa.int64()),
            }
        ),
        stats_path,
    )
    daily_path = tmp_path / "driver_daily.csv"
    daily_path.write_text(DAILY_CSV)

    driver = Entity(name="driver", join_keys=["driver_id"])
    stats = FeatureView(
        name="driver_stats",
        entities=[driver],
        schema=[Field(name="conv_rate", dtype=Float64), Field(name="trips", dtype=Int64)],
        source=FileSource(
            path=str(stats_path), timestamp_field="event_ts", created_timestamp_column="created"
        ),
        ttl=timedelta(days=2),
        online=True,
    )
    daily = FeatureView(
        name="driver_daily",
        entities=[driver],
        schema=[Field(name="driver_id", dtype=Int64), Field(name="rating", dtype=Float64)],
        source=FileSource(path=str(daily_path), timestamp_field="day_ts"),
    )
    service = FeatureService(name="driver_service", features=[stats, daily[["rating"]]])
    fs = FeatureStore()
    fs.apply([driver, stats, daily, service])
    return fs


def _entity_df(tz: str | None) -> pa.Table:
    cols = list(zip(*ENTITY_ROWS, strict=True))
    stamps = cols[1]
    if tz is not None:
        stamps = tuple(s.replace(tzinfo=UTC) for s in stamps)
    return pa.table(
        {
            "driver_id": pa.array(cols[0], pa.int64()),
            "event_timestamp": pa.array(stamps, pa.timestamp("us", tz=tz)),
            "order_id": pa.array(cols[2], pa.string()),
        }
    )


@pytest.mark.parametrize("tz", [None, "UTC"])
def test_hand_worked_example(store: FeatureStore, tz: str | None) -> None:
    entity_df = _entity_df(tz)
    job = store.get_historical_features(
        entity_df=entity_df,
        features=["driver_stats:conv_rate", "driver_stats:trips", "driver_daily:rating"],
    )
    out = job.to_arrow()
    assert out.column_names == [
        "driver_id",
        "event_timestamp",
        "order_id",
        "conv_rate",
        "trips",
        "rating",
    ]
    # the entity columns come back unchanged, in the input order
    assert out.select(["driver_id", "event_timestamp", "order_id"]).equals(entity_df)
    got = list(
        zip(
            out["order_id"].to_pylist(),
            out["conv_rate"].to_pylist(),
            out["trips"].to_pylist(),
            out["rating"].to_pylist(),
            strict=True,
        )
    )
    assert got == EXPECTED
    assert out.schema.field("conv_rate").type == pa.float64()
    assert out.schema.field("trips").type == pa.int64()
    assert out.schema.field("rating").type == pa.float64()


def test_aware_timestamps_in_another_zone_are_the_same_instants(store: FeatureStore) -> None:
    # 2024-01-05 01:00 in UTC+1 is 2024-01-05 00:00 UTC: exactly ttl after the day-3 row
    stamp = datetime(2024, 1, 5, 1, 0, tzinfo=__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    entity_df = pa.table(
        {
            "driver_id": pa.array([1001, 1001], pa.int64()),
            "event_timestamp": pa.array(
                [stamp, stamp + timedelta(seconds=1)], pa.timestamp("us", tz="Europe/Paris")
            ),
        }
    )
    out = store.get_historical_features(entity_df, ["driver_stats:trips"]).to_arrow()
    assert out["trips"].to_pylist() == [35, None]
    assert out["event_timestamp"].type == pa.timestamp("us", tz="Europe/Paris")


def test_feature_service_and_full_feature_names(store: FeatureStore) -> None:
    service = store.get_feature_service("driver_service")
    out = store.get_historical_features(
        _entity_df(None), service, full_feature_names=True
    ).to_arrow()
    assert out.column_names[3:] == [
        "driver_stats__conv_rate",
        "driver_stats__trips",
        "driver_daily__rating",
    ]
    assert out["driver_stats__trips"].to_pylist() == [e[2] for e in EXPECTED]
    assert out["driver_daily__rating"].to_pylist() == [e[3] for e in EXPECTED]


def test_empty_entity_frame(store: FeatureStore) -> None:
    out = store.get_historical_features(
        _entity_df(None).slice(0, 0), ["driver_stats:trips"]
    ).to_arrow()
    assert out.num_rows == 0
    assert out.column_names == ["driver_id", "event_timestamp", "order_id", "trips"]


def test_to_df_needs_pandas_only_when_called(store: FeatureStore) -> None:
    import importlib.util

    from modelport.core.errors import DependencyMissing

    job = store.get_historical_features(_entity_df(None), ["driver_stats:trips"])
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(DependencyMissing, match="pandas"):
            job.to_df()
    else:
        assert list(job.to_df()["trips"].astype("Int64")) == [e[2] for e in EXPECTED]


def test_to_sql_is_one_duckdb_query_a_range_join_with_a_ttl_and_asof_without(
    store: FeatureStore,
) -> None:
    job = store.get_historical_features(
        _entity_df(None), ["driver_stats:trips", "driver_daily:rating"]
    )
    sql = job.to_sql()
    assert sql.count("ASOF LEFT JOIN") == 1  # driver_daily: no ttl
    assert sql.count("arg_max(") == 1  # driver_stats: ttl 2 days
