"""Training-serving skew: served features read back from the prediction log, recomputed offline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import InvalidInput
from modelport.core.inference import InferenceRequest, Tensor
from modelport.features import FeatureStore
from modelport.monitoring.prediction_log import PredictionLog, read_predictions
from modelport.service.enrichment import Enrichment
from modelport.service.feature_skew import feature_skew
from tests.unit.service.test_enrichment import (
    MATRIX,
    NOW,
    deployment,
    open_store,
    request,
    signature,
)


@pytest.fixture
def features(tmp_path: Path) -> Iterator[FeatureStore]:
    with open_store(tmp_path) as store:
        yield store


def logged(
    tmp_path: Path,
    enrichment: Enrichment,
    requests: list[InferenceRequest],
    at: datetime = NOW,
    plain: int = 0,
) -> Any:
    """Log each request's enriched body as the gateway does, and read the log back."""
    log = PredictionLog(tmp_path / "predictions", flush_interval_s=3600)
    assembly = enrichment.assembly(MATRIX, "fraud", "1")
    answer = orjson.dumps({"model_name": "fraud", "outputs": []})
    for n, req in enumerate(requests):
        sent = assembly.enriched(enrichment.read(req, None, at))
        log.log(
            (f"r-{n}", time.time(), "fraud", "current", "fraud", "1", False, 1.0, None,
             sent.log_body, sent.log_header_length, answer, None, (), (), None, None)
        )  # fmt: skip
    for n in range(plain):  # a prediction without features
        body = orjson.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}
        )
        log.log(
            (f"p-{n}", time.time(), "fraud", "current", "fraud", "1", False, 1.0, None,
             body, None, answer, None, (), (), None, None)
        )  # fmt: skip
    log.close()
    return read_predictions(tmp_path / "predictions", deployment="fraud")


def test_served_features_that_match_the_offline_store_show_no_skew(
    features: FeatureStore, tmp_path: Path
) -> None:
    enrichment = Enrichment.build(deployment(), features)
    assert enrichment is not None
    table = logged(tmp_path, enrichment, [request(["u1", "u2"]), request(["u2"])], plain=1)
    report = feature_skew(table, features, "fraud")
    assert (report.predictions, report.rows, report.skipped) == (2, 3, 1)
    assert [(f.feature, f.compared, f.mismatches) for f in report.features] == [
        ("user_stats:spend_7d", 3, 0),
        ("user_stats:orders_7d", 3, 0),
        ("merchant_stats:risk", 3, 0),
    ]
    assert feature_skew(table, features, "other").predictions == 0


def test_offline_values_that_changed_are_counted_per_feature_with_examples(
    features: FeatureStore, tmp_path: Path
) -> None:
    enrichment = Enrichment.build(deployment(), features)
    assert enrichment is not None
    table = logged(tmp_path, enrichment, [request(["u1", "u2"])])
    # The offline source is corrected afterwards: u2's spend was 5.0 online, 5.5 offline.
    day = datetime(2026, 12, 2, tzinfo=UTC)
    pq.write_table(
        pa.table(
            {
                "user_id": ["u1", "u2"],
                "event_timestamp": [day, day],
                "spend_7d": [30.0 * (1 + 1e-9), 5.5],  # within the tolerance; not
                "orders_7d": [3, 1],
                "segment": ["gold", "basic"],
            }
        ),
        tmp_path / "users.parquet",
    )
    report = feature_skew(table, features, "fraud")
    by_feature = {f.feature: f for f in report.features}
    spend = by_feature["user_stats:spend_7d"]
    assert (spend.compared, spend.mismatches, spend.rate) == (2, 1, 0.5)
    (example,) = spend.examples
    assert (example.request_id, example.row, example.online, example.offline) == (
        "r-0",
        1,
        5.0,
        5.5,
    )
    assert example.keys == {"user_id": "u2", "merchant_id": "m1"} and example.at == NOW
    assert by_feature["user_stats:orders_7d"].mismatches == 0
    document = report.document()
    assert document["features"][0]["examples"][0]["offline"] == 5.5
    assert feature_skew(table, features, "fraud", rel_tol=0.2).features[0].mismatches == 0


