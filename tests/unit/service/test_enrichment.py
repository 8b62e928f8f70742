"""Feature enrichment: keys from requests, one online read, inputs assembled by the signature.

A real :class:`FeatureStore` with a real SQLite online store in ``tmp_path``, materialised from
Parquet files; the helpers here are shared with the gateway's tests.
"""

from __future__ import annotations

import math
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
from modelport.core.deployment import Deployment, parse_deployment
from modelport.core.errors import ConfigError, InvalidInput, ServiceUnavailable
from modelport.core.inference import InferenceRequest, Tensor
from modelport.core.signature import Signature, TensorSpec
from modelport.features import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float64,
    Int64,
    String,
)
from modelport.features.online import SqliteOnlineStoreConfig
from modelport.protocol.rest import decode_infer_request, encode_infer_request
from modelport.service.enrichment import LOG_INPUT, Enrichment, Fetched

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def write_features(folder: Path) -> list[Any]:
    """Two views: user_stats (no ttl) and merchant_stats (1 day ttl; m-old is too old)."""
    day = datetime(2026, 12, 2, tzinfo=UTC)
    pq.write_table(
        pa.table(
            {
                "user_id": ["u1", "u2"],
                "event_timestamp": [day, day],
                "spend_7d": [30.0, 5.0],
                "orders_7d": [3, 1],
                "segment": ["gold", "basic"],
            }
        ),
        folder / "users.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "merchant_id": ["m1", "m-old"],
                "event_timestamp": [day, day - timedelta(days=5)],
                "risk": [0.25, 0.9],
            }
        ),
        folder / "merchants.parquet",
    )
    user = Entity(name="user", join_keys=["user_id"])
    merchant = Entity(name="merchant", join_keys=["merchant_id"])
    users = FeatureView(
        name="user_stats",
        entities=[user],
        schema=[
            Field(name="spend_7d", dtype=Float64),
            Field(name="orders_7d", dtype=Int64),
            Field(name="segment", dtype=String),
        ],
        source=FileSource(path=str(folder / "users.parquet"), timestamp_field="event_timestamp"),
    )
    merchants = FeatureView(
        name="merchant_stats",
        entities=[merchant],
        schema=[Field(name="risk", dtype=Float64)],
        source=FileSource(
            path=str(folder / "merchants.parquet"), timestamp_field="event_timestamp"
        ),
        ttl=timedelta(days=1),
    )
    service = FeatureService(name="fraud_features", features=[users[["spend_7d", "orders_7d"]]])
    return [user, merchant, users, merchants, service]


def open_store(folder: Path, **options: Any) -> FeatureStore:
    """A feature store over ``folder``'s files, materialised into SQLite."""
    store = FeatureStore(
        online_store=SqliteOnlineStoreConfig(path=str(folder / "online.db")), **options
    )
    store.apply(write_features(folder))
    store.materialize(datetime(2026, 11, 1, tzinfo=UTC), NOW, progress=False)
    return store


@pytest.fixture
def features(tmp_path: Path) -> Iterator[FeatureStore]:
    with open_store(tmp_path) as store:
        yield store


def enriched_document(**features: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "entities": [
            {"joinKey": "user_id", "input": "user_id"},
            {"joinKey": "merchant_id", "parameter": "merchant"},
        ],
        "features": ["user_stats:spend_7d", "user_stats:orders_7d", "merchant_stats:risk"],
    }
    spec.update(features)
    return {
        "apiVersion": "modelport.io/v1",
        "kind": "Deployment",
        "metadata": {"name": "fraud"},
        "spec": {
            "variants": [{"name": "current", "model": "fraud@1", "weight": 100}],
            "features": spec,
        },
    }


def deployment(**features: Any) -> Deployment:
    return parse_deployment(enriched_document(**features))


def signature(*inputs: tuple[str, str, tuple[int, ...]]) -> Signature:
    return Signature(
        tuple(TensorSpec(n, Datatype(d), s) for n, d, s in inputs),
        (TensorSpec("y", Datatype.FP32, (-1,)),),
    )


MATRIX = signature(("input", "FP32", (-1, 3)))


