"""Materialisation into the embedded online store, and online reads through FeatureStore."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.core.errors import ConfigError, InvalidInput, NotFound
from modelport.features import (
    Bytes,
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float64,
    Int64,
    String,
    UnixTimestamp,
)
from modelport.features.online import FeatureStatus, SqliteOnlineStoreConfig

BASE = datetime(2024, 3, 1, tzinfo=UTC)
USER = Entity(name="user", join_keys=["user_id"])


def h(hours: float) -> datetime:
    return BASE + timedelta(hours=hours)


# (user_id, event hour, created hour, spend, orders, label)
ROWS: list[tuple[int | None, float, float, float | None, int | None, str | None]] = [
    (1, 1, 1, 1.0, 10, "a"),
    (1, 3, 1, 3.0, 30, "b"),
    (1, 3, 2, 3.5, 35, "c"),  # same event time, later created: wins
    (1, 5, 5, 5.0, 50, "d"),  # after the window's end
    (2, 0, 0, 0.5, 5, "e"),  # before the window's start
    (2, 2, 2, 2.0, None, None),
    (3, 0, 0, 9.0, 90, "f"),  # only before the window
    (None, 2, 2, 7.0, 70, "g"),  # no key: never materialised
]


def write_rows(path: Path, rows: list[tuple[Any, ...]]) -> None:
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([r[0] for r in rows], pa.int64()),
                "ts": pa.array([h(r[1]) for r in rows], pa.timestamp("us", tz="UTC")),
                "created": pa.array([h(r[2]) for r in rows], pa.timestamp("us", tz="UTC")),
                "spend": pa.array([r[3] for r in rows], pa.float64()),
                "orders": pa.array([r[4] for r in rows], pa.int64()),
                "label": pa.array([r[5] for r in rows], pa.string()),
            }
        ),
        path,
    )


def stats_view(path: Path, ttl: timedelta = timedelta(0), online: bool = True) -> FeatureView:
    return FeatureView(
        name="stats",
        entities=[USER],
        schema=[
            Field(name="spend", dtype=Float64),
            Field(name="orders", dtype=Int64),
            Field(name="label", dtype=String),
        ],
        source=FileSource(path=str(path), timestamp_field="ts", created_timestamp_column="created"),
        ttl=ttl,
        online=online,
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "stats.parquet"
    write_rows(path, ROWS)
    return path


@pytest.fixture
def store(tmp_path: Path, data: Path) -> Iterator[FeatureStore]:
    fs = FeatureStore(
        [USER, stats_view(data)],
        online_store=SqliteOnlineStoreConfig(path=tmp_path / "online.db"),
    )
    yield fs
    fs.close()


REFS = ["stats:spend", "stats:orders", "stats:label"]


LATE = h(100)


def online(store: FeatureStore, users: list[int], now: datetime = LATE) -> dict[str, Any]:
    rows = [{"user_id": u} for u in users]
    return store.get_online_features(REFS, rows, now=now).to_dict()


def test_materialize_writes_the_newest_row_per_entity_within_the_window(
    store: FeatureStore,
) -> None:
    summary = store.materialize(h(1), h(4), progress=False)
    assert summary.rows == {"stats": 2} and summary.applied == {"stats": 2}
    assert online(store, [1, 2, 3]) == {
        "user_id": [1, 2, 3],
        "spend": [3.5, 2.0, None],
        "orders": [35, None, None],
        "label": ["c", None, None],
    }
    response = store.get_online_features(REFS, [{"user_id": 2}, {"user_id": 3}], now=h(100))
    assert response.statuses["spend"] == [FeatureStatus.PRESENT, FeatureStatus.NOT_FOUND]
    assert response.statuses["orders"] == [FeatureStatus.NULL_VALUE, FeatureStatus.NOT_FOUND]
    assert response.to_dict(include_statuses=True)["orders__status"] == ["NULL_VALUE", "NOT_FOUND"]


def test_window_bounds_are_inclusive_and_small_chunks_write_everything(
    store: FeatureStore,
) -> None:
    summary = store.materialize(h(0), h(5), chunk_rows=1, progress=False)
    assert summary.rows == {"stats": 3}
    assert online(store, [1, 2, 3])["spend"] == [5.0, 2.0, 9.0]


def test_rerunning_is_idempotent_and_an_older_window_never_overwrites(
    store: FeatureStore,
) -> None:
    store.materialize(h(4), h(6), progress=False)
    assert online(store, [1])["spend"] == [5.0]
    again = store.materialize(h(4), h(6), progress=False)
    assert again.rows == {"stats": 1} and again.applied == {"stats": 0}
    older = store.materialize(h(0), h(4), progress=False)
    assert older.rows == {"stats": 3} and older.applied == {"stats": 2}  # users 2 and 3
    assert online(store, [1, 2, 3])["spend"] == [5.0, 2.0, 9.0]


def test_incremental_starts_at_the_last_end_or_the_beginning(store: FeatureStore) -> None:
    first = store.materialize_incremental(h(2), progress=False)
    assert first.start == {"stats": None}  # ttl 0: from the beginning of the data
    assert first.rows == {"stats": 3}
    assert online(store, [1, 2, 3])["spend"] == [1.0, 2.0, 9.0]
    second = store.materialize_incremental(h(6), progress=False)
    assert second.start == {"stats": h(2)}
    assert second.rows == {"stats": 2}  # users 1 (hour 5) and 2 (hour 2 again)
    assert second.applied == {"stats": 1}
    assert online(store, [1, 2, 3])["spend"] == [5.0, 2.0, 9.0]
    third = store.materialize_incremental(h(6), progress=False)
    assert third.start == {"stats": h(6)} and third.rows == {"stats": 0}  # nothing new
    with pytest.raises(InvalidInput, match="materialised up to"):
        store.materialize_incremental(h(3), progress=False)


def test_incremental_without_history_starts_one_ttl_back(tmp_path: Path, data: Path) -> None:
    view = stats_view(data, ttl=timedelta(hours=2))
    config = SqliteOnlineStoreConfig(path=tmp_path / "o.db")
    with pytest.raises(ConfigError):  # not an online store: the error names the kinds
        FeatureStore([USER, view], online_store="online.db")  # type: ignore[arg-type]  # tested
    fs = FeatureStore([USER, view], online_store=config)
    summary = fs.materialize_incremental(h(4), progress=False)
    assert summary.start == {"stats": h(2)} and summary.rows == {"stats": 2}
    # ttl honoured: user 2's row (hour 2) is 2.5 hours old at 4.5
    got = fs.get_online_features(["stats:spend"], [{"user_id": 1}, {"user_id": 2}], now=h(4.5))
    assert got.to_dict() == {"user_id": [1, 2], "spend": [3.5, None]}
    assert got.statuses["spend"][1] is FeatureStatus.OUTSIDE_MAX_AGE
    fs.close()


def test_views_not_online_are_skipped_or_refused(tmp_path: Path, data: Path) -> None:
    fs = FeatureStore(
        [USER, stats_view(data, online=False)],
        online_store=SqliteOnlineStoreConfig(path=tmp_path / "o.db"),
    )
    assert fs.materialize(h(0), h(9), progress=False).rows == {}
    with pytest.raises(InvalidInput, match="online=False"):
        fs.materialize(h(0), h(9), views=["stats"], progress=False)
    with pytest.raises(NotFound, match="known: stats"):
        fs.materialize(h(0), h(9), views=["nope"], progress=False)
    fs.close()


def test_a_progress_display_can_be_forced(store: FeatureStore) -> None:
    assert store.materialize(h(0), h(9), progress=True).rows == {"stats": 3}


def test_without_an_online_store_the_error_says_how_to_configure_one(data: Path) -> None:
    fs = FeatureStore([USER, stats_view(data)])
    with pytest.raises(ConfigError, match="SqliteOnlineStoreConfig"):
        fs.materialize(h(0), h(1))
    with pytest.raises(ConfigError, match="online_store="):
        fs.get_online_features(REFS, [{"user_id": 1}])


def test_bad_windows_and_chunks_are_invalid_input(store: FeatureStore) -> None:
    with pytest.raises(InvalidInput, match="after end_date"):
        store.materialize(h(2), h(1))
    with pytest.raises(InvalidInput, match="must be a datetime"):
        store.materialize("2024-01-01", h(1))  # type: ignore[arg-type]  # tested
    with pytest.raises(InvalidInput, match="chunk_rows"):
        store.materialize(h(0), h(1), chunk_rows=0)


def test_bad_online_reads(store: FeatureStore) -> None:
    store.materialize(h(0), h(9), progress=False)
    with pytest.raises(NotFound, match="known: stats"):
        store.get_online_features(["nope:spend"], [{"user_id": 1}])
    with pytest.raises(NotFound, match="its features: spend, orders, label"):
        store.get_online_features(["stats:nope"], [{"user_id": 1}])
    with pytest.raises(InvalidInput, match=r"entity_rows\[1\] has no join key 'user_id'"):
        store.get_online_features(REFS, [{"user_id": 1}, {"user": 2}])
    with pytest.raises(InvalidInput, match="must be str or int"):
        store.get_online_features(REFS, [{"user_id": 1.5}])
    with pytest.raises(InvalidInput, match="view:feature"):
        store.get_online_features(["spend"], [{"user_id": 1}])
    with pytest.raises(InvalidInput, match="already have a column 'spend'"):
        store.get_online_features(REFS, [{"user_id": 1, "spend": 2}])


def test_full_names_services_dict_of_lists_and_duplicates(store: FeatureStore, data: Path) -> None:
    store.materialize(h(0), h(9), progress=False)
    view = store.get_feature_view("stats")
    service = FeatureService(name="svc", features=[view[["orders"]]])
    got = store.get_online_features(
        service, {"user_id": [2, 1, 2]}, full_feature_names=True, now=h(9)
    )
    assert got.to_dict() == {"user_id": [2, 1, 2], "stats__orders": [None, 50, None]}


def test_values_come_back_as_the_declared_type(tmp_path: Path) -> None:
    path = tmp_path / "kinds.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1], pa.int32()),
                "ts": pa.array([BASE], pa.timestamp("us", tz="UTC")),
                "seen": pa.array([h(-3)], pa.timestamp("us", tz="UTC")),
                "blob": pa.array([b"\x00\xff"], pa.binary()),
                "n": pa.array([7], pa.int32()),
            }
        ),
        path,
    )
    view = FeatureView(
        name="kinds",
        entities=[USER],
        schema=[
            Field(name="seen", dtype=UnixTimestamp),
            Field(name="blob", dtype=Bytes),
            Field(name="n", dtype=Float64),
        ],
        source=FileSource(path=str(path), timestamp_field="ts"),
    )
    fs = FeatureStore([USER, view], online_store=SqliteOnlineStoreConfig(path=tmp_path / "o.db"))
    fs.materialize(h(-1), h(1), progress=False)
    got = fs.get_online_features(
        ["kinds:seen", "kinds:blob", "kinds:n"], [{"user_id": 1}], now=h(1)
    ).to_dict()
    assert got == {"user_id": [1], "seen": [h(-3)], "blob": [b"\x00\xff"], "n": [7.0]}
    assert type(got["n"][0]) is float
    # a value stored as a float for an Int64 feature comes back as an int
    fs.online_store().write("stats_i", [(1,)], [BASE], [None], {"x": [3.0]})
    int_view = FeatureView(
        name="stats_i",
        entities=[USER],
        schema=[Field(name="x", dtype=Int64)],
        source=FileSource(path=str(path), timestamp_field="ts"),
    )
    fs.apply([int_view])
    x = fs.get_online_features(["stats_i:x"], [{"user_id": 1}], now=h(1)).to_dict()["x"]
    assert x == [3] and type(x[0]) is int
    fs.close()


def test_an_open_online_store_is_used_and_left_open(tmp_path: Path, data: Path) -> None:
    from modelport.features.online import open_online_store

    with open_online_store(SqliteOnlineStoreConfig(path=tmp_path / "o.db")) as opened:
        fs = FeatureStore([USER, stats_view(data)], online_store=opened, clock=lambda: h(100))
        fs.materialize(h(0), h(9), progress=False)
        fs.close()
        assert online(fs, [1])["spend"] == [5.0]
        # now defaults to the clock's
        assert fs.get_online_features(["stats:spend"], [{"user_id": 1}]).to_dict()["spend"] == [5.0]


def test_a_missing_or_mismatched_source_is_refused_before_writing(tmp_path: Path) -> None:
    config = SqliteOnlineStoreConfig(path=tmp_path / "o.db")
    fs = FeatureStore([USER, stats_view(tmp_path / "absent.parquet")], online_store=config)
    with pytest.raises(NotFound, match="does not exist"):
        fs.materialize(h(0), h(9), progress=False)
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"user_id": [1], "ts": [BASE], "spend": ["x"]}), path)
    fs.apply([stats_view(path)])
    with pytest.raises(ConfigError, match="not in the source"):
        fs.materialize(h(0), h(9), progress=False)
    fs.close()
