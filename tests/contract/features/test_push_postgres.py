"""Push to a PostgreSQL-backed push source, online on every backend, offline into the table."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from modelport.core.errors import ConfigError, InvalidInput
from modelport.features import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    Float64,
    Int64,
    PostgreSQLSource,
    PushMode,
    PushSource,
)
from modelport.features.online import (
    OnlineStore,
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
    open_online_store,
)

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 12, 1, tzinfo=UTC)
USER = Entity(name="user", join_keys=["user_id"])
REFS = ["stats:spend", "stats:orders"]


@pytest.fixture
def table(pg_database: str) -> Iterator[tuple[str, str]]:
    """A ``stats`` table holding one row, in a schema of its own: (url, schema)."""
    schema = f"push_{secrets.token_hex(6)}"
    conninfo = f"host=127.0.0.1 port=5432 user=postgres dbname={pg_database}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.stats (user_id bigint NOT NULL, ts timestamptz NOT NULL, "
                "spend double precision, orders integer CHECK (orders >= 0))"
            ).format(sql.Identifier(schema))
        )
        conn.execute(
            sql.SQL("INSERT INTO {}.stats VALUES (1, %s, 1.0, 1)").format(sql.Identifier(schema)),
            [T0],
        )
    yield f"postgresql://postgres@127.0.0.1:5432/{pg_database}", schema
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _view(url: str, schema: str, **source: Any) -> FeatureView:
    where = source or {"table": f"{schema}.stats"}
    return FeatureView(
        name="stats",
        entities=[USER],
        schema=[Field(name="spend", dtype=Float64), Field(name="orders", dtype=Int64)],
        source=PushSource(
            name="stats_push",
            batch_source=PostgreSQLSource(name="stats", timestamp_field="ts", url=url, **where),
        ),
        ttl=timedelta(days=2),
    )


def _rows(user: list[int], hours: list[float], spend: list[float], orders: list[int]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(user, pa.int64()),
            "ts": pa.array([T0 + timedelta(hours=h) for h in hours], pa.timestamp("us", "UTC")),
            "spend": pa.array(spend, pa.float64()),
            "orders": pa.array(orders, pa.int64()),
        }
    )


def _table_rows(url: str, schema: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            sql.SQL("SELECT user_id, ts, spend, orders FROM {}.stats ORDER BY ts, user_id").format(
                sql.Identifier(schema)
            )
        ).fetchall()


def test_online_and_offline_push(
    table: tuple[str, str], online_config: SqliteOnlineStoreConfig | RedisOnlineStoreConfig
) -> None:
    url, schema = table
    with open_online_store(online_config) as online:
        store = FeatureStore([USER, _view(url, schema)], online_store=online)
        rows = _rows([1, 2], [5, 6], [50.0, 60.0], [5, 6])
        summary = store.push("stats_push", rows, to=PushMode.ONLINE_AND_OFFLINE)
        assert summary.applied == {"stats": 2}
        assert summary.offline == f"PostgreSQL table '{schema}.stats'"
        assert _table_rows(url, schema) == [
            (1, T0, 1.0, 1),
            (1, T0 + timedelta(hours=5), 50.0, 5),
            (2, T0 + timedelta(hours=6), 60.0, 6),
        ]
        # the join reads the pushed rows back from the table
        entity = pa.table(
            {"user_id": [1, 2, 1], "event_timestamp": [T0 + timedelta(hours=7)] * 2 + [T0]}
        )
        out = store.get_historical_features(entity, REFS).to_arrow()
        assert out["spend"].to_pylist() == [50.0, 60.0, 1.0]
        now = T0 + timedelta(hours=7)
        served = store.get_online_features(REFS, [{"user_id": 1}, {"user_id": 2}], now=now)
        assert served.to_dict() == {"user_id": [1, 2], "spend": [50.0, 60.0], "orders": [5, 6]}
        # an older push is kept offline but never overwrites the newer online row
        older = store.push(
            "stats_push", _rows([1], [2], [20.0], [2]), to=PushMode.ONLINE_AND_OFFLINE
        )
        assert older.applied == {"stats": 0}
        assert store.get_online_features(REFS, [{"user_id": 1}], now=now).to_dict()["spend"] == [
            50.0
        ]
        assert len(_table_rows(url, schema)) == 4


def test_offline_push_then_materialize(table: tuple[str, str], online: OnlineStore) -> None:
    url, schema = table
    store = FeatureStore([USER, _view(url, schema)], online_store=online)
    zoned = pa.table(
        {
            "user_id": pa.array([3], pa.int64()),
            "ts": pa.array(
                [datetime(2026, 12, 1, 9, tzinfo=ZoneInfo("Asia/Tokyo"))],
                pa.timestamp("us", "Asia/Tokyo"),
            ),
            "spend": [3.0],
            "orders": pa.array([3], pa.int64()),
        }
    )
    store.push("stats_push", zoned, to=PushMode.OFFLINE)
    assert _table_rows(url, schema)[1] == (3, T0, 3.0, 3)  # 09:00 in Tokyo is midnight UTC
    summary = store.materialize(T0 - timedelta(hours=1), T0 + timedelta(hours=1), progress=False)
    assert summary.rows == {"stats": 2}
    served = store.get_online_features(REFS, [{"user_id": 3}], now=T0).to_dict()
    assert served == {"user_id": [3], "spend": [3.0], "orders": [3]}


def test_rows_the_table_refuses_are_not_written_at_all(
    table: tuple[str, str], online: OnlineStore
) -> None:
    url, schema = table
    store = FeatureStore([USER, _view(url, schema)], online_store=online)
    rows = _rows([4, 5], [1, 2], [1.0, 2.0], [1, -1])  # the second breaks the CHECK
    with pytest.raises(InvalidInput, match=r"PostgreSQL refused the rows for .*stats_orders_check"):
        store.push("stats_push", rows, to=PushMode.ONLINE_AND_OFFLINE)
    assert len(_table_rows(url, schema)) == 1  # one transaction: neither row
    assert online.read("stats", [(4,)], ["spend"], T0, None).event_ts == [None]


def test_columns_the_table_lacks_are_refused(table: tuple[str, str]) -> None:
    url, schema = table
    store = FeatureStore([USER, _view(url, schema)])
    rows = _rows([4], [1], [1.0], [1]).append_column("extra", pa.array([1]))
    with pytest.raises(
        InvalidInput, match=r"pushed columns \['extra'\] are not in PostgreSQL table"
    ):
        store.push("stats_push", rows, to=PushMode.OFFLINE)


def test_a_query_source_cannot_be_appended_to(table: tuple[str, str]) -> None:
    url, schema = table
    view = _view(url, schema, query=f"SELECT * FROM {schema}.stats")
    store = FeatureStore([USER, view])
    with pytest.raises(ConfigError, match="give the PostgreSQLSource table= instead of query="):
        store.push("stats_push", _rows([4], [1], [1.0], [1]), to=PushMode.OFFLINE)


@pytest.fixture
def online(tmp_path: Path) -> Iterator[OnlineStore]:
    """An open, empty embedded online store."""
    with open_online_store(SqliteOnlineStoreConfig(path=tmp_path / "online.db")) as opened:
        yield opened
