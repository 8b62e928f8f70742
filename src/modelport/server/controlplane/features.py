"""The feature store over the control plane's REST API: request bodies in, JSON answers out.

The definition resources (``/v1/entities``, ``/v1/featureviews``, ``/v1/featureservices``)
take the same documents as ``modelport apply -f``; :func:`check_kinds` holds each path to its
own kind. The actions take JSON objects, parsed here into plain values before anything is
read or written, so a bad body is a 400 naming the field and what was expected:

- :func:`parse_online` reads ``POST /v1/features/online`` (Feast's ``/get-online-features``
  with the platform's camelCase names), and :func:`online_reply` answers in Feast's column
  shape (``metadata.feature_names`` and one ``results`` entry per column) or, with
  ``"format": "rows"``, one object per entity row;
- :func:`parse_materialize` reads ``POST /v1/features/materialize``;
- :func:`parse_push` reads ``POST /v1/features/push`` (Feast's ``/push``, camelCase), and
  :func:`push_columns` turns the ISO 8601 strings of its time columns into instants.

:data:`FEATURE_SCHEMAS` are the OpenAPI schemas of these bodies and answers.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

from modelport.core.documents import Document
from modelport.core.errors import InvalidInput
from modelport.features import FeatureView, OnlineResponse, PushSource, UnixTimestamp
from modelport.features.documents import DefinitionKind, document_kind

__all__ = [
    "FEATURE_SCHEMAS",
    "MAX_ONLINE_ENTITIES",
    "MAX_PUSH_ROWS",
    "MaterializeQuery",
    "OnlineQuery",
    "PushQuery",
    "check_kinds",
    "online_reply",
    "parse_materialize",
    "parse_online",
    "parse_push",
    "push_columns",
]

MAX_ONLINE_ENTITIES: Final = 10_000
"""Most entity rows one online read may ask for; a bigger read is refused (split it)."""
MAX_PUSH_ROWS: Final = 10_000
"""Most rows one push may send; a bigger push is refused (split it)."""

Orientation = Literal["columns", "rows"]
JoinKey = str | int

_PLURAL: Final[dict[str, str]] = {
    "Entity": "entities",
    "FeatureView": "featureviews",
    "FeatureService": "featureservices",
}
_ONLINE_FIELDS: Final = (
    "features", "featureService", "entities", "entityRows", "fullFeatureNames", "format",
)  # fmt: skip
_MATERIALIZE_FIELDS: Final = ("start", "end", "views")
_PUSH_FIELDS: Final = ("pushSourceName", "df", "to")
_PUSH_MODES: Final = ("online", "offline", "online_and_offline")
_FEAST_SPELLINGS: Final = {
    "push_source_name": "pushSourceName",
    "feature_service": "featureService",
    "entity_rows": "entityRows",
    "full_feature_names": "fullFeatureNames",
}


def check_kinds(documents: Sequence[Document], kind: DefinitionKind) -> None:
    """Refuse documents that are not of the path's kind (each kind has its own path).

    Raises:
        InvalidInput: A document is not a feature definition, or is one of another kind (the
            message names the path that takes it).
    """
    for number, document in enumerate(documents, start=1):
        given = document_kind(document, number)
        if given != kind:
            raise InvalidInput(
                f"document {number} is a {given}; /v1/{_PLURAL[kind]} takes {kind} documents: "
                f"send it to /v1/{_PLURAL[given]}"
            )


@dataclass(frozen=True, slots=True)
class OnlineQuery:
    """An online read, checked.

    Attributes:
        features: ``view:feature`` references, or ``None`` when a service is named.
        service: The feature service's name, or ``None``.
        entities: Join key -> one value per entity row (every column as long).
        rows: How many entity rows.
        full_feature_names: Name feature columns ``view__feature``.
        orientation: ``columns`` (Feast's shape) or ``rows``.
    """

    features: tuple[str, ...] | None
    service: str | None
    entities: dict[str, Sequence[JoinKey]]
    rows: int
    full_feature_names: bool
    orientation: Orientation

    def views(self) -> list[str]:
        """The views the references name, in order, once each (empty for a service)."""
        return list(dict.fromkeys(ref.partition(":")[0] for ref in self.features or ()))


@dataclass(frozen=True, slots=True)
class MaterializeQuery:
    """A materialisation, checked: ``start`` ``None`` continues each view where it ended."""

    start: datetime | None
    end: datetime
    views: tuple[str, ...] | None


def read_object(body: bytes, content_type: str | None, what: str) -> dict[str, Any]:
    """The JSON object of an action's body; an empty body is ``{}``.

    Raises:
        InvalidInput: Another content type than JSON, not valid JSON, or not an object.
    """
    media = (content_type or "").partition(";")[0].strip().lower()
    if media and media != "application/json":
        raise InvalidInput(
            f"Content-Type {content_type!r} is not accepted by {what}; send application/json"
        )
    if not body.strip():
        return {}
    try:
        loaded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{what}: the body is not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise InvalidInput(f"{what}: the body is a {_json_type(loaded)}; expected a JSON object")
    return loaded


def parse_online(
    body: bytes, content_type: str | None, max_rows: int = MAX_ONLINE_ENTITIES
) -> OnlineQuery:
    """Check the body of ``POST /v1/features/online``.

    Args:
        body: The request body.
        content_type: Its ``Content-Type``; ``None`` is read as JSON.
        max_rows: Most entity rows accepted.

    Raises:
        InvalidInput: An unknown field, neither or both of ``features`` and ``featureService``
            (or of ``entities`` and ``entityRows``), an empty list, a malformed reference, a
            join-key value that is not a string or an integer, columns of different lengths,
            or more than ``max_rows`` rows.
    """
    what = "POST /v1/features/online"
    given = read_object(body, content_type, what)
    _only(given, _ONLINE_FIELDS, what)
    features, service = given.get("features"), given.get("featureService")
    if (features is None) == (service is None):
        raise InvalidInput(
            f"{what}: give features (['view:feature', ...]) or featureService (a name), one of them"
        )
    refs = None if features is None else _references(features)
    if service is not None and (not isinstance(service, str) or not service):
        raise InvalidInput(f"featureService is {service!r}: expected a feature service's name")
    columns, rows = _entities(given.get("entities"), given.get("entityRows"), what)
    if rows > max_rows:
        raise InvalidInput(
            f"{rows} entity rows: at most {max_rows} per online read; split the read"
        )
    full = given.get("fullFeatureNames", False)
    if not isinstance(full, bool):
        raise InvalidInput(f"fullFeatureNames is {full!r}: expected true or false")
    orientation = given.get("format", "columns")
    if orientation not in ("columns", "rows"):
        raise InvalidInput(f"format is {orientation!r}: expected 'columns' or 'rows'")
    entities: dict[str, Sequence[JoinKey]] = dict(columns)
    return OnlineQuery(refs, service, entities, rows, full, orientation)


def _references(features: object) -> tuple[str, ...]:
    if not isinstance(features, list) or not features:
        raise InvalidInput(
            f"features is {features!r}: expected a non-empty list of 'view:feature' references"
        )
    for number, ref in enumerate(features):
        view, sep, name = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        if not (view and sep and name) or ":" in name:
            raise InvalidInput(f"features[{number}] is {ref!r}: expected 'view:feature'")
    return tuple(features)


def _entities(columns: object, rows: object, what: str) -> tuple[dict[str, list[JoinKey]], int]:
    if (columns is None) == (rows is None):
        raise InvalidInput(
            f"{what}: give entities ({{'user_id': [1, 2]}}) or entityRows "
            "([{'user_id': 1}, {'user_id': 2}]), one of them"
        )
    return _entity_columns(columns) if columns is not None else _entity_rows(rows)


def _entity_columns(columns: object) -> tuple[dict[str, list[JoinKey]], int]:
    """The column-oriented ``entities``: join key -> values."""
    if not isinstance(columns, dict) or not columns:
        raise InvalidInput(
            f"entities is {columns!r}: expected join key -> list of values, such as "
            "{'user_id': [1, 2]}"
        )
    out: dict[str, list[JoinKey]] = {}
    for key, values in columns.items():
        if not isinstance(values, list) or not values:
            raise InvalidInput(f"entities.{key} is {values!r}: expected a non-empty list of values")
        out[key] = [_join_value(v, f"entities.{key}[{i}]") for i, v in enumerate(values)]
    lengths = {key: len(values) for key, values in out.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidInput(
            f"entities: every join key needs as many values as the others, got {lengths}"
        )
    return out, next(iter(lengths.values()))


def _entity_rows(rows: object) -> tuple[dict[str, list[JoinKey]], int]:
    """The row-oriented ``entityRows``: one object of join keys per entity, as columns."""
    if not isinstance(rows, list) or not rows:
        raise InvalidInput(
            f"entityRows is {rows!r}: expected a non-empty list of objects such as "
            "[{'user_id': 1}]"
        )
    keys: list[str] = []
    out: dict[str, list[JoinKey]] = {}
    for number, row in enumerate(rows):
        if not isinstance(row, dict) or not row:
            raise InvalidInput(
                f"entityRows[{number}] is {row!r}: expected an object of join keys, such as "
                "{'user_id': 1}"
            )
        if number == 0:
            keys = list(row)
            out = {key: [] for key in keys}
        elif set(row) != set(keys):
            raise InvalidInput(
                f"entityRows[{number}] has the keys {sorted(row)}; expected those of "
                f"entityRows[0], {sorted(keys)}"
            )
        for key in keys:
            out[key].append(_join_value(row[key], f"entityRows[{number}].{key}"))
    return out, len(rows)


def _join_value(value: object, where: str) -> JoinKey:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise InvalidInput(f"{where} is {value!r}: join-key values must be strings or integers")


def online_reply(response: OnlineResponse, orientation: Orientation) -> dict[str, Any]:
    """An online read as the API answers it (see :data:`FEATURE_SCHEMAS`, ``OnlineFeatures``).

    The entity columns come first, with status ``PRESENT``, then the features in the order
    asked for, as Feast's feature server answers; in the column shape each result also has the
    event time of each value's row (``event_timestamps``, null for entity columns and entities
    without a row). Timestamps are ISO 8601 strings (UTC) and bytes base64.
    """
    data = response.to_dict()
    names = list(data)
    count = len(next(iter(data.values()))) if data else 0
    statuses = {
        name: (
            [s.name for s in response.statuses[name]]
            if name in response.statuses
            else ["PRESENT"] * count
        )
        for name in names
    }
    values = {name: [_json_value(v) for v in column] for name, column in data.items()}
    metadata = {"feature_names": names}
    if orientation == "rows":
        return {
            "metadata": metadata,
            "rows": [
                {
                    "values": {name: values[name][row] for name in names},
                    "statuses": {name: statuses[name][row] for name in names},
                }
                for row in range(count)
            ],
        }
    times = {
        name: [None if t is None else _json_value(t) for t in column]
        for name, column in response.event_timestamps.items()
    }
    return {
        "metadata": metadata,
        "results": [
            {
                "values": values[name],
                "statuses": statuses[name],
                "event_timestamps": times.get(name, [None] * count),
            }
            for name in names
        ],
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def parse_materialize(body: bytes, content_type: str | None, now: datetime) -> MaterializeQuery:
    """Check the body of ``POST /v1/features/materialize`` (empty: every view, up to now).

    Args:
        body: The request body.
        content_type: Its ``Content-Type``; ``None`` is read as JSON.
        now: The default ``end``.

    Raises:
        InvalidInput: An unknown field, a time that is not ISO 8601, or ``views`` that is not
            a non-empty list of distinct names.
    """
    what = "POST /v1/features/materialize"
    given = read_object(body, content_type, what)
    _only(given, _MATERIALIZE_FIELDS, what)
    start = _instant(given.get("start"), "start")
    end = _instant(given.get("end"), "end") or now
    views = given.get("views")
    if views is not None:
        if (
            not isinstance(views, list)
            or not views
            or not all(isinstance(v, str) and v for v in views)
            or len(set(views)) != len(views)
        ):
            raise InvalidInput(
                f"views is {views!r}: expected a non-empty list of distinct feature view names, "
                "or null for every online view"
            )
        views = tuple(views)
    return MaterializeQuery(start, end, views)


@dataclass(frozen=True, slots=True)
class PushQuery:
    """A push, checked: the rows as columns (every one as long), and where they go."""

    source: str
    columns: dict[str, list[Any]]
    rows: int
    to: str


def parse_push(body: bytes, content_type: str | None, max_rows: int = MAX_PUSH_ROWS) -> PushQuery:
    """Check the body of ``POST /v1/features/push``.

    Raises:
        InvalidInput: An unknown field, no push source name, ``df`` that is not an object of
            equally long non-empty lists, more than ``max_rows`` rows, or an unknown ``to``.
    """
    what = "POST /v1/features/push"
    given = read_object(body, content_type, what)
    _only(given, _PUSH_FIELDS, what)
    source = given.get("pushSourceName")
    if not isinstance(source, str) or not source:
        raise InvalidInput(f"pushSourceName is {source!r}: expected a push source's name")
    df = given.get("df")
    if not isinstance(df, dict) or not df:
        raise InvalidInput(
            f"df is {df!r}: expected column -> list of values, such as "
            "{'user_id': [1], 'event_timestamp': ['2026-12-01T00:00:00Z'], 'spend': [3.5]}"
        )
    for name, values in df.items():
        if not isinstance(values, list) or not values:
            raise InvalidInput(f"df.{name} is {values!r}: expected a non-empty list of values")
    lengths = {name: len(values) for name, values in df.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidInput(f"df: every column needs as many values as the others, got {lengths}")
    rows = next(iter(lengths.values()))
    if rows > max_rows:
        raise InvalidInput(f"{rows} rows: at most {max_rows} per push; split the push")
    to = given.get("to", "online")
    if to not in _PUSH_MODES:
        raise InvalidInput(f"to is {to!r}: expected one of {', '.join(_PUSH_MODES)}")
    return PushQuery(source, dict(df), rows, to)


def push_columns(query: PushQuery, views: Iterable[FeatureView]) -> dict[str, list[Any]]:
    """The pushed columns, with the time columns' ISO 8601 strings read as instants.

    The time columns are the push source's event and created times and the views'
    ``UnixTimestamp`` features; JSON has no time type, so they arrive as strings.

    Raises:
        InvalidInput: A value of a time column is not an ISO 8601 time (or null).
    """
    times: set[str] = set()
    for view in views:
        if isinstance(view.source, PushSource):
            batch = view.source.batch_source
            times |= {batch.timestamp_field, batch.created_timestamp_column}
        times |= {f.name for f in view.features if f.dtype is UnixTimestamp}
    return {
        name: (
            [_instant(v, f"df.{name}[{i}]") for i, v in enumerate(values)]
            if name in times
            else values
        )
        for name, values in query.columns.items()
    }


def _instant(value: object, field: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        if not isinstance(value, str):
            raise ValueError
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field} is {value!r}: expected an ISO 8601 time such as 2026-12-01T00:00:00Z"
        ) from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _only(given: Mapping[str, Any], accepted: Sequence[str], what: str) -> None:
    for key in given:
        if key not in accepted:
            hint = _FEAST_SPELLINGS.get(key)
            also = f" (did you mean {hint!r}?)" if hint in accepted else ""
            raise InvalidInput(
                f"{what}: unknown field {key!r}{also}; expected {', '.join(accepted)}"
            )


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


# -- OpenAPI schemas -----------------------------------------------------------------------------

Schema = dict[str, Any]

_STRING: Final[Schema] = {"type": "string"}
_NAME: Final[Schema] = {"type": "string", "minLength": 1}
_TIME: Final[Schema] = {"type": "string", "format": "date-time"}
_LABELS: Final[Schema] = {"type": "object", "additionalProperties": _STRING}
_SCALAR: Final[Schema] = {
    "nullable": True,
    "description": "A number, string or boolean; a timestamp as ISO 8601, bytes as base64.",
}
_STATUS: Final[Schema] = {
    "type": "string",
    "enum": ["PRESENT", "NOT_FOUND", "NULL_VALUE", "OUTSIDE_MAX_AGE"],
}
_JOIN_KEY: Final[Schema] = {
    "description": "A join-key value: a string or an integer.",
    "oneOf": [{"type": "string"}, {"type": "integer"}],
}


def _document(kind: str, spec: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"type": "string", "enum": ["modelport.io/v1"]},
            "kind": {"type": "string", "enum": [kind]},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": _NAME, "labels": _LABELS},
            },
            "spec": spec,
        },
    }


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _listing(key: str) -> Schema:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": _ref("StoredFeatureDefinition")}},
    }


FEATURE_SCHEMAS: Final[dict[str, Schema]] = {
    "Entity": _document(
        "Entity",
        {
            "type": "object",
            "required": ["joinKeys"],
            "properties": {
                "joinKeys": {"type": "array", "items": _NAME, "minItems": 1},
                "description": _STRING,
                "tags": _LABELS,
            },
        },
    ),
    "FeatureView": _document(
        "FeatureView",
        {
            "type": "object",
            "required": ["entities", "schema", "source"],
            "properties": {
                "entities": {"type": "array", "items": _NAME, "minItems": 1},
                "schema": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "dtype"],
                        "properties": {
                            "name": _NAME,
                            "dtype": {
                                "type": "string",
                                "enum": [
                                    "Int32", "Int64", "Float32", "Float64", "String", "Bool",
                                    "Bytes", "UnixTimestamp",
                                ],
                            },
                            "description": _STRING,
                            "tags": _LABELS,
                        },
                    },
                },
                "source": {
                    "type": "object",
                    "description": "Where the rows come from: `file` (Parquet or CSV).",
                    "properties": {
                        "file": {
                            "type": "object",
                            "required": ["path", "timestampField"],
                            "properties": {
                                "path": _NAME,
                                "timestampField": _NAME,
                                "createdTimestampColumn": _STRING,
                                "fileFormat": {"type": "string", "enum": ["parquet", "csv"]},
                            },
                        }
                    },
                },
                "ttl": {
                    "description": "How long a value stays valid: seconds or `2d`, `12h`; 0 "
                    "never expires.",
                    "oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
                },
                "online": {"type": "boolean"},
                "description": _STRING,
                "tags": _LABELS,
            },
        },
    ),
    "FeatureService": _document(
        "FeatureService",
        {
            "type": "object",
            "required": ["features"],
            "properties": {
                "features": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["view"],
                        "properties": {
                            "view": _NAME,
                            "features": {
                                "type": "array",
                                "items": _NAME,
                                "description": "The view's features to use; all when absent.",
                            },
                        },
                    },
                },
                "description": _STRING,
                "tags": _LABELS,
            },
        },
    ),
    "StoredFeatureDefinition": {
        "type": "object",
        "required": [
            "kind", "name", "generation", "createdAt", "createdBy", "updatedAt", "updatedBy",
            "document",
        ],
        "properties": {
            "kind": {"type": "string", "enum": ["Entity", "FeatureView", "FeatureService"]},
            "name": _NAME,
            "generation": {"type": "integer", "minimum": 1},
            "createdAt": _TIME,
            "createdBy": _STRING,
            "updatedAt": _TIME,
            "updatedBy": _STRING,
            "document": {
                "description": "The document as stored (defaults filled in).",
                "oneOf": [_ref("Entity"), _ref("FeatureView"), _ref("FeatureService")],
            },
        },
    },
    "AppliedFeatureDefinitions": {
        "type": "object",
        "required": ["applied"],
        "properties": {
            "applied": {
                "type": "array",
                "items": {
                    "allOf": [
                        _ref("StoredFeatureDefinition"),
                        {
                            "type": "object",
                            "required": ["created", "changed"],
                            "properties": {
                                "created": {"type": "boolean"},
                                "changed": {
                                    "type": "boolean",
                                    "description": "False when the same document was stored "
                                    "already: the generation is kept.",
                                },
                            },
                        },
                    ]
                },
            }
        },
    },
    "EntityList": _listing("entities"),
    "FeatureViewList": _listing("featureViews"),
    "FeatureServiceList": _listing("featureServices"),
    "OnlineRequest": {
        "type": "object",
        "description": "Give `features` or `featureService`, and `entities` (columns) or "
        f"`entityRows` (rows); at most {MAX_ONLINE_ENTITIES} entity rows.",
        "properties": {
            "features": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "pattern": "^[^:]+:[^:]+$"},
                "description": "`view:feature` references.",
            },
            "featureService": _NAME,
            "entities": {
                "type": "object",
                "description": "Join key -> one value per entity row, such as "
                '`{"user_id": [1, 2]}`.',
                "additionalProperties": {"type": "array", "minItems": 1, "items": _JOIN_KEY},
            },
            "entityRows": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_ONLINE_ENTITIES,
                "description": 'One object of join keys per entity, such as `[{"user_id": 1}]`.',
                "items": {"type": "object", "additionalProperties": _JOIN_KEY},
            },
            "fullFeatureNames": {
                "type": "boolean",
                "default": False,
                "description": "Name feature columns `view__feature` instead of `feature`.",
            },
            "format": {
                "type": "string",
                "enum": ["columns", "rows"],
                "default": "columns",
                "description": "`columns`: Feast's shape (`results`); `rows`: one object per "
                "entity row (`rows`).",
            },
        },
    },
    "OnlineFeatures": {
        "type": "object",
        "description": "`metadata.feature_names` are the entity columns, then the features in "
        "the order asked for. `columns` (Feast's `/get-online-features` shape): `results` has "
        "one entry per name, each with a value and a status per entity row. `rows`: `rows` has "
        "one entry per entity row, with its values and statuses by name. Entity columns have "
        "status PRESENT; a feature's status is PRESENT, NOT_FOUND (no row for the entity), "
        "NULL_VALUE (a stored null) or OUTSIDE_MAX_AGE (older than the view's ttl; the value "
        "is null).",
        "required": ["metadata"],
        "properties": {
            "metadata": {
                "type": "object",
                "required": ["feature_names"],
                "properties": {"feature_names": {"type": "array", "items": _STRING}},
            },
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["values", "statuses", "event_timestamps"],
                    "properties": {
                        "values": {"type": "array", "items": _SCALAR},
                        "statuses": {"type": "array", "items": _STATUS},
                        "event_timestamps": {
                            "type": "array",
                            "items": {"type": "string", "format": "date-time", "nullable": True},
                            "description": "The event time of each value's row; null for "
                            "entity columns and entities without a row.",
                        },
                    },
                },
            },
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["values", "statuses"],
                    "properties": {
                        "values": {"type": "object", "additionalProperties": _SCALAR},
                        "statuses": {"type": "object", "additionalProperties": _STATUS},
                    },
                },
            },
        },
    },
    "MaterializeRequest": {
        "type": "object",
        "description": "Every field may be left out: an empty body materialises every online "
        "view incrementally up to now. Times without a zone are UTC.",
        "properties": {
            "start": {
                **_TIME,
                "nullable": True,
                "description": "The window's first instant; null: each view from where its "
                "last materialisation ended (or end - ttl the first time).",
            },
            "end": {**_TIME, "nullable": True, "description": "The last instant; default now."},
            "views": {
                "type": "array",
                "items": _NAME,
                "minItems": 1,
                "nullable": True,
                "description": "The views; null: every online view.",
            },
        },
    },
    "PushRequest": {
        "type": "object",
        "required": ["pushSourceName", "df"],
        "properties": {
            "pushSourceName": _NAME,
            "df": {
                "type": "object",
                "description": "Column -> one value per row (at most "
                f"{MAX_PUSH_ROWS} rows): the views' join keys, the batch source's event time "
                "(and created time) as ISO 8601 strings, and the features.",
                "additionalProperties": {"type": "array", "minItems": 1, "items": _SCALAR},
            },
            "to": {
                "type": "string",
                "enum": list(_PUSH_MODES),
                "default": "online",
                "description": "The online store, the batch source (for training and later "
                "materialisation), or both.",
            },
        },
    },
    "PushSummary": {
        "type": "object",
        "required": ["pushSourceName", "to", "rows", "applied", "offline"],
        "properties": {
            "pushSourceName": _NAME,
            "to": {"type": "string", "enum": list(_PUSH_MODES)},
            "rows": {"type": "integer", "minimum": 0},
            "applied": {
                "type": "object",
                "description": "Per online view, the rows the online store took (newer than "
                "what it held).",
                "additionalProperties": {"type": "integer", "minimum": 0},
            },
            "offline": {
                "type": "string",
                "nullable": True,
                "description": "Where the rows were appended (a new Parquet file, or a "
                "table); null for an online push.",
            },
        },
    },
    "MaterializeSummary": {
        "type": "object",
        "required": ["end", "views"],
        "properties": {
            "end": _TIME,
            "views": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["start", "rows", "applied"],
                    "properties": {
                        "start": {**_TIME, "nullable": True},
                        "rows": {"type": "integer", "minimum": 0},
                        "applied": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Rows newer than what the online store held.",
                        },
                    },
                },
            },
        },
    },
}  # fmt: skip
"""The OpenAPI schemas of the feature store's routes."""
