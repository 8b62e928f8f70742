"""``modelport logs query`` and ``logs prune`` on a real data directory, as a user runs them,
and on the PostgreSQL backend."""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from modelport.core.settings import PredictionLogSettings, Settings
from modelport.monitoring.prediction_log import PredictionLog, PredictionRecord
from modelport.service.wiring import open_prediction_log
from tests.contract.conftest import PG_ADMIN
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    log = PredictionLog(home / "predictions", flush_interval_s=30)
    now = datetime.now(UTC)
    for i in range(6):
        log.log(
            PredictionRecord(
                request_id=f"r-{i}",
                time=now - timedelta(hours=5 - i),  # one an hour, the last just now
                deployment="fraud" if i % 2 else "churn",
                variant="current",
                model="m",
                model_version="3",
                shadow=i == 5,
                latency_ms=1.5,
                identity=None,
                inputs='{"x": [1]}',
                outputs=f'{{"label": [{i}]}}',
            )
        )
    log.close()
    return home


def query(home: Path, *args: str) -> str:
    done = modelport(home, "logs", "query", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_json_lines_filtered_by_deployment_and_time(home: Path) -> None:
    rows = [json.loads(line) for line in query(home, "-d", "fraud", "-o", "json").splitlines()]
    assert [r["request_id"] for r in rows] == ["r-1", "r-3", "r-5"]
    recent = query(home, "--since", "150m", "-o", "json").splitlines()
    assert [json.loads(line)["request_id"] for line in recent] == ["r-3", "r-4", "r-5"]
    assert len(query(home, "--limit", "2", "-o", "json").splitlines()) == 2
    older = query(home, "--since", "270m", "--until", "90m", "--limit", "2", "-o", "json")
    assert [json.loads(line)["request_id"] for line in older.splitlines()] == ["r-2", "r-3"]


def test_csv_parquet_and_table(home: Path, tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(query(home, "-o", "csv"))))
    assert len(rows) == 6 and rows[0]["request_id"] == "r-0"
    (tmp_path / "out.parquet").write_bytes(_binary(home))
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 6
    wide = modelport(home, "logs", "query", "-d", "fraud", env={"COLUMNS": "200"}).stdout
    assert "current (shadow)" in wide and "r-5" in wide


def _binary(home: Path) -> bytes:
    import os
    import subprocess
    import sys

    env = {**os.environ, "MODELPORT_HOME": str(home)}
    env.pop("MODELPORT_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "modelport.cli", "logs", "query", "-o", "parquet"],
        env=env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_bad_options_and_an_empty_log(home: Path, tmp_path: Path) -> None:
    bad = modelport(home, "logs", "query", "-o", "xml")
    assert bad.returncode == 2 and "expected one of table, json, csv, parquet" in bad.stderr
    since = modelport(home, "logs", "query", "--since", "yesterday")
    assert since.returncode == 2 and "--since 'yesterday'" in since.stderr
    reversed_range = modelport(home, "logs", "query", "--since", "1h", "--until", "2h")
    assert reversed_range.returncode == 2 and "must be after --since '1h'" in reversed_range.stderr
    future = modelport(home, "logs", "query", "--since", "2099-01-01")
    assert future.returncode == 2 and "is in the future" in future.stderr
    empty = modelport(tmp_path, "logs", "query")
    assert empty.returncode == 0 and "no predictions logged" in empty.stdout


def test_prune_applies_the_retention_settings(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions", flush_interval_s=30)
    old = datetime.now(UTC) - timedelta(days=40)
    log.log(PredictionRecord("r", old, "fraud", "v", "m", "1", False, 1.0, None, "{}", "{}"))
    log.log(
        PredictionRecord(
            "s", datetime.now(UTC), "fraud", "v", "m", "1", False, 1.0, None, "{}", "{}"
        )
    )
    log.close()
    done = modelport(tmp_path, "logs", "prune")
    assert done.returncode == 0 and done.stdout == "deleted 1 segment\n", done.stderr
    kept = modelport(
        tmp_path, "logs", "query", "-o", "json", env={"MODELPORT_PREDICTIONS__RETENTION_DAYS": "1"}
    )
    assert [json.loads(line)["request_id"] for line in kept.stdout.splitlines()] == ["s"]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test."""
    name = f"modelport_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.mark.postgres
def test_query_and_prune_the_postgresql_backend(tmp_path: Path, pg_url: str) -> None:
    settings = Settings(
        home=tmp_path,
        predictions=PredictionLogSettings(
            backend="postgresql", database_url=pg_url, flush_interval_s=30
        ),
    )
    log = open_prediction_log(settings)
    now = datetime.now(UTC)
    for i, (deployment, age) in enumerate(
        [("fraud", timedelta(days=40)), ("fraud", timedelta(hours=2)), ("churn", timedelta(0))]
    ):
        log.log(
            PredictionRecord(
                f"r-{i}", now - age, deployment, "v", "m", "1", False, 1.0, None, "{}", f"[{i}]"
            )
        )
    log.close()
    assert log.stats().written == 3
    env = {"MODELPORT_PREDICTIONS__BACKEND": "postgresql"}
    own = {**env, "MODELPORT_PREDICTIONS__DATABASE_URL": pg_url}
    done = modelport(tmp_path, "logs", "query", "-o", "json", env=own)
    assert done.returncode == 0, done.stderr
    got = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["request_id"], r["deployment"], r["outputs"]) for r in got] == [
        ("r-0", "fraud", "[0]"),
        ("r-1", "fraud", "[1]"),
        ("r-2", "churn", "[2]"),
    ]
    newest = modelport(
        tmp_path, "logs", "query", "-d", "fraud", "--limit", "1", "-o", "json", env=own
    )
    assert [json.loads(line)["request_id"] for line in newest.stdout.splitlines()] == ["r-1"]
    # Without a URL of its own, the log uses the metadata database when that is PostgreSQL.
    pruned = modelport(tmp_path, "logs", "prune", env={**env, "MODELPORT_DATABASE_URL": pg_url})
    assert pruned.returncode == 0 and pruned.stdout == "deleted 1 deployment day (1 record)\n"
    assert not (tmp_path / "predictions").exists()  # nothing went to Parquet
    sqlite = modelport(tmp_path, "logs", "query", env=env)
    assert sqlite.returncode != 0 and "MODELPORT_PREDICTIONS__DATABASE_URL" in sqlite.stderr
