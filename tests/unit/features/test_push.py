"""Push to a file-backed push source: online through the embedded store, offline as part files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import modelport.features as features
from modelport.core.errors import ConfigError, InvalidInput, NotFound
from modelport.features import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float64,
    Int64,
    PushMode,
    PushSource,
    String,
)
from modelport.features.online import SqliteOnlineStoreConfig, open_online_store
from modelport.features.push import as_table, push_rows, push_views

T0 = datetime(2026, 12, 1, tzinfo=UTC)
USER = Entity(name="user", join_keys=["user_id"])
REFS = ["stats:spend", "stats:orders"]


def _parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _store(
    tmp_path: Path,
    path: str | None = None,
    *,
    online: bool = True,
    created: str = "",
    with_online_store: bool = True,
    file_format: Any = None,
) -> FeatureStore:
    folder = tmp_path / "stats"
    folder.mkdir(exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 2], pa.int64()),
                "ts": pa.array([T0, T0], pa.timestamp("us")),
                "spend": [1.0, 2.0],
                "orders": pa.array([1, 2], pa.int64()),
            }
        ),
        folder / "part-0.parquet",
    )
    source = PushSource(
        name="stats_push",
        batch_source=FileSource(
            path=path or str(folder / "*.parquet"),
            timestamp_field="ts",
            created_timestamp_column=created,
            file_format=file_format,
        ),
    )
    view = FeatureView(
        name="stats",
        entities=[USER],
        schema=[Field(name="spend", dtype=Float64), Field(name="orders", dtype=Int64)],
        source=source,
        ttl=timedelta(days=2),
        online=online,
    )
    kwargs: dict[str, Any] = {}
    if with_online_store:
        kwargs["online_store"] = SqliteOnlineStoreConfig(path=tmp_path / "online.db")
    return FeatureStore([USER, view], **kwargs)


def _rows(user: list[int], hours: list[float], spend: list[float], orders: list[int]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(user, pa.int64()),
            "ts": pa.array([T0 + timedelta(hours=h) for h in hours], pa.timestamp("us", "UTC")),
            "spend": pa.array(spend, pa.float64()),
            "orders": pa.array(orders, pa.int64()),
        }
    )


def _online(store: FeatureStore, users: list[int], hours: float = 12) -> dict[str, list[Any]]:
    rows = [{"user_id": u} for u in users]
    return store.get_online_features(REFS, rows, now=T0 + timedelta(hours=hours)).to_dict()


def test_push_mode_is_exported_with_feasts_values() -> None:
    assert features.PushMode is PushMode
    assert [m.value for m in PushMode] == [0, 1, 2]
    assert {"PushMode", "PushSource", "PostgreSQLSource"} <= set(features.__all__)


def test_online_push_is_served_and_an_older_push_never_overwrites(tmp_path: Path) -> None:
    store = _store(tmp_path)
    summary = store.push("stats_push", _rows([1, 2], [2, 3], [10.0, 20.0], [7, 8]))
    assert (summary.rows, summary.applied, summary.offline) == (2, {"stats": 2}, None)
    assert _online(store, [1, 2, 3]) == {
        "user_id": [1, 2, 3],
        "spend": [10.0, 20.0, None],
        "orders": [7, 8, None],
    }
    older = store.push("stats_push", _rows([1], [1], [99.0], [99]), to=PushMode.ONLINE)
    assert older.applied == {"stats": 0}
    assert _online(store, [1])["spend"] == [10.0]
    # online only: the batch source is untouched
    assert _parts(tmp_path / "stats") == ["part-0.parquet"]
    store.close()


def test_newest_pushed_row_per_entity_wins(tmp_path: Path) -> None:
    store = _store(tmp_path)
    summary = store.push("stats_push", _rows([1, 1, 1], [3, 5, 4], [3.0, 5.0, 4.0], [3, 5, 4]))
    assert summary.applied == {"stats": 1}
    assert _online(store, [1])["spend"] == [5.0]
    store.close()


@pytest.mark.parametrize("kind", ["dict", "pandas"])
def test_push_accepts_a_dict_of_lists_or_a_dataframe(tmp_path: Path, kind: str) -> None:
    data: Any = {
        "user_id": [1],
        "ts": [T0 + timedelta(hours=1)],
        "spend": [4.5],
        "orders": [3],
    }
    if kind == "pandas":
        data = pytest.importorskip("pandas").DataFrame(data)
    store = _store(tmp_path)
    store.push("stats_push", data)
    assert _online(store, [1]) == {"user_id": [1], "spend": [4.5], "orders": [3]}
    store.close()


def test_offline_push_writes_a_part_file_the_join_reads(tmp_path: Path) -> None:
    store = _store(tmp_path, with_online_store=False)
    first = store.push("stats_push", _rows([1], [5], [50.0], [5]), to=PushMode.OFFLINE)
    second = store.push("stats_push", _rows([2], [6], [60.0], [6]), to=PushMode.OFFLINE)
    assert first.offline != second.offline
    assert first.applied == {}
    names = _parts(tmp_path / "stats")
    assert len(names) == 3
    assert all(n.endswith(".parquet") and not n.startswith(".") for n in names)
    assert str(tmp_path / "stats" / Path(str(first.offline)).name) == first.offline
    entity = pa.table(
        {
            "user_id": [1, 2, 1],
            "event_timestamp": [T0 + timedelta(hours=7), T0 + timedelta(hours=7), T0],
        }
    )
    out = store.get_historical_features(entity, REFS).to_arrow()
    assert out["spend"].to_pylist() == [50.0, 60.0, 1.0]
    assert out["orders"].to_pylist() == [5, 6, 1]
    # the part file keeps the existing files' types (naive timestamps there)
    assert pq.read_schema(str(first.offline)).field("ts").type == pa.timestamp("us")


def test_online_and_offline_push(tmp_path: Path) -> None:
    store = _store(tmp_path)
    summary = store.push("stats_push", _rows([1], [5], [50.0], [5]), to=PushMode.ONLINE_AND_OFFLINE)
    assert summary.applied == {"stats": 1}
    assert summary.offline is not None
    assert _online(store, [1])["spend"] == [50.0]
    entity = pa.table({"user_id": [1], "event_timestamp": [T0 + timedelta(hours=6)]})
    assert store.get_historical_features(entity, REFS).to_arrow()["spend"].to_pylist() == [50.0]
    store.close()


def test_zoned_times_keep_their_instant_in_naive_files(tmp_path: Path) -> None:
    store = _store(tmp_path, with_online_store=False)
    paris = ZoneInfo("Europe/Paris")
    rows = pa.table(
        {
            "user_id": pa.array([1], pa.int64()),
            "ts": pa.array(
                [datetime(2026, 12, 1, 6, tzinfo=paris)], pa.timestamp("us", "Europe/Paris")
            ),
            "spend": [5.0],
            "orders": pa.array([5], pa.int64()),
        }
    )
    summary = store.push("stats_push", rows, to=PushMode.OFFLINE)
    written = pq.read_table(str(summary.offline))
    assert written["ts"].to_pylist() == [datetime(2026, 12, 1, 5)]  # 06:00 in Paris is 05:00 UTC


def test_a_view_with_online_false_is_not_written_online(tmp_path: Path) -> None:
    store = _store(tmp_path, online=False)
    summary = store.push("stats_push", _rows([1], [5], [50.0], [5]))
    assert summary.applied == {}
    assert store.online_store().read("stats", [(1,)], ["spend"], T0, None).event_ts == [None]
    store.close()


def test_a_single_file_source_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    single = tmp_path / "stats" / "part-0.parquet"
    store = _store(tmp_path, path=str(single))
    before = single.read_bytes()
    with pytest.raises(ConfigError, match=r"it is one file, .* make the path a glob"):
        store.push("stats_push", _rows([1], [5], [50.0], [5]), to=PushMode.ONLINE_AND_OFFLINE)
    assert single.read_bytes() == before
    assert _parts(tmp_path / "stats") == ["part-0.parquet"]
    assert _online(store, [1])["spend"] == [None]  # offline is checked before anything is written
    store.close()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("stats/*/x.parquet", "a glob of one folder's files with a single '\\*'"),
        ("stats/a*b*.parquet", "a glob of one folder's files with a single '\\*'"),
        ("stats/*", "would match the temporary files"),
    ],
)
def test_globs_a_push_cannot_append_to(tmp_path: Path, path: str, message: str) -> None:
    store = _store(
        tmp_path, path=str(tmp_path / path), with_online_store=False, file_format="parquet"
    )
    with pytest.raises(ConfigError, match=message):
        store.push("stats_push", _rows([1], [5], [50.0], [5]), to=PushMode.OFFLINE)


def test_csv_batch_source_is_refused(tmp_path: Path) -> None:
    source = PushSource(
        name="p", batch_source=FileSource(path=str(tmp_path / "*.csv"), timestamp_field="ts")
    )
    view = FeatureView(
        name="stats", entities=[USER], schema=[Field(name="spend", dtype=Float64)], source=source
    )
    with pytest.raises(ConfigError, match="pushes write Parquet files"):
        push_rows(None, [view], _rows([1], [1], [1.0], [1]), PushMode.OFFLINE)


def test_a_failed_conversion_leaves_no_file(tmp_path: Path) -> None:
    store = _store(tmp_path, with_online_store=False)
    (tmp_path / "stats" / "part-0.parquet").unlink()
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1], pa.int64()),
                "ts": pa.array([T0], pa.timestamp("us")),
                "spend": [1.0],
                "orders": pa.array([1], pa.int64()),
                "note": pa.array([1], pa.int64()),
            }
        ),
        tmp_path / "stats" / "part-0.parquet",
    )
    rows = _rows([1], [5], [50.0], [5]).append_column("note", pa.array(["not a number"]))
    with pytest.raises(InvalidInput, match="do not convert to the types of"):
        store.push("stats_push", rows, to=PushMode.OFFLINE)
    assert _parts(tmp_path / "stats") == ["part-0.parquet"]


def test_offline_columns_must_match_the_existing_files(tmp_path: Path) -> None:
    store = _store(tmp_path, with_online_store=False)
    rows = _rows([1], [5], [50.0], [5]).append_column("extra", pa.array([1]))
    with pytest.raises(InvalidInput, match=r"missing none, not in the source \['extra'\]"):
        store.push("stats_push", rows, to=PushMode.OFFLINE)


def test_an_empty_folder_takes_the_pushed_columns(tmp_path: Path) -> None:
    store = _store(tmp_path, with_online_store=False)
    (tmp_path / "stats" / "part-0.parquet").unlink()
    summary = store.push("stats_push", _rows([1], [5], [50.0], [5]), to=PushMode.OFFLINE)
    assert pq.read_table(str(summary.offline)).column_names == ["user_id", "ts", "spend", "orders"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.drop_columns(["orders"]),
            r"field 'orders' of view 'stats' is not in the rows",
        ),
        (lambda t: t.drop_columns(["ts"]), r"column 'ts' of view 'stats' is not in the rows"),
        (
            lambda t: t.set_column(2, "spend", pa.array(["x"])),
            r"field 'spend' of view 'stats' is declared Float64 but the rows pushed "
            r"to 'stats_push' holds VARCHAR",
        ),
        (
            lambda t: t.set_column(0, "user_id", pa.array([1.5])),
            r"join key 'user_id' of the rows pushed to 'stats_push' is DOUBLE: expected integers",
        ),
        (
            lambda t: t.set_column(0, "user_id", pa.array([None], pa.int64())),
            r"column 'user_id' of the rows pushed to 'stats_push' has 1 null\(s\)",
        ),
        (
            lambda t: t.set_column(1, "ts", pa.array([None], pa.timestamp("us"))),
            r"column 'ts' of the rows pushed to 'stats_push' has 1 null\(s\)",
        ),
        (
            lambda t: t.append_column("__mp_x", pa.array([1])),
            r"pushed column '__mp_x': names starting '__mp_' are reserved",
        ),
    ],
)
def test_rows_that_do_not_fit_are_refused(tmp_path: Path, change: Any, message: str) -> None:
    store = _store(tmp_path)
    rows = change(_rows([1], [5], [50.0], [5]))
    with pytest.raises(InvalidInput, match=message):
        store.push("stats_push", rows, to=PushMode.ONLINE_AND_OFFLINE)
    assert _parts(tmp_path / "stats") == ["part-0.parquet"]
    assert _online(store, [1])["spend"] == [None]
    store.close()


def test_bad_calls(tmp_path: Path) -> None:
    store = _store(tmp_path, with_online_store=False)
    rows = _rows([1], [5], [50.0], [5])
    with pytest.raises(
        NotFound, match="no feature view is fed by push source 'nope'; push sources: stats_push"
    ):
        store.push("nope", rows)
    with pytest.raises(InvalidInput, match="expected PushMode.ONLINE"):
        store.push("stats_push", rows, to="online")  # type: ignore[arg-type]  # the point
    with pytest.raises(ConfigError, match="this FeatureStore has no online store"):
        store.push("stats_push", rows)
    with pytest.raises(
        InvalidInput, match="expected a pyarrow.Table, a pandas DataFrame or a dict"
    ):
        store.push("stats_push", [[1, 2]], to=PushMode.OFFLINE)
    with pytest.raises(InvalidInput, match="expected equally long lists"):
        as_table({"user_id": [1, 2], "ts": [T0]})
    with pytest.raises(ConfigError, match="there is no online store"):
        push_rows(
            None,
            push_views({"stats": store.get_feature_view("stats")}, "stats_push"),
            rows,
            PushMode.ONLINE,
        )


def test_push_rows_serves_a_caller_without_a_feature_store(tmp_path: Path) -> None:
    store = _store(tmp_path, with_online_store=False)
    view = store.get_feature_view("stats")
    other = FeatureView(
        name="labels",
        entities=[USER],
        schema=[Field(name="orders", dtype=Int64)],
        source=view.source,
    )
    views = push_views({"stats": view, "labels": other, "x": _plain_view(tmp_path)}, "stats_push")
    assert [v.name for v in views] == ["labels", "stats"]
    with open_online_store(SqliteOnlineStoreConfig(path=tmp_path / "o.db")) as online:
        summary = push_rows(online, views, _rows([1], [5], [50.0], [5]), PushMode.ONLINE)
        assert summary.applied == {"labels": 1, "stats": 1}
        read = online.read("labels", [(1,)], ["orders"], T0 + timedelta(hours=5), None)
        assert read.values == {"orders": [5]}


def test_views_of_different_push_sources_are_refused(tmp_path: Path) -> None:
    view = _store(tmp_path, with_online_store=False).get_feature_view("stats")
    elsewhere = FeatureView(
        name="other",
        entities=[USER],
        schema=[Field(name="spend", dtype=Float64)],
        source=PushSource(
            name="stats_push",
            batch_source=FileSource(
                path=str(tmp_path / "other" / "*.parquet"), timestamp_field="ts"
            ),
        ),
    )
    with pytest.raises(ConfigError, match="push one source's views"):
        push_rows(None, [view, elsewhere], _rows([1], [5], [50.0], [5]), PushMode.OFFLINE)


def _plain_view(tmp_path: Path) -> FeatureView:
    return FeatureView(
        name="x",
        entities=[USER],
        schema=[Field(name="name", dtype=String)],
        source=FileSource(path=str(tmp_path / "x.parquet"), timestamp_field="ts"),
    )
