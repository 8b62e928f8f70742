"""Serving artifacts and compile reports, on every store backend, and the 0001 -> 0002 migration."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from modelport.core.errors import InvalidInput
from modelport.db import (
    open_engine,
    write,
)
from modelport.registry import CompileReport, MetadataStore, ServingArtifact
from modelport.registry._schema import MIGRATIONS

from ._support import FakeClock, new_version, seed_old_database

ONNX = ServingArtifact(framework="onnx", digest="sha256:" + "ef" * 32, size=4321)
COMPILED = CompileReport(
    compiled=True,
    max_abs_diff=2.1e-08,
    atol=1e-05,
    rows=150,
    precision="FP64",
    converter="skl2onnx 1.20.0",
)
NOT_COMPILED = CompileReport(compiled=False, reason="no sample to check equivalence", atol=1e-05)


def test_serving_artifact_and_report_round_trip(store: MetadataStore) -> None:
    created = store.create_version(
        new_version(
            framework="sklearn",
            artifact_filename="model.joblib",
            serving=ONNX,
            compile_report=COMPILED,
        )
    )
    assert created.serving == ONNX
    assert created.compile_report == COMPILED
    assert store.get_version("fraud", 1) == created
    assert store.list_versions("fraud") == [created]


def test_not_compiled_keeps_its_reason_and_serves_the_original(store: MetadataStore) -> None:
    created = store.create_version(new_version(framework="sklearn", compile_report=NOT_COMPILED))
    assert created.serving is None
    assert store.get_version("fraud", 1).compile_report == NOT_COMPILED


def test_versions_without_either_read_back_as_none(store: MetadataStore) -> None:
    created = store.create_version(new_version())
    assert (created.serving, created.compile_report) == (None, None)


def test_report_from_a_newer_writer_ignores_unknown_keys() -> None:
    raw = {**COMPILED.to_dict(), "future_field": [1, 2], "rows": True, "max_abs_diff": "x"}
    report = CompileReport.from_dict(raw)
    assert report.compiled and report.rows == 0 and report.max_abs_diff is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"serving": ServingArtifact("onnx", "md5:abc", 1)}, "invalid digest"),
        ({"serving": ServingArtifact("", ONNX.digest, 1)}, "serving.framework"),
        ({"serving": ServingArtifact("onnx", ONNX.digest, -1)}, "serving.size"),
        (
            {"compile_report": CompileReport(True, max_abs_diff=float("nan")), "serving": ONNX},
            "max_abs_diff",
        ),
        ({"compile_report": COMPILED}, "no serving artifact"),
    ],
)
def test_malformed_serving_fields_are_refused(
    store: MetadataStore, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.create_version(new_version(**changes))


def test_migrating_a_0001_database_with_data(backend_url: str, clock: FakeClock) -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    model_id = seed_old_database(backend_url, "0001", at)
    engine = open_engine(backend_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO aliases (model_id, alias, version) VALUES (:m, 'champion', 1)"),
                {"m": model_id},
            )
            revision = conn.execute(
                text(f"SELECT version_num FROM {MIGRATIONS.version_table}")
            ).scalar_one()
        assert revision == "0001"
    finally:
        engine.dispose()
    with MetadataStore(backend_url, clock) as store:
        old = store.get_version("old", 1)
        assert (old.serving, old.compile_report) == (None, None)
        assert (old.framework, old.artifact_filename, old.aliases) == (
            "sklearn",
            "tree.joblib",
            ("champion",),
        )
        assert old.created_at == at
        new = store.create_version(new_version("old", serving=ONNX, compile_report=COMPILED))
        assert new.version == 2 and store.get_version("old", 2).serving == ONNX


def test_downgrading_to_0001_keeps_the_versions(backend_url: str, clock: FakeClock) -> None:
    with MetadataStore(backend_url, clock) as store:
        store.create_version(new_version(serving=ONNX, compile_report=COMPILED))
        store.set_alias("fraud", "champion", 1, "alice")
    engine = open_engine(backend_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS.script_dir))
    try:
        with write(engine) as conn:
            config.attributes["connection"] = conn
            config.attributes["version_table"] = MIGRATIONS.version_table
            command.downgrade(config, "0001")
        with engine.connect() as conn:
            columns = conn.execute(text("SELECT * FROM model_versions")).keys()
            assert "serving_framework" not in columns and "compile_report" not in columns
            assert conn.execute(text("SELECT count(*) FROM aliases")).scalar_one() == 1
    finally:
        engine.dispose()
    with MetadataStore(backend_url, clock) as store:  # and back up again
        assert store.get_version("fraud", 1).serving is None
