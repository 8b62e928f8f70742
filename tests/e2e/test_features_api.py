"""The feature store's REST API on ``modelport controlplane``, a real process on a loopback port.

One control plane (authentication on, a SQLite metadata database in a temporary home) serves
the module's tests, in order: definitions are applied by PUT (JSON and YAML) and POST, read and
listed; a Parquet source the test writes is materialised; online reads in both orientations
equal the offline store's point-in-time answer at the same instant; bad requests are 4xx naming
what was expected; every change is in the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.core.errors import InvalidInput
from modelport.core.settings import Settings
from modelport.features import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float64,
    PushSource,
    UnixTimestamp,
)
from modelport.security.identity import parse_grants
from modelport.server.controlplane.features import parse_push, push_columns
from modelport.service.wiring import open_security_store
from tests.e2e._cli import modelport
from tests.e2e.test_controlplane import ControlPlane

pytestmark = pytest.mark.slow

NOW = datetime.now(UTC).replace(microsecond=0)

ENTITY: dict[str, Any] = {
    "apiVersion": "modelport.io/v1",
    "kind": "Entity",
    "metadata": {"name": "user"},
    "spec": {"joinKeys": ["user_id"]},
}

VIEW_YAML = """\
apiVersion: modelport.io/v1
kind: FeatureView
metadata: {{name: user_stats}}
spec:
  entities: [user]
  schema:
    - {{name: spend, dtype: Float64}}
    - {{name: orders, dtype: Int64}}
  source:
    file: {{path: {path}, timestampField: event_timestamp}}
  ttl: 7d
"""

SERVICE_YAML = """\
apiVersion: modelport.io/v1
kind: FeatureService
metadata: {name: risk}
spec:
  features:
    - {view: user_stats, features: [spend]}
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    # User 1: two rows, the newer wins; user 2: one row; user 3: older than the 7-day ttl.
    pq.write_table(
        pa.table(
            {
                "user_id": [1, 1, 2, 3],
                "event_timestamp": [
                    NOW - timedelta(hours=3),
                    NOW - timedelta(hours=1),
                    NOW - timedelta(hours=2),
                    NOW - timedelta(days=40),
                ],
                "spend": [10.0, 30.0, 5.0, 99.0],
                "orders": [1, 3, 1, 9],
            }
        ),
        home / "user_stats.parquet",
    )
    return home


@pytest.fixture(scope="module")
def keys(home: Path) -> dict[str, dict[str, str]]:
    made = {}
    with open_security_store(Settings(home=home)) as store:
        # "scoped" deploys only what is named fraud-*, and sees only that.
        for role, grants in [
            ("deployer", ["deployer"]),
            ("viewer", ["viewer"]),
            ("scoped", ["deployer:fraud-*"]),
        ]:
            record, token = store.create_key(role, parse_grants(grants), None, "tests")
            made[role] = {"authorization": f"Bearer {token}", "key": f"key:{record.key_id}"}
    return made


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(home)
    yield plane
    assert plane.stop() == 0, "".join(plane.stderr)


@pytest.fixture(scope="module")
def client(server: ControlPlane, keys: dict[str, dict[str, str]]) -> Iterator[httpx.Client]:
    headers = {"authorization": keys["deployer"]["authorization"]}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as opened:
        yield opened


@pytest.fixture(scope="module")
def viewer(server: ControlPlane, keys: dict[str, dict[str, str]]) -> Iterator[httpx.Client]:
    headers = {"authorization": keys["viewer"]["authorization"]}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as opened:
        yield opened


def applied(reply: httpx.Response) -> list[tuple[str, str, int, bool, bool]]:
    assert reply.status_code == 200, reply.text
    return [
        (a["kind"], a["name"], a["generation"], a["created"], a["changed"])
        for a in reply.json()["applied"]
    ]


