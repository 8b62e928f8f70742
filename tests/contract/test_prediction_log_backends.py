"""One suite for both prediction log backends: Parquet segments and the PostgreSQL table.

Every backend takes a flush's batches, reads them back as the same ``pyarrow.Table`` (every
column, oldest first, filtered by deployment and time, the newest ``limit``), prunes by the same
day rule, and survives an outage of its storage: records are kept and written once it is back,
or dropped and counted beyond ``max_queue``, and ``log()`` never raises.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from modelport.core.errors import ConfigError
from modelport.core.settings import PredictionLogSettings, Settings
from modelport.monitoring._schema import MIGRATIONS, metadata
from modelport.monitoring.prediction_log import (
    SCHEMA_VERSION,
    ParquetSink,
    PredictionLog,
    PredictionRecord,
    PredictionSink,
    arrow_schema,
)
from modelport.monitoring.prediction_postgres import PostgresSink
from modelport.service.wiring import open_prediction_log, open_prediction_sink

from ._schema import schema_drift
from .conftest import PG_ADMIN, PG_URL

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
BACKENDS = ["parquet", pytest.param("postgresql", marks=pytest.mark.postgres)]

Opener = Callable[[], PredictionSink]


def record(
    i: int,
    deployment: str = "fraud",
    at: datetime = T0,
    inputs: str | Callable[[], str] | None = None,
) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"r-{i}",
        time=at + timedelta(milliseconds=i),
        deployment=deployment,
        variant="current" if i % 10 else "candidate",
        model=deployment,
        model_version="3",
        shadow=i % 7 == 0,
        latency_ms=0.5 + i / 1000,
        identity="5d41402abc4b" if i % 2 else None,
        inputs=json.dumps({"x": [i, i + 1]}) if inputs is None else inputs,
        outputs=json.dumps({"label": [i % 3]}),
    )


@pytest.fixture(params=BACKENDS)
def open_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens sinks on one empty storage (each call a new sink, as another process would)."""
    if request.param == "parquet":
        yield lambda: ParquetSink(tmp_path / "predictions")
        return
    url = _pg_schema(request.getfixturevalue("pg_database"))
    opened: list[PredictionSink] = []

    def opener() -> PredictionSink:
        opened.append(PostgresSink(url))
        return opened[-1]

    yield opener
    for sink in opened:
        sink.close()


def _pg_schema(database: str) -> str:
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(
        f"host=127.0.0.1 port=5432 user=postgres dbname={database}", autocommit=True
    ) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return PG_URL.format(db=database, schema=schema)


def rows(sink: PredictionSink, **filters: object) -> list[dict[str, object]]:
    table = sink.read(**filters)
    assert table.schema == arrow_schema()
    listed: list[dict[str, object]] = table.to_pylist()
    return listed


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_records_written_on_close_come_back_with_every_column(open_sink: Opener) -> None:
    log = PredictionLog(open_sink(), flush_interval_s=30)
    for i in range(40):
        assert log.log(record(i, "fraud" if i % 2 else "churn"))
    paris = timezone(timedelta(hours=1))
    log.log(record(99, "fraud", at=T0.astimezone(paris) + timedelta(hours=1)))
    log.close()
    assert (log.stats().logged, log.stats().written, log.stats().dropped) == (41, 41, 0)
    reader = open_sink()
    fraud = rows(reader, deployment="fraud")
    assert [r["request_id"] for r in fraud] == [f"r-{i}" for i in range(1, 40, 2)] + ["r-99"]
    assert fraud[0] == {
        "schema_version": SCHEMA_VERSION,
        "request_id": "r-1",
        "time": T0 + timedelta(milliseconds=1),
        "deployment": "fraud",
        "variant": "current",
        "model": "fraud",
        "model_version": "3",
        "shadow": False,
        "latency_ms": 0.501,
        "identity": "5d41402abc4b",
        "inputs": '{"x": [1, 2]}',
        "outputs": '{"label": [1]}',
        "error": None,
        "cpu_ms": None,
    }
    assert fraud[-1]["time"] == T0 + timedelta(hours=1, milliseconds=99)  # stored as UTC
    assert rows(reader, deployment="churn")[0]["shadow"] is True  # r-0
    assert len(rows(reader)) == 41
    later = rows(reader, since=T0 + timedelta(milliseconds=30))
    assert [r["request_id"] for r in later] == [f"r-{i}" for i in range(30, 40)] + ["r-99"]
    newest = rows(reader, deployment="churn", limit=3)
    assert [r["request_id"] for r in newest] == ["r-34", "r-36", "r-38"]  # oldest first
    assert rows(reader, deployment="nobody") == []