def request(users: list[str], merchant: object = "m1", **extra: Any) -> InferenceRequest:
    keys = np.array([u.encode() for u in users], dtype=object)
    parameters: dict[str, Any] = {} if merchant is None else {"merchant": merchant}
    return InferenceRequest(
        [Tensor("user_id", Datatype.BYTES, (len(users),), keys)],
        id="r-1",
        parameters=parameters | extra,
    )


def read(enrichment: Enrichment, req: InferenceRequest, binary: bool = False) -> Fetched:
    return enrichment.read(req, 0 if binary else None, NOW)


def sent(enrichment: Enrichment, fetched: Fetched, sig: Signature = MATRIX) -> InferenceRequest:
    enriched = enrichment.assembly(sig, "fraud", "1").enriched(fetched)
    return decode_infer_request(enriched.body, enriched.header_length)


def test_features_become_the_models_matrix_input_in_declared_order(
    features: FeatureStore,
) -> None:
    enrichment = Enrichment.build(deployment(), features)
    assert enrichment is not None
    model_input = sent(enrichment, read(enrichment, request(["u1", "u2"])))
    assert [t.name for t in model_input.inputs] == ["input"]  # the key input is not sent
    (matrix,) = model_input.inputs
    assert matrix.datatype is Datatype.FP32 and matrix.shape == (2, 3)
    assert matrix.data.tolist() == [[30.0, 3.0, 0.25], [5.0, 1.0, 0.25]]
    assert model_input.id == "r-1" and model_input.parameters == {"merchant": "m1"}


def test_inputs_named_like_features_get_their_column_and_request_inputs_pass_through(
    features: FeatureStore,
) -> None:
    enrichment = Enrichment.build(deployment(input="rest"), features)  # amount: the caller's
    assert enrichment is not None
    sig = signature(
        ("amount", "FP64", (-1, 1)),
        ("orders_7d", "INT64", (-1,)),
        ("user_id", "BYTES", (-1,)),
        ("rest", "FP64", (-1, 2)),
    )
    req = request(["u2"])
    req.inputs.append(Tensor("amount", Datatype.FP64, (1, 1), np.array([[12.5]])))
    model_input = sent(enrichment, read(enrichment, req), sig)
    by_name = {t.name: t for t in model_input.inputs}
    assert list(by_name) == ["amount", "orders_7d", "user_id", "rest"]  # the signature's order
    assert by_name["amount"].data.tolist() == [[12.5]]
    assert by_name["orders_7d"].datatype is Datatype.INT64
    assert by_name["orders_7d"].data.tolist() == [1]
    assert by_name["user_id"].data.tolist() == [b"u2"]  # the signature names the key input
    assert by_name["rest"].data.tolist() == [[5.0, 0.25]]


def test_a_binary_request_is_forwarded_binary_and_the_log_body_carries_keys_and_values(
    features: FeatureStore,
) -> None:
    enrichment = Enrichment.build(deployment(), features)
    assert enrichment is not None
    body, length = encode_infer_request(request(["u1"]), binary_inputs=True)
    fetched = enrichment.read(enrichment.decode(body, length), length, NOW)
    enriched = enrichment.assembly(MATRIX, "fraud", "1").enriched(fetched)
    assert enriched.header_length is not None
    logged = decode_infer_request(enriched.log_body, enriched.log_header_length)
    assert [t.name for t in logged.inputs] == ["input", LOG_INPUT]
    (record,) = [orjson.loads(v) for v in logged.inputs[1].data.tolist()]
    assert record == {
        "at": NOW.isoformat(),
        "keys": {"user_id": "u1", "merchant_id": "m1"},
        "values": {
            "user_stats:spend_7d": 30.0,
            "user_stats:orders_7d": 3,
            "merchant_stats:risk": 0.25,
        },
    }


def test_a_feature_service_names_the_features(features: FeatureStore) -> None:
    enrichment = Enrichment.build(deployment(features=None, service="fraud_features"), features)
    assert enrichment is not None
    assert enrichment.refs == ["user_stats:spend_7d", "user_stats:orders_7d"]
    fetched = read(enrichment, request(["u1"]))
    model_input = sent(enrichment, fetched, signature(("input", "FP64", (-1, 2))))
    assert model_input.inputs[0].data.tolist() == [[30.0, 3.0]]