def test_apply_by_put_and_post_then_read_and_list(
    client: httpx.Client, home: Path, keys: dict[str, dict[str, str]]
) -> None:
    assert applied(client.put("/v1/entities/user", json=ENTITY)) == [
        ("Entity", "user", 1, True, True)
    ]
    view = VIEW_YAML.format(path=home / "user_stats.parquet")
    yaml = {"content-type": "application/yaml"}
    put = client.put("/v1/featureviews/user_stats", content=view, headers=yaml)
    assert applied(put) == [("FeatureView", "user_stats", 1, True, True)]
    # The same documents again change nothing and keep the generation.
    assert applied(client.put("/v1/entities/user", json=ENTITY)) == [
        ("Entity", "user", 1, False, False)
    ]
    again = client.put("/v1/featureviews/user_stats", content=view, headers=yaml)
    assert applied(again) == [("FeatureView", "user_stats", 1, False, False)]
    posted = client.post("/v1/featureservices", content=SERVICE_YAML, headers=yaml)
    assert applied(posted) == [("FeatureService", "risk", 1, True, True)]

    listed = client.get("/v1/featureviews").json()
    assert [(v["name"], v["generation"]) for v in listed["featureViews"]] == [("user_stats", 1)]
    assert [e["name"] for e in client.get("/v1/entities").json()["entities"]] == ["user"]
    assert [s["name"] for s in client.get("/v1/featureservices").json()["featureServices"]] == [
        "risk"
    ]
    shown = client.get("/v1/featureviews/user_stats").json()
    assert shown["kind"] == "FeatureView" and shown["updatedBy"] == keys["deployer"]["key"]
    spec = shown["document"]["spec"]
    assert [f["name"] for f in spec["schema"]] == ["spend", "orders"]
    assert spec["ttl"] == 7 * 86400 and spec["entities"] == ["user"]


def test_materialize_then_incrementally(client: httpx.Client) -> None:
    start, end = (NOW - timedelta(days=60)).isoformat(), NOW.isoformat()
    done = client.post("/v1/features/materialize", json={"start": start, "end": end})
    assert done.status_code == 200, done.text
    assert done.json() == {
        "end": NOW.isoformat(),
        "views": {"user_stats": {"start": start, "rows": 3, "applied": 3}},
    }
    # No start: from where the last run ended; nothing new in the source since.
    more = client.post("/v1/features/materialize", json={"views": ["user_stats"]})
    assert more.status_code == 200, more.text
    part = more.json()["views"]["user_stats"]
    assert (part["start"], part["applied"]) == (NOW.isoformat(), 0)


def offline(home: Path, features: list[str], users: list[int]) -> dict[str, list[Any]]:
    """The offline store's point-in-time answer for ``users`` now."""
    with FeatureStore(registry=Settings(home=home).resolved_database_url()) as store:
        entity_df = pa.table(
            {"user_id": users, "event_timestamp": [datetime.now(UTC)] * len(users)}
        )
        table = store.get_historical_features(entity_df, features).to_arrow()
    return {name: table.column(name).to_pylist() for name in table.column_names}


def test_online_reads_in_columns_and_rows_equal_the_offline_answer(
    client: httpx.Client, viewer: httpx.Client, home: Path
) -> None:
    users = [1, 2, 3, 9]
    features = ["user_stats:spend", "user_stats:orders"]
    # Viewers read: online reads need the viewer role on each view.
    reply = viewer.post(
        "/v1/features/online", json={"features": features, "entities": {"user_id": users}}
    )
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["metadata"] == {"feature_names": ["user_id", "spend", "orders"]}
    user_id, spend, orders = answer["results"]
    assert user_id == {"values": users, "statuses": ["PRESENT"] * 4, "event_timestamps": [None] * 4}
    # Each value's row time, as Feast answers it; the expired row's time says how old it is.
    rows_at = [NOW - timedelta(hours=1), NOW - timedelta(hours=2), NOW - timedelta(days=40)]
    assert spend == {
        "values": [30.0, 5.0, None, None],
        "statuses": ["PRESENT", "PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"],
        "event_timestamps": [t.isoformat() for t in rows_at] + [None],
    }
    assert orders["values"] == [3, 1, None, None]
    expected = offline(home, features, users)
    assert spend["values"] == expected["spend"] and orders["values"] == expected["orders"]

    rows = client.post(
        "/v1/features/online",
        json={
            "featureService": "risk",
            "entityRows": [{"user_id": 2}, {"user_id": 9}],
            "fullFeatureNames": True,
            "format": "rows",
        },
    )
    assert rows.status_code == 200, rows.text
    assert rows.json() == {
        "metadata": {"feature_names": ["user_id", "user_stats__spend"]},
        "rows": [
            {
                "values": {"user_id": 2, "user_stats__spend": 5.0},
                "statuses": {"user_id": "PRESENT", "user_stats__spend": "PRESENT"},
            },
            {
                "values": {"user_id": 9, "user_stats__spend": None},
                "statuses": {"user_id": "PRESENT", "user_stats__spend": "NOT_FOUND"},
            },
        ],
    }


