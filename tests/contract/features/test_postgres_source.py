"""PostgreSQLSource against the real server: the same answers as Parquet, and clear refusals.

Each test gets its own schema in the session's throw-away database (tests/contract/conftest.py).
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from modelport.core.errors import ConfigError, InvalidInput, NotFound, ServiceUnavailable
from modelport.features import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float64,
    Int64,
    PostgreSQLSource,
    String,
    _postgres,
)
from modelport.features.online import SqliteOnlineStoreConfig
from tests.unit.features.test_pit_example import (
    DAILY_CSV,
    ENTITY_ROWS,
    EXPECTED,
    STATS_ROWS,
    _entity_df,
)

pytestmark = pytest.mark.postgres

FEATURES = ["driver_stats:conv_rate", "driver_stats:trips", "driver_daily:rating"]


@dataclass
class Pg:
    """A schema of its own in the test database."""

    url: str
    schema: str
    conninfo: str

    def execute(self, statement: str, rows: list[tuple[Any, ...]] | None = None) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {self.schema}")
            if rows is None:
                conn.execute(statement)
            else:
                with conn.cursor() as cur:
                    cur.executemany(statement, rows)


@pytest.fixture
def pg(pg_database: str) -> Iterator[Pg]:
    schema = f"src_{secrets.token_hex(6)}"
    conninfo = f"host=127.0.0.1 port=5432 user=postgres dbname={pg_database}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield Pg(f"postgresql://postgres@127.0.0.1:5432/{pg_database}", schema, conninfo)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _load_example(pg: Pg, ts_type: str) -> None:
    pg.execute(
        f"CREATE TABLE driver_stats (driver_id bigint, event_ts {ts_type}, "
        f"created {ts_type}, conv_rate double precision, trips bigint, note uuid)"
    )
    if ts_type == "timestamptz":
        stats = [
            (d, e.replace(tzinfo=UTC), c.replace(tzinfo=UTC), r, t) for d, e, c, r, t in STATS_ROWS
        ]
    else:
        stats = list(STATS_ROWS)
    pg.execute(
        "INSERT INTO driver_stats (driver_id, event_ts, created, conv_rate, trips) "
        "VALUES (%s, %s, %s, %s, %s)",
        stats,
    )
    pg.execute(f"CREATE TABLE driver_daily (driver_id bigint, day_ts {ts_type}, rating numeric)")
    daily = [line.split(",") for line in DAILY_CSV.splitlines()[1:]]
    pg.execute(
        "INSERT INTO driver_daily VALUES (%s, %s, %s)",
        [(int(d), f"{ts}+00" if ts_type == "timestamptz" else ts, r) for d, ts, r in daily],
    )


def _store(
    stats_source: Any, daily_source: Any, **kwargs: Any
) -> tuple[FeatureStore, FeatureView, FeatureView]:
    driver = Entity(name="driver", join_keys=["driver_id"])
    stats = FeatureView(
        name="driver_stats",
        entities=[driver],
        schema=[Field(name="conv_rate", dtype=Float64), Field(name="trips", dtype=Int64)],
        source=stats_source,
        ttl=timedelta(days=2),
    )
    daily = FeatureView(
        name="driver_daily",
        entities=[driver],
        schema=[Field(name="driver_id", dtype=Int64), Field(name="rating", dtype=Float64)],
        source=daily_source,
    )
    service = FeatureService(name="driver_service", features=[stats, daily[["rating"]]])
    return FeatureStore([driver, stats, daily, service], **kwargs), stats, daily


def _file_store(tmp_path: Path, **kwargs: Any) -> FeatureStore:
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
        tmp_path / "stats.parquet",
    )
    (tmp_path / "daily.csv").write_text(DAILY_CSV)
    store, _, _ = _store(
        FileSource(
            path=str(tmp_path / "stats.parquet"),
            timestamp_field="event_ts",
            created_timestamp_column="created",
        ),
        FileSource(path=str(tmp_path / "daily.csv"), timestamp_field="day_ts"),
        **kwargs,
    )
    return store


def _pg_sources(pg: Pg, kind: str) -> tuple[PostgreSQLSource, PostgreSQLSource]:
    if kind == "table":
        stats = PostgreSQLSource(
            name="stats",
            table=f"{pg.schema}.driver_stats",
            timestamp_field="event_ts",
            created_timestamp_column="created",
            url=pg.url,
        )
    else:
        stats = PostgreSQLSource(
            name="stats",
            query=f"SELECT * FROM {pg.schema}.driver_stats WHERE driver_id > 0 AND 'a%' LIKE 'a%'",
            timestamp_field="event_ts",
            created_timestamp_column="created",
            url=pg.url,
        )
    daily = PostgreSQLSource(
        name="daily", table=f"{pg.schema}.driver_daily", timestamp_field="day_ts", url=pg.url
    )
    return stats, daily


@pytest.mark.parametrize("ts_type", ["timestamp", "timestamptz"])
@pytest.mark.parametrize("kind", ["table", "query"])
@pytest.mark.parametrize("tz", [None, "UTC"])
def test_hand_worked_example_equals_parquet(
    pg: Pg, tmp_path: Path, ts_type: str, kind: str, tz: str | None
) -> None:
    _load_example(pg, ts_type)
    store, _, _ = _store(*_pg_sources(pg, kind))
    entity_df = _entity_df(tz)
    out = store.get_historical_features(entity_df, FEATURES).to_arrow()
    from_files = _file_store(tmp_path).get_historical_features(entity_df, FEATURES).to_arrow()
    assert out.equals(from_files)
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
    assert out.select(["driver_id", "event_timestamp", "order_id"]).equals(entity_df)


def test_feature_service_and_empty_entity_frame(pg: Pg, tmp_path: Path) -> None:
    _load_example(pg, "timestamp")
    store, _, _ = _store(*_pg_sources(pg, "table"))
    service = store.get_feature_service("driver_service")
    out = store.get_historical_features(_entity_df(None), service, True).to_arrow()
    assert out["driver_stats__trips"].to_pylist() == [e[2] for e in EXPECTED]
    empty = store.get_historical_features(_entity_df(None).slice(0, 0), FEATURES).to_arrow()
    assert empty.num_rows == 0
    assert empty.column_names == [
        "driver_id",
        "event_timestamp",
        "order_id",
        "conv_rate",
        "trips",
        "rating",
    ]
    assert len(ENTITY_ROWS) == out.num_rows


def test_stream_selects_only_the_needed_columns_and_the_window(pg: Pg) -> None:
    _load_example(pg, "timestamptz")
    source, _ = _pg_sources(pg, "table")
    described = _postgres.describe(source)
    assert described["note"].duckdb_type == "UUID"  # never selected, so never a problem
    columns = _postgres.columns_of(described, ["driver_id", "event_ts", "trips"])
    with _postgres.stream(
        source,
        columns,
        lower=datetime(2024, 1, 2),
        upper=datetime(2024, 1, 5),
        batch_rows=2,
    ) as stream:
        batches = list(stream.reader)
    assert [b.num_rows for b in batches] == [2, 2]  # 4 rows, fetched 2 at a time
    table = pa.Table.from_batches(batches)
    assert table.column_names == ["driver_id", "event_ts", "trips"]
    assert table.schema.field("event_ts").type == pa.timestamp("us", tz="UTC")
    assert sorted(table["trips"].to_pylist()) == [20, 30, 33, 35]


@pytest.mark.parametrize("ts_type", ["timestamp", "timestamptz"])
def test_materialize_equals_parquet(pg: Pg, tmp_path: Path, ts_type: str) -> None:
    _load_example(pg, ts_type)
    from_pg, _, _ = _store(
        *_pg_sources(pg, "table"),
        online_store=SqliteOnlineStoreConfig(path=tmp_path / "pg.db"),
    )
    from_files = _file_store(
        tmp_path, online_store=SqliteOnlineStoreConfig(path=tmp_path / "files.db")
    )
    now = datetime(2024, 1, 5, tzinfo=UTC)
    rows = [{"driver_id": d} for d in (1001, 1002, 1003, 9999)]
    for start, end in [
        (datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 4, tzinfo=UTC)),
        (datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC)),
    ]:
        a = from_pg.materialize(start, end, progress=False)
        b = from_files.materialize(start, end, progress=False)
        assert a.rows == b.rows
        assert a.applied == b.applied
        got = from_pg.get_online_features(FEATURES, rows, now=now)
        want = from_files.get_online_features(FEATURES, rows, now=now)
        assert got.to_dict(include_statuses=True) == want.to_dict(include_statuses=True)
    # 1001: the day-3 row, exactly ttl old; 1002: the day-2 row is too old; 1003: its row
    # lies after now, served as present; 9999: unknown
    assert got.to_dict()["trips"] == [35, None, 50, None]
    assert a.rows == {"driver_daily": 2, "driver_stats": 3}
    from_pg.close()
    from_files.close()


def test_unknown_table_is_not_found(pg: Pg) -> None:
    store, _, _ = _store(
        PostgreSQLSource(table=f"{pg.schema}.nope", timestamp_field="event_ts", url=pg.url),
        PostgreSQLSource(table=f"{pg.schema}.nope", timestamp_field="day_ts", url=pg.url),
    )
    with pytest.raises(NotFound, match=r"PostgreSQL table '.*\.nope' does not exist"):
        store.get_historical_features(_entity_df(None), FEATURES).to_arrow()


@pytest.mark.parametrize(
    ("create", "error", "message"),
    [
        (
            "driver_id bigint, event_ts timestamp, created timestamp, conv_rate float8",
            ConfigError,
            r"field 'trips' of view 'driver_stats' is not in the source PostgreSQL table",
        ),
        (
            "driver_id bigint, event_ts timestamp, created timestamp, conv_rate text, trips int8",
            ConfigError,
            r"field 'conv_rate' of view 'driver_stats' is declared Float64 but the source "
            r"PostgreSQL table '.*' holds VARCHAR",
        ),
        (
            "driver_id bigint, event_ts text, created timestamp, conv_rate float8, trips int8",
            ConfigError,
            r"column 'event_ts' of the source .* is VARCHAR: expected a timestamp or date",
        ),
        (
            "driver_id text, event_ts timestamp, created timestamp, conv_rate float8, trips int8",
            InvalidInput,
            r"entity frame column 'driver_id' is BIGINT but view 'driver_stats' has VARCHAR keys",
        ),
    ],
)
def test_a_table_that_does_not_fit_is_refused(
    pg: Pg, create: str, error: type[Exception], message: str
) -> None:
    pg.execute(f"CREATE TABLE driver_stats ({create})")
    pg.execute("CREATE TABLE driver_daily (driver_id bigint, day_ts timestamp, rating float8)")
    store, _, _ = _store(*_pg_sources(pg, "table"))
    with pytest.raises(error, match=message):
        store.get_historical_features(_entity_df(None), FEATURES).to_arrow()


def test_a_query_that_does_not_run_is_a_config_error(pg: Pg) -> None:
    source = PostgreSQLSource(
        name="broken", query="SELEC 1", timestamp_field="event_ts", url=pg.url
    )
    store, _, _ = _store(source, source)
    with pytest.raises(ConfigError, match=r"cannot read PostgreSQL query 'broken': syntax error"):
        store.get_historical_features(_entity_df(None), FEATURES).to_arrow()


def test_refused_connection_is_service_unavailable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = PostgreSQLSource(
        table="t", timestamp_field="ts", url=f"postgresql://postgres:secret@127.0.0.1:{port}/x"
    )
    store, _, _ = _store(source, source)
    with pytest.raises(ServiceUnavailable, match="cannot connect to PostgreSQL") as info:
        store.get_historical_features(_entity_df(None), FEATURES).to_arrow()
    assert "secret" not in str(info.value)
    assert "postgres:***@127.0.0.1" in str(info.value)


def test_a_server_that_never_answers_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # accept, then say nothing
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    source = PostgreSQLSource(
        table="t",
        timestamp_field="ts",
        url=f"postgresql://postgres@127.0.0.1:{port}/x?connect_timeout=2",
    )
    store, _, _ = _store(source, source)
    began = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailable, match="cannot connect to PostgreSQL"):
            store.get_historical_features(_entity_df(None), FEATURES).to_arrow()
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
    assert time.monotonic() - began < 10


def test_strings_and_numeric_types_map_to_the_feature_types(pg: Pg) -> None:
    pg.execute(
        "CREATE TABLE users (user_id varchar(8), ts timestamptz, city text, score numeric(6,2))"
    )
    pg.execute(
        "INSERT INTO users VALUES (%s, %s, %s, %s)",
        [("a", datetime(2024, 1, 1, tzinfo=UTC), "Paris", "1.25")],
    )
    user = Entity(name="user", join_keys=["user_id"])
    view = FeatureView(
        name="users",
        entities=[user],
        schema=[Field(name="city", dtype=String), Field(name="score", dtype=Float64)],
        source=PostgreSQLSource(table=f"{pg.schema}.users", timestamp_field="ts", url=pg.url),
    )
    store = FeatureStore([user, view])
    entity = pa.table({"user_id": ["a", "b"], "event_timestamp": [datetime(2024, 1, 2)] * 2})
    out = store.get_historical_features(entity, ["users:city", "users:score"]).to_arrow()
    assert out["city"].to_pylist() == ["Paris", None]
    assert out["score"].to_pylist() == [1.25, None]


@pytest.mark.parametrize("call", ["historical", "materialize"])
def test_an_error_while_streaming_keeps_its_kind(pg: Pg, tmp_path: Path, call: str) -> None:
    _load_example(pg, "timestamp")
    # LIMIT 0 (the source check) runs; the rows do not: trips - 50 is zero for driver 1003
    source = PostgreSQLSource(
        name="failing",
        query=f"SELECT driver_id, event_ts, created, conv_rate, trips / (trips - 50) AS trips "
        f"FROM {pg.schema}.driver_stats",
        timestamp_field="event_ts",
        created_timestamp_column="created",
        url=pg.url,
    )
    _, daily = _pg_sources(pg, "table")
    store, _, _ = _store(
        source, daily, online_store=SqliteOnlineStoreConfig(path=tmp_path / "online.db")
    )
    with pytest.raises(
        ConfigError, match="cannot read PostgreSQL query 'failing': division by zero"
    ):
        if call == "historical":
            store.get_historical_features(_entity_df(None), FEATURES).to_arrow()
        else:
            store.materialize(datetime(2023, 1, 1), datetime(2025, 1, 1), progress=False)
    store.close()
