"""PushSource and PostgreSQLSource definitions: validated when built, no server needed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelport.core.errors import ConfigError
from modelport.features import (
    Entity,
    FeatureView,
    Field,
    FileSource,
    Float64,
    PostgreSQLSource,
    PushSource,
)
from modelport.features._postgres import Column, display_url
from modelport.features.definitions import source_label
from modelport.features.documents import parse_definition, to_document
from modelport.features.push import _part_paths

URL = "postgresql://postgres@127.0.0.1:5432/features"


def test_postgresql_source_takes_feasts_keywords_and_a_url() -> None:
    source = PostgreSQLSource(
        name="stats",
        table="public.driver_stats",
        timestamp_field="event_ts",
        created_timestamp_column="created",
        url=URL,
        description="d",
        tags={"a": "b"},
        owner="me",
    )
    assert source.table_parts == ("public", "driver_stats")
    assert (source.timestamp_field, source.created_timestamp_column) == ("event_ts", "created")
    assert source_label(source) == "PostgreSQL table 'public.driver_stats'"
    query = PostgreSQLSource(name="q", query="SELECT 1", timestamp_field="ts", url=URL)
    assert source_label(query) == "PostgreSQL query 'q'"
    for url in ("postgres://h/db", "postgresql+psycopg://u@h/db"):
        assert PostgreSQLSource(table="t", timestamp_field="ts", url=url).url == url


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timestamp_field": "ts", "url": URL}, "needs exactly one of query= .* or table="),
        (
            {"table": "t", "query": "SELECT 1", "timestamp_field": "ts", "url": URL},
            "needs exactly one of",
        ),
        (
            {"table": "t", "timestamp_field": "ts", "url": "mysql://h/db"},
            "expected a PostgreSQL URL",
        ),
        (
            {"table": "a.b.c", "timestamp_field": "ts", "url": URL},
            "expected 'name' or 'schema.name'",
        ),
        ({"table": "a.", "timestamp_field": "ts", "url": URL}, "expected 'name' or 'schema.name'"),
        (
            {"table": "t", "timestamp_field": "bad-name", "url": URL},
            "PostgreSQLSource timestamp_field",
        ),
    ],
)
def test_postgresql_source_refuses_bad_definitions(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PostgreSQLSource(**kwargs)  # type: ignore[arg-type]  # some keywords are missing on purpose


def test_push_source_feeds_a_view_that_reads_its_batch_source(tmp_path: Path) -> None:
    batch = FileSource(path=str(tmp_path / "*.parquet"), timestamp_field="ts")
    push = PushSource(name="stats_push", batch_source=batch)
    view = FeatureView(
        name="stats",
        entities=[Entity(name="user", join_keys=["user_id"])],
        schema=[Field(name="spend", dtype=Float64)],
        source=push,
    )
    assert view.source is push
    assert view.batch_source is batch
    assert push.timestamp_field == "ts"
    # its document form round-trips (what the registry stores)
    back = parse_definition(to_document(view), {"user": view.entities[0]}, {})
    assert isinstance(back, FeatureView) and isinstance(back.source, PushSource)
    assert back.source.name == "stats_push" and back.batch_source.path == batch.path
    assert to_document(back) == to_document(view)


def test_push_source_needs_a_batch_source() -> None:
    with pytest.raises(ConfigError, match="expected a FileSource or PostgreSQLSource"):
        PushSource(name="p", batch_source="data/*.parquet")  # type: ignore[arg-type]  # the point
    inner = PushSource(name="p", batch_source=FileSource(path="a.parquet", timestamp_field="ts"))
    with pytest.raises(ConfigError, match="expected a FileSource or PostgreSQLSource"):
        PushSource(name="q", batch_source=inner)  # type: ignore[arg-type]  # the point


def test_passwords_stay_out_of_messages() -> None:
    assert display_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert display_url(URL) == URL


def test_postgres_types_map_to_duckdb_names_and_unknown_ones_stream_as_text() -> None:
    assert Column("a", 20, "int8").duckdb_type == "BIGINT"
    assert Column("a", 1184, "timestamptz").duckdb_type == "TIMESTAMP WITH TIME ZONE"
    numeric = Column("n", 1700, "numeric(6,2)")
    assert (numeric.duckdb_type, numeric.select()) == ("DECIMAL", '"n"::float8 AS "n"')
    uuid = Column("u", 2950, "uuid")
    assert (uuid.duckdb_type, uuid.select()) == ("UUID", '"u"::text AS "u"')
    assert Column('we"ird', 25, "text").select() == '"we""ird"'


def test_part_files_match_the_glob_and_temporary_ones_do_not(tmp_path: Path) -> None:
    source = FileSource(path=str(tmp_path / "stats_*.parquet"), timestamp_field="ts")
    final, temporary = _part_paths(source, datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert final.parent == temporary.parent == tmp_path
    assert final.name.startswith("stats_push-20261201T120000000000Z-")
    assert final.name.endswith(".parquet")
    assert final.match("stats_*.parquet")
    assert not temporary.match("stats_*.parquet")
    again, _ = _part_paths(source, datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert again != final