ONLINE = "/v1/features/online"
PUSH = "/v1/features/push"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/v1/featureviews/ghost", None, 404, "no feature view 'ghost'"),
        ("DELETE", "/v1/entities/ghost", None, 404, "no entity 'ghost'"),
        ("DELETE", "/v1/entities/user", None, 409, "used by feature view 'user_stats'"),
        ("DELETE", "/v1/featureviews/user_stats", None, 409, "used by feature service 'risk'"),
        ("PUT", "/v1/entities/user", "kind: Entity\nspec: [\n", 400, "not valid YAML"),
        ("PUT", "/v1/entities/other", ENTITY, 400, "does not match the name in the path"),
        ("POST", "/v1/entities", [ENTITY, ENTITY | {"kind": "FeatureService"}], 400,
         "send it to /v1/featureservices"),
        ("PUT", "/v1/entities/user", {**ENTITY, "spec": {"joinKeys": []}}, 400,
         "spec.joinKeys"),
        ("POST", ONLINE, {"features": ["user_stats:ghost"], "entities": {"user_id": [1]}}, 404,
         "feature 'ghost' in view 'user_stats' does not exist"),
        ("POST", ONLINE, {"features": ["ghost:spend"], "entities": {"user_id": [1]}}, 404,
         "feature view 'ghost' does not exist"),
        ("POST", ONLINE, {"features": ["user_stats:spend"], "entities": {"id": [1]}}, 400,
         "no join key 'user_id', needed by feature view 'user_stats'"),
        ("POST", ONLINE, {"features": ["user_stats:spend"], "entities": {"user_id": [1.5]}},
         400, "entities.user_id[0] is 1.5: join-key values must be strings or integers"),
        ("POST", ONLINE, {"features": ["user_stats:spend"], "entities": {"user_id": []}}, 400,
         "expected a non-empty list"),
        ("POST", ONLINE, {"features": [], "entityRows": [{"user_id": 1}]}, 400,
         "expected a non-empty list of 'view:feature'"),
        ("POST", ONLINE, {"features": ["spend"], "entityRows": [{"user_id": 1}]}, 400,
         "features[0] is 'spend': expected 'view:feature'"),
        ("POST", ONLINE, {"features": ["user_stats:spend"]}, 400, "give entities"),
        ("POST", ONLINE, {"features": ["user_stats:spend"], "entityRows": [{"user_id": 1}],
                          "full_feature_names": True}, 400, "did you mean 'fullFeatureNames'"),
        ("POST", ONLINE, {"features": ["user_stats:spend"],
                          "entities": {"user_id": list(range(10_001))}}, 400,
         "at most 10000 per online read"),
        ("POST", ONLINE, "[1]", 400, "expected a JSON object"),
        ("POST", "/v1/features/materialize", {"start": "yesterday"}, 400,
         "expected an ISO 8601 time"),
        ("POST", "/v1/features/materialize", {"views": ["ghost"]}, 404, "'ghost'"),
        ("POST", PUSH, {"pushSourceName": "ghost", "df": {"user_id": [1]}}, 404,
         "no feature view is fed by push source 'ghost'"),
        ("POST", PUSH, {"push_source_name": "s", "df": {"user_id": [1]}}, 400,
         "did you mean 'pushSourceName'"),
        ("POST", PUSH, {"pushSourceName": "s", "df": {"a": [1], "b": [1, 2]}}, 400,
         "every column needs as many values"),
        ("POST", PUSH, {"pushSourceName": "s", "df": {"a": [1]}, "to": "everywhere"}, 400,
         "expected one of online, offline, online_and_offline"),
        ("POST", PUSH, {"pushSourceName": "s", "df": {}}, 400, "expected column -> list"),
    ],
)  # fmt: skip
def test_bad_requests_are_a_clear_4xx(
    client: httpx.Client, method: str, path: str, body: Any, status: int, message: str
) -> None:
    if body is None:
        reply = client.request(method, path)
    elif isinstance(body, str):
        media = "application/json" if path == ONLINE else "application/yaml"
        reply = client.request(method, path, content=body, headers={"content-type": media})
    else:
        reply = client.request(method, path, json=body)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"], reply.json()["error"]


def test_401_without_a_key_and_403_for_a_viewer_writing(
    server: ControlPlane, viewer: httpx.Client
) -> None:
    assert httpx.get(f"{server.url}/v1/featureviews").status_code == 401
    anonymous = httpx.post(f"{server.url}{ONLINE}", json={})
    assert anonymous.status_code == 401 and "error" in anonymous.json()
    assert viewer.get("/v1/featureviews/user_stats").status_code == 200
    for method, path, body in [
        ("PUT", "/v1/entities/user", ENTITY),
        ("POST", "/v1/entities", [ENTITY]),
        ("DELETE", "/v1/featureservices/risk", None),
        ("POST", "/v1/features/materialize", {}),
        ("POST", "/v1/features/materialize", {"views": ["user_stats"]}),
        ("POST", PUSH, {"pushSourceName": "s", "df": {"user_id": [1]}}),
    ]:
        reply = viewer.request(method, path, json=body)
        assert reply.status_code == 403, (method, path, reply.text)
        assert "needs deployer" in reply.json()["error"]