def test_integer_keys_and_n_by_1_key_inputs_are_read(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"card": [7, 8], "ts": [NOW, NOW], "limit": [100.0, 200.0]}),
        tmp_path / "cards.parquet",
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
        req = InferenceRequest([Tensor("card", Datatype.INT64, (2, 1), np.array([[8], [7]]))])
        model_input = sent(enrichment, read(enrichment, req), signature(("x", "FP64", (-1, 1))))
        assert model_input.inputs[0].data.tolist() == [[200.0], [100.0]]


# -- missing features: the three policies --------------------------------------------------


def test_reject_names_the_feature_the_entity_and_why(features: FeatureStore) -> None:
    enrichment = Enrichment.build(deployment(), features)
    assert enrichment is not None
    with pytest.raises(InvalidInput) as caught:
        read(enrichment, request(["u1", "u9"]))
    message = caught.value.message
    assert "feature 'user_stats:spend_7d' has no value for user_id='u9'" in message
    assert "NOT_FOUND" in message and "onMissing is reject" in message
    with pytest.raises(InvalidInput, match="merchant_stats:risk.*OUTSIDE_MAX_AGE"):
        read(enrichment, request(["u1"], merchant="m-old"))  # older than the view's ttl


def test_default_serves_the_declared_values_and_logs_the_missing_as_null(
    features: FeatureStore,
) -> None:
    doc = deployment(
        onMissing="default",
        defaults={"spend_7d": 0.0, "user_stats:orders_7d": -1, "risk": 0.5},
    )
    enrichment = Enrichment.build(doc, features)
    assert enrichment is not None
    fetched = read(enrichment, request(["u9", "u1"]))
    assert sent(enrichment, fetched).inputs[0].data.tolist() == [
        [0.0, -1.0, 0.25],
        [30.0, 3.0, 0.25],
    ]
    assert fetched.values["user_stats:spend_7d"] == [None, 30.0]


def test_null_sends_nan_to_a_float_input(features: FeatureStore) -> None:
    enrichment = Enrichment.build(deployment(onMissing="null"), features)
    assert enrichment is not None
    fetched = read(enrichment, request(["u9"], merchant="m-old"))
    row = sent(enrichment, fetched).inputs[0].data.tolist()[0]
    assert all(math.isnan(v) for v in row)


# -- bad requests -------------------------------------------------------------------------


def test_a_missing_key_input_or_parameter_is_a_bad_request(features: FeatureStore) -> None:
    enrichment = Enrichment.build(deployment(), features)
    assert enrichment is not None
    with pytest.raises(InvalidInput, match="join key 'user_id' from input 'user_id'"):
        read(enrichment, InferenceRequest([], parameters={"merchant": "m1"}))
    with pytest.raises(InvalidInput, match="from parameter 'merchant'"):
        read(enrichment, request(["u1"], merchant=None))
    with pytest.raises(InvalidInput, match="expected a string or an integer"):
        read(enrichment, request(["u1"], merchant=True))
    with pytest.raises(InvalidInput, match="not one raw input"):
        enrichment.decode(b"\x00\x00\x80?", 0)


def test_a_key_input_of_the_wrong_datatype_or_shape_is_a_bad_request(
    features: FeatureStore,
) -> None:
    enrichment = Enrichment.build(deployment(), features)
    assert enrichment is not None
    floats = InferenceRequest(
        [Tensor("user_id", Datatype.FP32, (1,), np.array([1.0], dtype=np.float32))],
        parameters={"merchant": "m1"},
    )
    with pytest.raises(InvalidInput, match="is FP32: expected BYTES or INT64"):
        read(enrichment, floats)
    wide = InferenceRequest(
        [Tensor("user_id", Datatype.BYTES, (1, 2), np.array([[b"u1", b"u2"]], dtype=object))],
        parameters={"merchant": "m1"},
    )
    with pytest.raises(InvalidInput, match=r"expected \[N\] or \[N, 1\]"):
        read(enrichment, wide)
    bad_text = request(["u1"])
    bad_text.inputs[0].data[0] = b"\xff"
    with pytest.raises(InvalidInput, match="not UTF-8"):
        read(enrichment, bad_text)