def test_missing_on_both_sides_agrees_and_missing_on_one_side_does_not(
    features: FeatureStore, tmp_path: Path
) -> None:
    doc = deployment(onMissing="default", defaults={"spend_7d": 0, "orders_7d": 0, "risk": 0})
    enrichment = Enrichment.build(doc, features)
    assert enrichment is not None
    # u9 is nowhere: missing online and offline. The read 3 days later finds m1's risk too old
    # online; offline at that instant, too (the same ttl): both missing.
    table = logged(tmp_path, enrichment, [request(["u9"]), request(["u1"])])
    report = {f.feature: f for f in feature_skew(table, features, "fraud").features}
    spend = report["user_stats:spend_7d"]
    assert (spend.missing_online, spend.missing_offline, spend.mismatches) == (1, 1, 0)
    late = logged(tmp_path / "late", enrichment, [request(["u1"])], at=NOW + timedelta(days=3))
    risk = {f.feature: f for f in feature_skew(late, features, "fraud").features}
    assert risk["merchant_stats:risk"].missing_online == 1
    assert risk["merchant_stats:risk"].mismatches == 0
    # Served before the offline row existed: missing offline, present online.
    early = logged(tmp_path / "early", enrichment, [request(["u1"])], at=NOW - timedelta(days=1))
    early_spend = feature_skew(early, features, "fraud").features[0]
    assert (early_spend.missing_offline, early_spend.mismatches) == (1, 1)


def test_a_malformed_feature_record_is_refused(features: FeatureStore) -> None:
    inputs = orjson.dumps({"modelport_features": ['{"keys": {}}']}).decode()
    rows = [{"deployment": "fraud", "shadow": False, "request_id": "r-1", "inputs": inputs}]
    with pytest.raises(InvalidInput, match="request 'r-1' row 0: the feature record is malformed"):
        feature_skew(rows, features, "fraud")
    shadow = [{**rows[0], "shadow": True}]
    assert feature_skew(shadow, features, "fraud").skipped == 1


def test_integer_keys_are_recomputed_too(tmp_path: Path) -> None:
    from modelport.features import Entity, FeatureView, Field, FileSource, Float64, Int64
    from modelport.features.online import SqliteOnlineStoreConfig

    pq.write_table(
        pa.table({"card": [7], "ts": [NOW], "limit": [100.0]}), tmp_path / "cards.parquet"
    )
    card = Entity(name="card", join_keys=["card"])
    view = FeatureView(
        name="cards",
        entities=[card],
        schema=[Field(name="card", dtype=Int64), Field(name="limit", dtype=Float64)],
        source=FileSource(path=str(tmp_path / "cards.parquet"), timestamp_field="ts"),
    )
    with FeatureStore(
        [card, view], online_store=SqliteOnlineStoreConfig(path=str(tmp_path / "o.db"))
    ) as store:
        store.materialize(datetime(2026, 11, 1, tzinfo=UTC), NOW, progress=False)
        doc = deployment(entities=[{"joinKey": "card", "input": "card"}], features=["cards:limit"])
        enrichment = Enrichment.build(doc, store)
        assert enrichment is not None
        req = InferenceRequest([Tensor("card", Datatype.INT64, (1,), np.array([7]))])
        assembly = enrichment.assembly(signature(("x", "FP64", (-1, 1))), "fraud", "1")
        sent = assembly.enriched(enrichment.read(req, None, NOW))
        record = orjson.loads(sent.log_body)
        inputs = {t["name"]: t["data"] for t in record["inputs"]}
        rows = [{"deployment": "fraud", "request_id": "r", "inputs": orjson.dumps(inputs).decode()}]
        (skew,) = feature_skew(rows, store, "fraud").features
        assert (skew.compared, skew.mismatches) == (1, 0)