def test_names_in_bodies_are_authorised_on_each_definition(
    server: ControlPlane, keys: dict[str, dict[str, str]]
) -> None:
    headers = {"authorization": keys["scoped"]["authorization"]}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as scoped:
        assert scoped.get("/v1/entities").json() == {"entities": []}  # user is not fraud-*
        assert scoped.get("/v1/entities/user").status_code == 403
        for path, body in [
            ("/v1/entities", [ENTITY]),
            (ONLINE, {"features": ["user_stats:spend"], "entities": {"user_id": [1]}}),
            (ONLINE, {"featureService": "risk", "entities": {"user_id": [1]}}),
            ("/v1/features/materialize", {"views": ["user_stats"]}),
        ]:
            reply = scoped.post(path, json=body)
            assert reply.status_code == 403, (path, reply.text)
            assert "'user" in reply.json()["error"] and "outside the scope" in reply.json()["error"]
        every = scoped.post("/v1/features/materialize", json={})
        assert every.status_code == 403 and "over '*'" in every.json()["error"]


def test_delete_in_order_and_every_change_is_audited(
    client: httpx.Client, home: Path, keys: dict[str, dict[str, str]]
) -> None:
    removed = client.delete("/v1/featureservices/risk", headers={"x-request-id": "e2e-features"})
    assert removed.status_code == 200 and removed.json()["name"] == "risk"
    assert client.delete("/v1/featureviews/user_stats").status_code == 200
    assert client.delete("/v1/entities/user").status_code == 200
    assert client.get("/v1/featureviews").json() == {"featureViews": []}

    done = modelport(home, "audit", "list", "--action", "features.*", "--json")
    assert done.returncode == 0, done.stderr
    ok = [e for e in json.loads(done.stdout) if e["outcome"] == "ok"]
    assert {e["actor"] for e in ok} == {keys["deployer"]["key"]}
    actions = [(e["action"], e["target"]) for e in ok]
    assert actions[:3] == [
        ("features.apply", "Entity/user"),
        ("features.apply", "FeatureView/user_stats"),
        ("features.apply", "Entity/user"),
    ]
    assert ("features.materialize", "user_stats") in actions
    assert actions[-3:] == [
        ("features.delete", "FeatureService/risk"),
        ("features.delete", "FeatureView/user_stats"),
        ("features.delete", "Entity/user"),
    ]
    assert ok[-3]["request_id"] == "e2e-features"
    assert ok[0]["details"]["Entity/user"]["generation"] == 1


def test_pushed_time_columns_are_read_as_instants() -> None:
    """JSON has no time type: the push source's times and timestamp features come as strings.

    (Pure; here because a view fed by a push source cannot be applied as a document yet.)
    """
    source = PushSource(
        name="stats_push",
        batch_source=FileSource(path="parts/*.parquet", timestamp_field="event_timestamp"),
    )
    view = FeatureView(
        name="stats",
        entities=[Entity(name="user", join_keys=["user_id"])],
        schema=[Field(name="spend", dtype=Float64), Field(name="seen", dtype=UnixTimestamp)],
        source=source,
    )
    df: dict[str, list[Any]] = {
        "user_id": [1, 2],
        "event_timestamp": ["2026-12-01T00:00:00Z", "2026-12-01T01:00:00"],
        "spend": [1.5, 2.0],
        "seen": [None, "2026-11-30T12:00:00+01:00"],
    }
    body = {"pushSourceName": "stats_push", "df": df, "to": "online_and_offline"}
    query = parse_push(json.dumps(body).encode(), "application/json")
    assert (query.source, query.rows, query.to) == ("stats_push", 2, "online_and_offline")
    columns = push_columns(query, [view])
    assert columns["event_timestamp"] == [
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2026, 12, 1, 1, tzinfo=UTC),
    ]
    assert columns["seen"][0] is None
    assert columns["seen"][1] == datetime(2026, 11, 30, 11, tzinfo=UTC)
    assert columns["user_id"] == [1, 2] and columns["spend"] == [1.5, 2.0]
    body["df"] = df | {"event_timestamp": ["soon", "later"]}
    with pytest.raises(InvalidInput, match=r"df.event_timestamp\[0\] is 'soon': expected an ISO"):
        push_columns(parse_push(json.dumps(body).encode(), None), [view])