# -- what cannot be served, refused when the route is built ---------------------------------


def test_features_need_a_feature_store_that_knows_them(
    features: FeatureStore, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="MODELPORT_FEATURES__ONLINE_STORE"):
        Enrichment.build(deployment(), None)
    with pytest.raises(ConfigError, match="no online feature store: set features.online_store"):
        Enrichment.build(deployment(), FeatureStore(write_features(tmp_path)))
    with pytest.raises(ConfigError, match="feature view 'nope' does not exist"):
        Enrichment.build(deployment(features=["nope:x"]), features)
    with pytest.raises(ConfigError, match="feature 'nope' in view 'user_stats' does not exist"):
        Enrichment.build(deployment(features=["user_stats:nope"]), features)
    with pytest.raises(ConfigError, match="keyed by \\['merchant_id'\\].*does not declare"):
        Enrichment.build(
            deployment(entities=[{"joinKey": "user_id", "input": "user_id"}]), features
        )
    assert Enrichment.build(parse_deployment(_plain()), features) is None


def _plain() -> dict[str, Any]:
    doc = enriched_document()
    del doc["spec"]["features"]
    return doc


@pytest.mark.parametrize(
    ("sig", "options", "expected"),
    [
        (signature(("input", "FP32", (-1, 2))), {}, r"expected \[N, 3\]"),
        (signature(("input", "FP32", (-1,))), {}, r"expected \[N, 3\]"),
        (
            signature(("a", "FP32", (-1, 3)), ("b", "FP32", (-1, 3))),
            {},
            "model has 2 inputs not named like a feature.*spec.features.input",
        ),
        (signature(("a", "FP32", (-1, 3))), {"input": "b"}, "'b', which is not an input"),
        (signature(("input", "INT64", (-1, 3))), {"onMissing": "null"}, "needs a float input"),
        (
            signature(("input", "FP32", (-1, 3))),
            {"features": ["user_stats:segment", "user_stats:spend_7d", "merchant_stats:risk"]},
            "cannot hold feature 'user_stats:segment' of type String",
        ),
        (signature(("input", "BYTES", (-1, 3))), {}, "cannot hold feature 'user_stats:spend_7d'"),
        (
            signature(("input", "INT64", (-1, 3))),
            {"onMissing": "default", "defaults": {"spend_7d": 0.5, "orders_7d": 0, "risk": 0}},
            "cannot hold the default 0.5",
        ),
        (
            signature(("spend_7d", "FP32", (-1, 2))),
            {"features": ["user_stats:spend_7d"]},
            r"expected \[N\] or \[N, 1\]",
        ),
    ],
)
def test_features_that_do_not_fit_the_signature_are_refused(
    features: FeatureStore, sig: Signature, options: dict[str, Any], expected: str
) -> None:
    enrichment = Enrichment.build(deployment(**options), features)
    assert enrichment is not None
    with pytest.raises(ConfigError, match="spec.features does not fit fraud@1: " + ".*" + expected):
        enrichment.assembly(sig, "fraud", "1")


def test_a_version_without_a_signature_cannot_be_enriched(features: FeatureStore) -> None:
    enrichment = Enrichment.build(deployment(), features)
    assert enrichment is not None
    with pytest.raises(ConfigError, match="has no signature"):
        enrichment.assembly(None, "fraud", "1")


def test_a_view_deleted_since_the_route_was_built_makes_requests_unavailable(
    features: FeatureStore,
) -> None:
    enrichment = Enrichment.build(deployment(features=["merchant_stats:risk"]), features)
    assert enrichment is not None
    features.delete("FeatureView", "merchant_stats")
    with pytest.raises(ServiceUnavailable, match="cannot be served: feature view 'merchant_stats'"):
        read(enrichment, request(["u1"]))