def test_a_failed_requests_kind_and_the_cpu_time_round_trip(open_sink: Opener) -> None:
    log = PredictionLog(open_sink(), flush_interval_s=30)
    log.log(dataclasses.replace(record(1), error="invalid_input", outputs="{}"))
    log.log(dataclasses.replace(record(2), cpu_ms=0.0625))
    log.log(dataclasses.replace(record(3), error="internal", outputs="{}", cpu_ms=3.5))
    log.close()
    got = [(r["schema_version"], r["error"], r["cpu_ms"], r["outputs"]) for r in rows(open_sink())]
    assert got == [
        (SCHEMA_VERSION, "invalid_input", None, "{}"),
        (SCHEMA_VERSION, None, 0.0625, '{"label": [2]}'),
        (SCHEMA_VERSION, "internal", 3.5, "{}"),
    ]


def test_request_ids_are_found_among_the_deployments_written_records(open_sink: Opener) -> None:
    log = PredictionLog(open_sink(), flush_interval_s=3600)
    for i in range(1, 7):  # r-1 .. r-6, none a shadow (i % 7)
        log.log(record(i, at=T0 + timedelta(hours=i)))
    log.log(dataclasses.replace(record(8), request_id="shadowed", shadow=True))
    log.log(dataclasses.replace(record(9), request_id="failed", error="unavailable", outputs="{}"))
    log.log(record(10, "churn"))  # r-10, another deployment's
    log.close()
    late = PredictionLog(open_sink(), flush_interval_s=3600)
    late.log(record(11))  # r-11 waits in the queue: not written yet
    try:
        sink = open_sink()
        wanted = ["r-1", "r-4", "r-6", "shadowed", "failed", "r-10", "r-11", "nobody", "r-4"]
        assert sink.find_request_ids("fraud", wanted) == {"r-1", "r-4", "r-6", "failed"}
        since = T0 + timedelta(hours=4)  # r-4 at 4 h 4 ms and after
        assert sink.find_request_ids("fraud", wanted, since) == {"r-4", "r-6"}
        assert sink.find_request_ids("fraud", wanted, T0 + timedelta(days=2)) == set()
        assert sink.find_request_ids("churn", wanted) == {"r-10"}
        assert sink.find_request_ids("nobody", wanted) == set()
        assert sink.find_request_ids("fraud", []) == set()
        many = [f"x-{n}" for n in range(5000)] + ["r-6"]
        assert sink.find_request_ids("fraud", many) == {"r-6"}
    finally:
        late.close()
    assert open_sink().find_request_ids("fraud", ["r-11"]) == {"r-11"}


def test_deferred_fields_are_rendered_by_the_writer(open_sink: Opener) -> None:
    def broken() -> str:
        raise ValueError("bad tensor")

    log = PredictionLog(open_sink(), flush_interval_s=30)
    log.log(record(1, inputs=lambda: '{"x": [42]}'))
    log.log(record(2, inputs=broken))
    log.close()
    first, second = rows(open_sink())
    assert first["inputs"] == '{"x": [42]}'
    assert json.loads(str(second["inputs"])) == {"error": "cannot decode: bad tensor"}


def test_prune_by_age_deletes_whole_days_past_the_limit(open_sink: Opener) -> None:
    log = PredictionLog(open_sink(), flush_interval_s=30)
    for day in range(5):  # 2026-12-07 to 2026-12-11
        log.log(record(day, at=T0 + timedelta(days=day)))
    log.log(record(9, deployment="churn", at=T0))
    log.close()
    sink = open_sink()
    now = datetime(2026, 12, 12, 12, 0, tzinfo=UTC)
    # A day goes once its last moment is 3 days old: 12-07 and 12-08.
    pruned = sink.prune(now, max_age_s=3 * 86_400)
    assert len(pruned.removed) == 3 and all("2026-12-0" in name for name in pruned.removed)
    assert pruned.records in (None, 3)
    assert [r["request_id"] for r in rows(sink)] == ["r-2", "r-3", "r-4"]
    assert sink.prune(now, max_age_s=3 * 86_400).removed == ()


