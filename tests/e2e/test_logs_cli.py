"""``modelport logs query`` and ``logs prune`` on a real data directory, as a user runs them."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from modelport.monitoring.prediction_log import PredictionLog, PredictionRecord
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