def test_prune_by_size_deletes_the_oldest_first(open_sink: Opener) -> None:
    log = PredictionLog(open_sink(), flush_interval_s=30)
    for day in range(3):
        log.log(record(day, at=T0 + timedelta(days=day), inputs=json.dumps({"x": "y" * 2000})))
    log.close()
    sink = open_sink()
    now = T0 + timedelta(days=3)
    assert sink.prune(now, max_bytes=10**12).removed == ()
    assert len(sink.prune(now, max_bytes=1).removed) == 3  # nothing fits: everything goes
    assert rows(sink) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_storage_outage_keeps_records_and_writes_them_once_back(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "parquet":
        folder = tmp_path / "predictions"
        folder.write_text("in the way")  # the folder cannot be made
        outage = _Outage(lambda: None, lambda: folder.unlink(), lambda: ParquetSink(folder))
    else:
        outage = _database_outage()
        request.addfinalizer(outage.cleanup)
    log = PredictionLog(outage.open(), flush_interval_s=0.05, max_queue=1000)
    try:
        assert log.log(record(1))
        if backend == "postgresql":  # written first, then the database goes away
            wait_for(lambda: log.stats().written == 1)
        outage.begin()
        for i in range(2, 12):
            assert log.log(record(i))  # never raises, never blocks
        wait_for(lambda: log.stats().failures >= 2)
        assert log.stats().written == (0 if backend == "parquet" else 1)
        outage.end()
        wait_for(lambda: log.stats().written == 11)
    finally:
        log.close()
    assert (log.stats().dropped, log.stats().lost) == (0, 0)
    with closing(outage.open()) as reader:
        kept = [r["request_id"] for r in rows(reader)]
    # The dropped database took the record written before the outage with it.
    assert kept == [f"r-{i}" for i in range(1 if backend == "parquet" else 2, 12)]


class _Outage:
    def __init__(
        self,
        begin: Callable[[], None],
        end: Callable[[], None],
        open_sink: Opener,
        cleanup: Callable[[], None] = lambda: None,
    ) -> None:
        self.begin, self.end, self.open, self.cleanup = begin, end, open_sink, cleanup


def _database_outage() -> _Outage:
    name = f"modelport_test_{secrets.token_hex(6)}"
    identifier = sql.Identifier(name)

    def admin(statement: sql.Composed) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(statement)

    admin(sql.SQL("CREATE DATABASE {}").format(identifier))
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    return _Outage(
        begin=lambda: admin(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(identifier)),
        end=lambda: admin(sql.SQL("CREATE DATABASE {}").format(identifier)),
        open_sink=lambda: PostgresSink(url),
        cleanup=lambda: admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier)
        ),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_beyond_max_queue_records_are_dropped_and_counted_never_raised(
    backend: str, tmp_path: Path
) -> None:
    if backend == "parquet":
        (tmp_path / "predictions").write_text("in the way")
        sink: PredictionSink = ParquetSink(tmp_path / "predictions")
    else:  # a port with nothing listening
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        sink = PostgresSink(f"postgresql://postgres@127.0.0.1:{port}/nothing")
    log = PredictionLog(sink, flush_interval_s=0.05, max_queue=20)
    assert all(log.log(record(i)) for i in range(15))
    wait_for(lambda: log.stats().failures >= 2)  # kept across failed writes
    accepted = [log.log(record(i)) for i in range(15, 30)]
    assert accepted[-10:] == [False] * 10  # never more than max_queue held
    log.close()  # one last try; nothing raised
    stats = log.stats()
    assert stats.logged <= 20 and stats.logged + stats.dropped == 30
    assert (stats.written, stats.lost) == (0, stats.logged)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_record_the_storage_cannot_hold_is_lost_not_retried_forever(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "parquet":
        folder = tmp_path / "predictions"
        reopen: Opener = lambda: ParquetSink(folder)  # noqa: E731
    else:
        url = _pg_schema(request.getfixturevalue("pg_database"))
        reopen = lambda: PostgresSink(url)  # noqa: E731
    log = PredictionLog(reopen(), flush_interval_s=0.05)
    try:
        log.log(dataclasses.replace(record(1), latency_ms="fast"))
        wait_for(lambda: log.stats().lost == 1)
        log.log(record(2))
        wait_for(lambda: log.stats().written == 1)
    finally:
        log.close()
    assert log.stats().failures == 0
    with closing(reopen()) as reader:
        assert [r["request_id"] for r in rows(reader)] == ["r-2"]


@pytest.mark.postgres
def test_text_postgresql_cannot_hold_is_written_replaced(pg_database: str) -> None:
    url = _pg_schema(pg_database)
    log = PredictionLog(PostgresSink(url), flush_interval_s=30)
    log.log(
        PredictionRecord("a\x00b", T0, "fraud", "v", "m", "1", False, 1.0, "\ud800", "{}", "{}")
    )
    log.close()
    assert log.stats().written == 1
    with closing(PostgresSink(url)) as reader:
        (row,) = rows(reader)
    assert (row["request_id"], row["identity"]) == ("a\ufffdb", "?")


@pytest.mark.postgres
def test_the_migrated_schema_matches_the_table_definitions(pg_database: str) -> None:
    url = _pg_schema(pg_database)
    sink = PostgresSink(url)
    try:
        assert rows(sink) == []  # reading migrates an empty database
    finally:
        sink.close()
    assert schema_drift(url, MIGRATIONS, metadata) == []
    schema = url.rpartition("%3D")[2]
    with psycopg.connect(PG_ADMIN.replace("dbname=postgres", f"dbname={pg_database}")) as conn:
        methods = dict(
            conn.execute(  # Alembic compares an index's columns, not its access method
                "SELECT c.relname, a.amname FROM pg_index x JOIN pg_class c ON c.oid = "
                "x.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE x.indrelid = %s::regclass",
                (f"{schema}.prediction_log",),
            ).fetchall()
        )
    assert methods == {
        "ix_prediction_log_deployment_time": "btree",
        "ix_prediction_log_deployment_request_id": "btree",
        "ix_prediction_log_time": "brin",
    }


@pytest.mark.postgres
def test_a_version_1_table_is_migrated_and_its_rows_read_back_with_nulls(pg_database: str) -> None:
    from modelport import db

    url = _pg_schema(pg_database)
    engine = db.open_engine(url)
    try:
        db.migrate(engine, MIGRATIONS, "0001")  # the table as version 1 of the log left it
        with db.write(engine) as conn:
            conn.exec_driver_sql(
                "INSERT INTO prediction_log VALUES (1, 'old', %(t)s, 'fraud', 'v', 'm', '1', "
                "false, 1.0, NULL, '{}', '{\"y\": [1]}')",
                {"t": T0},
            )
    finally:
        engine.dispose()
    with closing(PostgresSink(url)) as sink:
        log = PredictionLog(sink, flush_interval_s=30)
        log.log(dataclasses.replace(record(5), error="unavailable", outputs="{}", cpu_ms=2.0))
        log.close()
    with closing(PostgresSink(url)) as reader:
        got = [
            (r["request_id"], r["schema_version"], r["error"], r["cpu_ms"]) for r in rows(reader)
        ]
        assert got == [("old", 1, None, None), ("r-5", 2, "unavailable", 2.0)]
        assert reader.find_request_ids("fraud", ["old", "r-5"]) == {"old", "r-5"}
    assert schema_drift(url, MIGRATIONS, metadata) == []


@pytest.mark.postgres
def test_postgresql_prunes_by_the_rows_size_oldest_days_first(pg_database: str) -> None:
    url = _pg_schema(pg_database)
    log = PredictionLog(PostgresSink(url), flush_interval_s=30)
    for day in range(3):
        for i in range(5):
            log.log(record(10 * day + i, at=T0 + timedelta(days=day), inputs=json.dumps("y" * 900)))
    log.log(record(99, deployment="churn", at=T0 + timedelta(days=2)))
    log.close()
    database = PG_ADMIN.replace("dbname=postgres", f"dbname={pg_database}")
    with psycopg.connect(database, options=f"-csearch_path={url.rpartition('%3D')[2]}") as conn:
        (newest,) = conn.execute(
            "SELECT sum(pg_column_size(p.*)) FROM prediction_log p WHERE time >= %s",
            (T0 + timedelta(days=1, hours=14),),
        ).fetchone() or (0,)
    with closing(PostgresSink(url)) as sink:
        pruned = sink.prune(T0 + timedelta(days=3), max_bytes=int(newest))
        assert pruned.removed == ("fraud/2026-12-07", "fraud/2026-12-08")
        assert pruned.records == 10
        assert sorted({str(r["request_id"]) for r in rows(sink)}) == sorted(
            [f"r-{i}" for i in range(20, 25)] + ["r-99"]
        )


def test_postgresql_is_refused_with_another_database(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a PostgreSQL URL"):
        PostgresSink(f"sqlite:///{tmp_path / 'm.db'}")
    with pytest.raises(ConfigError, match="psycopg 3"):
        PostgresSink("postgresql+psycopg2://postgres@127.0.0.1/db")
    sqlite_metadata = Settings(
        home=tmp_path, predictions=PredictionLogSettings(backend="postgresql")
    )
    with pytest.raises(ConfigError, match="MODELPORT_PREDICTIONS__DATABASE_URL"):
        open_prediction_log(sqlite_metadata)


@pytest.mark.postgres
def test_the_postgresql_backend_defaults_to_the_metadata_database(
    pg_database: str, tmp_path: Path
) -> None:
    url = _pg_schema(pg_database)
    settings = Settings(
        home=tmp_path,
        database_url=url,
        predictions=PredictionLogSettings(backend="postgresql", flush_interval_s=30),
    )
    log = open_prediction_log(settings)
    log.log(record(1))
    log.close()
    reader = open_prediction_sink(settings)
    try:
        assert isinstance(reader, PostgresSink)
        assert [r["request_id"] for r in rows(reader)] == ["r-1"]
    finally:
        reader.close()
    assert not (tmp_path / "predictions").exists()  # nothing went to Parquet
