"""The control plane's route table and its OpenAPI description.

Every resource lives under ``/v1/{kind-plural}`` (ARCHITECTURE.md section 7): ``GET`` lists,
``GET .../{name}`` reads, ``PUT .../{name}`` applies one document, ``POST`` applies one or more,
``DELETE`` removes. All paths but ``/metrics`` start with ``/v1/``, so ``modelport up`` can
answer them beside the gateway's ``/v2/`` routes on one port by path prefix (and there the
gateway's ``/metrics`` shows the control plane's metrics with everything else). Routing,
authorisation and the document at ``/v1/openapi.json`` all come from :data:`CONTROL_ROUTES`, as
the data plane's come from :data:`~modelport.server.rest.routes.ROUTES`.
"""

from __future__ import annotations

from typing import Any, Final

from modelport.core.alert import AlertRule
from modelport.core.deployment import Deployment
from modelport.core.experiment import Experiment
from modelport.security.rbac import Action
from modelport.server.controlplane.features import (
    FEATURE_SCHEMAS,
    MAX_ONLINE_ENTITIES,
    MAX_PUSH_ROWS,
)
from modelport.server.rest.openapi import model_schemas, openapi_document
from modelport.server.rest.routes import Route, Target

__all__ = ["CONTROL_ROUTES", "control_openapi_document"]

Schema = dict[str, Any]

_JSON: Final = "application/json"
_YAML_TYPES: Final = ("application/yaml", "text/yaml")
_TAGS: Final = (
    "deployments", "experiments", "alertrules", "features", "health", "monitoring", "server",
)  # fmt: skip
_DESCRIPTION: Final = """\
The modelport control plane: declarative resources under `/v1/{kind-plural}`.

`GET /v1/deployments` lists the deployments the caller may see, `GET /v1/deployments/{name}` \
reads one, `PUT /v1/deployments/{name}` creates or replaces one (idempotent: the same document \
again changes nothing and keeps the generation), `POST /v1/deployments` applies one or several \
documents (a JSON list, or a YAML stream with `---` between documents), and `DELETE` removes \
one. Bodies are the same documents as the YAML files of `modelport apply -f`, sent as \
`application/json`, `application/yaml` or `text/yaml`. Every document is validated in full, \
its variants' models must be registered and its replicas must answer before anything is \
written; every change is audited with the actor and the changed fields.

`/v1/experiments` holds experiments the same way (an Experiment document per PUT), and \
`POST /v1/experiments/{name}/pause|resume|abort|promote|acknowledge|evaluate` acts on one; \
`GET /v1/experiments/{name}` shows it with its newest decisions, each with the counts, \
estimates, p-values and thresholds it was taken from. Experiments are authorised on their \
deployment's name.

`/v1/alertrules` holds alert rules the same way (an AlertRule document per PUT; \
`GET /v1/alertrules?deployment=NAME` lists one deployment's). A rule is authorised on the name \
of the deployment it watches, which must exist.

The feature store's definitions are resources too: `/v1/entities`, `/v1/featureviews` and \
`/v1/featureservices` (an Entity, FeatureView or FeatureService document per PUT; each path \
takes documents of its own kind only, so apply entities, then views, then services). A \
definition is authorised on its own name; deleting one that a view or service still uses is \
409. `POST /v1/features/online` reads the latest feature values of entities (Feast's \
`/get-online-features`, camelCase: `features` or `featureService`, `entities` as columns or \
`entityRows` as rows, at most {max_entities} of them; the answer is Feast's column shape, or one \
object per entity with `"format": "rows"`), authorised for the viewer role on each feature \
view read. `POST /v1/features/materialize` copies the newest rows of the online views into \
the online store (`start` null: from where each view's last run ended), authorised for the \
deployer role on each view (on `*` when it names none). `POST /v1/features/push` writes rows \
to the views a push source feeds (Feast's `/push`, camelCase: `pushSourceName`, `df` as \
columns, `to`), authorised for the deployer role on each of those views.

`GET /metrics` is the Prometheus text of the control plane's background jobs (runs, failures, \
last success), of the experiments' last evaluations and of its process (CPU, memory).

Every error answers `{"error": "<message>"}`. Every route except the health probes needs \
`Authorization: Bearer <key>`: reads need the viewer role on the deployment's name, changes \
the deployer role; `/metrics` needs the viewer role over `*` unless \
`security.auth.open_metrics` is on.""".replace("{max_entities}", f"{MAX_ONLINE_ENTITIES:,}")


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _reply(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _error(description: str) -> Schema:
    return _reply(description, _ref("Error"))


def _operation(
    summary: str, tag: str, responses: dict[str, Schema], body: Schema | None = None
) -> Schema:
    operation: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        operation["requestBody"] = body
    return operation


def _documents_body(many: bool, kind: str = "Deployment") -> Schema:
    document = _ref(kind)
    yaml_text: Schema = {
        "type": "string",
        "description": "YAML: "
        + ("one document, or several with `---` between them." if many else "one document."),
    }
    json_schema = {"oneOf": [document, {"type": "array", "items": document}]} if many else document
    content = {_JSON: {"schema": json_schema}}
    content.update({media: {"schema": yaml_text} for media in _YAML_TYPES})
    return {"required": True, "content": content}


_NOT_FOUND: Final = _error("No deployment by that name.")
_APPLY_ERRORS: Final[dict[str, Schema]] = {
    "400": _error(
        "The body is not valid YAML or JSON, a document is not a valid Deployment (the message "
        "names the field), the names disagree, a content type is not accepted, or a replica "
        "does not answer; nothing was written."
    ),
    "404": _error("A variant's model, version or alias is not registered; nothing was written."),
    "409": _error("Another writer created the same deployment at the same moment; apply again."),
    "413": _error("The body is over the control plane's size limit."),
    "503": _error("The audit log cannot be written, so nothing was applied."),
}
_APPLIED: Final = _reply(
    "What each document did: its generation now, whether anything changed, and what.",
    _ref("Applied"),
)

LIST: Final = _operation(
    "Deployments the caller may see",
    "deployments",
    {"200": _reply("Every deployment the caller may see, by name.", _ref("DeploymentList"))},
)
GET: Final = _operation(
    "One deployment",
    "deployments",
    {
        "200": _reply("The stored deployment.", _ref("StoredDeployment")),
        "404": _NOT_FOUND,
    },
)
PUT: Final = _operation(
    "Create or replace a deployment (its metadata.name must be the path's name)",
    "deployments",
    {"200": _APPLIED, **_APPLY_ERRORS},
    _documents_body(many=False),
)
POST: Final = _operation(
    "Apply one or several deployments (all checked before any is written)",
    "deployments",
    {"200": _APPLIED, **_APPLY_ERRORS},
    _documents_body(many=True),
)
DELETE: Final = _operation(
    "Remove a deployment (its variants' models stay registered)",
    "deployments",
    {
        "200": _reply("What was removed.", _ref("StoredDeployment")),
        "404": _NOT_FOUND,
        "503": _error("The audit log cannot be written, so nothing was removed."),
    },
)
LIVE: Final = _operation("Liveness", "health", {"200": _reply("Live.", _ref("Live"))})
READY: Final = _operation(
    "Readiness: the metadata database answers",
    "health",
    {
        "200": _reply("Ready.", _ref("Ready")),
        "503": _reply("The metadata database does not answer.", _ref("Ready")),
    },
)
_EXPERIMENT_NOT_FOUND: Final = _error("No experiment by that name.")
_EXPERIMENT_APPLY_ERRORS: Final[dict[str, Schema]] = {
    "400": _error(
        "The body is not valid YAML or JSON, a document is not a valid Experiment (the message "
        "names the field), or its deployment has no such control or treatment variant; "
        "nothing was written."
    ),
    "404": _error("The experiment's deployment does not exist; nothing was written."),
    "409": _error(
        "The deployment runs another experiment, or the document changes what a stored "
        "experiment compares, or the experiment has ended."
    ),
    "413": _error("The body is over the control plane's size limit."),
    "503": _error("The audit log cannot be written, so nothing was applied."),
}
_EXPERIMENT_APPLIED: Final = _reply(
    "What each document did.", {"type": "object", "properties": {"applied": {"type": "array"}}}
)
LIST_EXPERIMENTS: Final = _operation(
    "Experiments on the deployments the caller may see",
    "experiments",
    {"200": _reply("Every visible experiment, by name.", _ref("ExperimentList"))},
)
GET_EXPERIMENT: Final = _operation(
    "One experiment, with its newest decisions",
    "experiments",
    {
        "200": _reply("The experiment and its decisions.", _ref("StoredExperiment")),
        "404": _EXPERIMENT_NOT_FOUND,
    },
)
PUT_EXPERIMENT: Final = _operation(
    "Start an experiment, or update a running one (its metadata.name must be the path's)",
    "experiments",
    {"200": _EXPERIMENT_APPLIED, **_EXPERIMENT_APPLY_ERRORS},
    _documents_body(many=False, kind="Experiment"),
)
POST_EXPERIMENTS: Final = _operation(
    "Apply one or several experiments (all checked before any is written)",
    "experiments",
    {"200": _EXPERIMENT_APPLIED, **_EXPERIMENT_APPLY_ERRORS},
    _documents_body(many=True, kind="Experiment"),
)
DELETE_EXPERIMENT: Final = _operation(
    "Remove an experiment that has ended, with its decisions",
    "experiments",
    {
        "200": _reply("What was removed.", _ref("StoredExperiment")),
        "404": _EXPERIMENT_NOT_FOUND,
        "409": _error("It still holds its deployment's traffic: abort or promote it first."),
    },
)


def _action_operation(summary: str) -> Schema:
    return _operation(
        summary,
        "experiments",
        {
            "200": _reply("The experiment after the action.", _ref("StoredExperiment")),
            "404": _EXPERIMENT_NOT_FOUND,
            "409": _error("The experiment's status does not allow the action."),
            "503": _error("The audit log cannot be written, so nothing was done."),
        },
    )


_RULE_NOT_FOUND: Final = _error("No alert rule by that name.")
_RULE_APPLY_ERRORS: Final[dict[str, Schema]] = {
    "400": _error(
        "The body is not valid YAML or JSON, a document is not a valid AlertRule (the message "
        "names the field), or the names disagree; nothing was written."
    ),
    "404": _error("The rule's deployment does not exist; nothing was written."),
    "409": _error("Another writer created the same rule at the same moment; apply again."),
    "413": _error("The body is over the control plane's size limit."),
    "503": _error("The audit log cannot be written, so nothing was applied."),
}
_RULE_APPLIED: Final = _reply(
    "What each document did: its generation now, whether anything changed, and what.",
    _ref("Applied"),
)
LIST_RULES: Final = {
    **_operation(
        "Alert rules of the deployments the caller may see",
        "alertrules",
        {"200": _reply("Every visible alert rule, by name.", _ref("AlertRuleList"))},
    ),
    "parameters": [
        {
            "name": "deployment",
            "in": "query",
            "required": False,
            "description": "Only the rules watching this deployment.",
            "schema": {"type": "string"},
        }
    ],
}
GET_RULE: Final = _operation(
    "One alert rule",
    "alertrules",
    {"200": _reply("The stored rule.", _ref("StoredAlertRule")), "404": _RULE_NOT_FOUND},
)
PUT_RULE: Final = _operation(
    "Create or replace an alert rule (its metadata.name must be the path's name)",
    "alertrules",
    {"200": _RULE_APPLIED, **_RULE_APPLY_ERRORS},
    _documents_body(many=False, kind="AlertRule"),
)
POST_RULES: Final = _operation(
    "Apply one or several alert rules (all checked before any is written)",
    "alertrules",
    {"200": _RULE_APPLIED, **_RULE_APPLY_ERRORS},
    _documents_body(many=True, kind="AlertRule"),
)
DELETE_RULE: Final = _operation(
    "Remove an alert rule",
    "alertrules",
    {
        "200": _reply("What was removed.", _ref("StoredAlertRule")),
        "404": _RULE_NOT_FOUND,
        "503": _error("The audit log cannot be written, so nothing was removed."),
    },
)


_FEATURE_APPLIED: Final = _reply(
    "Each definition as now stored, with whether it was created and whether it changed (the "
    "same document again keeps the generation).",
    _ref("AppliedFeatureDefinitions"),
)


def _definition_operations(kind: str, noun: str, listing: str) -> dict[str, Schema]:
    """The five operations of one feature definition kind (``list_``, ``apply``, ``get``...)."""
    not_found = _error(f"No {noun} by that name.")
    apply_errors = {
        "400": _error(
            f"The body is not valid YAML or JSON, a document is not a valid {kind} (the message "
            "names the field), is of another kind (each kind has its own path), or the names "
            "disagree; nothing was written."
        ),
        "403": _error("The caller may not change a definition it names."),
        "404": _error("A name the document uses (an entity, a view) is not applied."),
        "409": _error("Another writer applied the same definition at the same moment; retry."),
        "413": _error("The body is over the control plane's size limit."),
        "503": _error("The audit log cannot be written, so nothing was applied."),
    }
    return {
        "list_": _operation(
            f"Every {noun} the caller may see",
            "features",
            {"200": _reply(f"Every visible {noun}, by name.", _ref(listing))},
        ),
        "apply": _operation(
            f"Apply one or several {kind} documents (all checked before any is written)",
            "features",
            {"200": _FEATURE_APPLIED, **apply_errors},
            _documents_body(many=True, kind=kind),
        ),
        "get": _operation(
            f"One {noun}",
            "features",
            {"200": _reply("The stored definition.", _ref("StoredFeatureDefinition")),
             "404": not_found},
        ),
        "put": _operation(
            f"Create or replace a {noun} (its metadata.name must be the path's name)",
            "features",
            {"200": _FEATURE_APPLIED, **apply_errors},
            _documents_body(many=False, kind=kind),
        ),
        "delete": _operation(
            f"Remove a {noun} nothing uses"
            + (" (its rows in the online store go with it)" if kind == "FeatureView" else ""),
            "features",
            {
                "200": _reply("What was removed.", _ref("StoredFeatureDefinition")),
                "404": not_found,
                "409": _error(f"The {noun} is still used: delete or change its users first."),
                "503": _error("The audit log cannot be written, so nothing was removed."),
            },
        ),
    }  # fmt: skip


def _json_body(schema: str, required: bool = True) -> Schema:
    return {"required": required, "content": {_JSON: {"schema": _ref(schema)}}}


ONLINE: Final = _operation(
    "The latest feature values of entities, from the online store (Feast's /get-online-features)",
    "features",
    {
        "200": _reply("One value and status per entity and name.", _ref("OnlineFeatures")),
        "400": _error(
            "The body is not a valid request (the message names the field and what was "
            f"expected): a malformed reference, a missing join key, a join-key value that is "
            f"not a string or an integer, an empty list, or over {MAX_ONLINE_ENTITIES:,} "
            "entity rows."
        ),
        "403": _error("The caller may not read a feature view the request names."),
        "404": _error("An unknown feature view, feature or feature service."),
        "413": _error("The body is over the control plane's size limit."),
        "503": _error("The online store does not answer."),
    },
    _json_body("OnlineRequest"),
)
MATERIALIZE: Final = _operation(
    "Copy the newest rows of the online feature views into the online store",
    "features",
    {
        "200": _reply(
            "Per view: its window, the rows read and applied.", _ref("MaterializeSummary")
        ),
        "400": _error(
            "A bad body (the message names the field), start after end, a view that is not "
            "online, or a source that does not match its view."
        ),
        "403": _error("The caller may not change a view it names (or every view)."),
        "404": _error("An unknown feature view, or a source file that is missing."),
        "503": _error("The audit log or the online store cannot be written."),
    },
    _json_body("MaterializeRequest", required=False),
)  # fmt: skip
PUSH: Final = _operation(
    "Push rows to the feature views a push source feeds (Feast's /push)",
    "features",
    {
        "200": _reply("What was written.", _ref("PushSummary")),
        "400": _error(
            "A bad body (the message names the field), over "
            f"{MAX_PUSH_ROWS:,} rows, rows that do not fit the views (a missing column, a "
            "wrong type, a null key or time), or a batch source a push cannot append to."
        ),
        "403": _error("The caller may not change a view the push source feeds."),
        "404": _error("No feature view is fed by the push source."),
        "413": _error("The body is over the control plane's size limit."),
        "503": _error("The audit log, the online store or the batch source cannot be written."),
    },
    _json_body("PushRequest"),
)

LIST_ALERTS: Final = {
    **_operation(
        "Firing and pending alerts of the deployments the caller may see",
        "monitoring",
        {
            "200": _reply(
                "Firing, then pending (and with all=true, recently resolved) alerts.",
                _ref("AlertList"),
            ),
            "400": _error("An unknown query parameter, or all is not true or false."),
        },
    ),
    "parameters": [
        {
            "name": "deployment",
            "in": "query",
            "required": False,
            "description": "Only this deployment's alerts.",
            "schema": {"type": "string"},
        },
        {
            "name": "all",
            "in": "query",
            "required": False,
            "description": "Add the alerts resolved in the last 24 hours.",
            "schema": {"type": "boolean"},
        },
    ],
}
OPENAPI: Final = _operation(
    "This document",
    "server",
    {"200": _reply("The OpenAPI description of this API.", {"type": "object"})},
)
METRICS: Final = _operation(
    "Prometheus metrics",
    "monitoring",
    {
        "200": {
            "description": "Prometheus text exposition (jobs, experiments, the process).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        "404": _error("Metrics are off in this server."),
    },
)


def _resource_routes(
    path: str,
    one: str,
    many: str,
    target: Target,
    *,
    list_: Schema,
    apply: Schema,
    get: Schema,
    put: Schema,
    delete: Schema,
) -> tuple[Route, ...]:
    """A resource kind's five routes, in matching order, each with its OpenAPI operation.

    ``GET`` (``list_{many}``) and ``POST`` (``apply_{many}``) on ``path``; ``GET``
    (``get_{one}``), ``PUT`` (``put_{one}``) and ``DELETE`` (``delete_{one}``) on
    ``path/{name}``. The names are the endpoints and the operation ids. Listing and applying are
    authorised as listings (any deployer may apply; each document's name is then authorised on
    its own); the routes of one resource are authorised on ``target``.
    """
    item = f"{path}/{{name}}"
    return (
        Route("GET", path, f"list_{many}", Action.METADATA, Target.LISTING, list_, f"list_{many}"),
        Route("POST", path, f"apply_{many}", Action.MANAGE, Target.LISTING, apply, f"apply_{many}"),
        Route("GET", item, f"get_{one}", Action.METADATA, target, get, f"get_{one}"),
        Route("PUT", item, f"put_{one}", Action.MANAGE, target, put, f"put_{one}"),
        Route("DELETE", item, f"delete_{one}", Action.MANAGE, target, delete, f"delete_{one}"),
    )  # fmt: skip


CONTROL_ROUTES: Final[tuple[Route, ...]] = (
    *_resource_routes(
        "/v1/deployments", "deployment", "deployments", Target.MODEL,
        list_=LIST, apply=POST, get=GET, put=PUT, delete=DELETE,
    ),
    # Experiments are authorised on their deployment's name, which the endpoint reads first.
    *_resource_routes(
        "/v1/experiments", "experiment", "experiments", Target.LISTING,
        list_=LIST_EXPERIMENTS, apply=POST_EXPERIMENTS, get=GET_EXPERIMENT, put=PUT_EXPERIMENT,
        delete=DELETE_EXPERIMENT,
    ),
    *(
        Route(
            "POST", f"/v1/experiments/{{name}}/{verb}", f"{verb}_experiment", Action.MANAGE,
            Target.LISTING, _action_operation(summary), f"{verb}_experiment",
        )
        for verb, summary in (
            ("pause", "Stop evaluating; the traffic stays as it is"),
            ("resume", "Evaluate again after a pause"),
            ("abort", "End now: the control takes all the traffic"),
            ("promote", "End now: the treatment takes all the traffic, the alias moves"),
            ("acknowledge", "Acknowledge a sample-ratio mismatch; decisions resume"),
            ("evaluate", "Evaluate now and act on the decision"),
        )
    ),
    # Alert rules too are authorised on their deployment's name, read by the endpoint.
    *_resource_routes(
        "/v1/alertrules", "alert_rule", "alert_rules", Target.LISTING,
        list_=LIST_RULES, apply=POST_RULES, get=GET_RULE, put=PUT_RULE, delete=DELETE_RULE,
    ),
    # Feature definitions are authorised on their own names; each kind has its own path.
    *(
        route
        for path, one, many, kind, noun, listing in (
            ("/v1/entities", "entity", "entities", "Entity", "entity", "EntityList"),
            ("/v1/featureviews", "feature_view", "feature_views", "FeatureView",
             "feature view", "FeatureViewList"),
            ("/v1/featureservices", "feature_service", "feature_services", "FeatureService",
             "feature service", "FeatureServiceList"),
        )
        for route in _resource_routes(
            path, one, many, Target.MODEL, **_definition_operations(kind, noun, listing)
        )
    ),
    # Online reads are authorised on each view they read, materialisation on each view (or
    # on every one), by the endpoint: the body names them.
    Route(
        "POST", "/v1/features/online", "online_features", Action.METADATA, Target.LISTING,
        ONLINE, "online_features",
    ),
    Route(
        "POST", "/v1/features/materialize", "materialize_features", Action.MANAGE,
        Target.LISTING, MATERIALIZE, "materialize_features",
    ),
    Route(
        "POST", "/v1/features/push", "push_features", Action.MANAGE, Target.LISTING, PUSH,
        "push_features",
    ),
    # Alerts are listed like deployments: each filtered to the deployments the caller may see.
    Route(
        "GET", "/v1/alerts", "list_alerts", Action.METADATA, Target.LISTING,
        LIST_ALERTS, "list_alerts",
    ),
    Route("GET", "/v1/health/live", "live", Action.HEALTH, Target.SERVER, LIVE, "live"),
    Route("GET", "/v1/health/ready", "ready", Action.HEALTH, Target.SERVER, READY, "ready"),
    Route(
        "GET", "/v1/openapi.json", "openapi", Action.METADATA, Target.LISTING,
        OPENAPI, "openapi",
    ),
    Route("GET", "/metrics", "metrics", Action.METRICS, Target.SERVER, METRICS, "metrics"),
)  # fmt: skip
"""Every control-plane route, in matching priority order."""


# -- body schemas --------------------------------------------------------------------------------

_STRING: Final[Schema] = {"type": "string"}
_NAME: Final[Schema] = {"type": "string", "minLength": 1}
_SCHEMAS: Final[dict[str, Schema]] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": _STRING}},
    "Live": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
    "Ready": {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}},
    },
    "StoredDeployment": {
        "type": "object",
        "required": [
            "name", "generation", "createdAt", "createdBy", "updatedAt", "updatedBy", "document"
        ],
        "properties": {
            "name": _NAME,
            "generation": {"type": "integer", "minimum": 1},
            "createdAt": {"type": "string", "format": "date-time"},
            "createdBy": _STRING,
            "updatedAt": {"type": "string", "format": "date-time"},
            "updatedBy": _STRING,
            "document": _ref("Deployment"),
        },
    },
    "DeploymentList": {
        "type": "object",
        "required": ["deployments"],
        "properties": {"deployments": {"type": "array", "items": _ref("StoredDeployment")}},
    },
    "StoredExperiment": {
        "type": "object",
        "required": ["name", "deployment", "status", "generation", "step", "document"],
        "properties": {
            "name": _NAME,
            "deployment": _NAME,
            "status": {
                "type": "string",
                "enum": [
                    "running", "paused", "blocked", "promoted", "rolled_back", "aborted",
                    "inconclusive",
                ],
            },
            "generation": {"type": "integer", "minimum": 1},
            "step": {"type": "integer", "minimum": 0},
            "startedAt": {"type": "string", "format": "date-time"},
            "stepStartedAt": {"type": "string", "format": "date-time"},
            "srmAcknowledgedAt": {"type": "string", "format": "date-time", "nullable": True},
            "endedAt": {"type": "string", "format": "date-time", "nullable": True},
            "document": _ref("Experiment"),
            "decisions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "at": {"type": "string", "format": "date-time"},
                        "decision": {
                            "type": "string",
                            "enum": [
                                "continue", "not_enough_data", "advance", "promote",
                                "rollback", "inconclusive", "blocked",
                            ],
                        },
                        "reason": _STRING,
                        "inputs": {"type": "object"},
                    },
                },
            },
        },
    },
    "ExperimentList": {
        "type": "object",
        "required": ["experiments"],
        "properties": {"experiments": {"type": "array", "items": _ref("StoredExperiment")}},
    },
    "StoredAlertRule": {
        "type": "object",
        "required": [
            "name", "deployment", "generation", "createdAt", "createdBy", "updatedAt",
            "updatedBy", "document",
        ],
        "properties": {
            "name": _NAME,
            "deployment": _NAME,
            "generation": {"type": "integer", "minimum": 1},
            "createdAt": {"type": "string", "format": "date-time"},
            "createdBy": _STRING,
            "updatedAt": {"type": "string", "format": "date-time"},
            "updatedBy": _STRING,
            "document": _ref("AlertRule"),
        },
    },
    "AlertRuleList": {
        "type": "object",
        "required": ["alertRules"],
        "properties": {"alertRules": {"type": "array", "items": _ref("StoredAlertRule")}},
    },
    "AlertList": {
        "type": "object",
        "required": ["alerts"],
        "properties": {
            "alerts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["rule", "deployment", "state", "labels", "fingerprint"],
                    "properties": {
                        "rule": _NAME,
                        "deployment": _NAME,
                        "state": {"type": "string", "enum": ["firing", "pending", "resolved"]},
                        "labels": {"type": "object", "additionalProperties": _STRING},
                        "annotations": {"type": "object", "additionalProperties": _STRING},
                        "fingerprint": _STRING,
                        "since": {"type": "string", "format": "date-time", "nullable": True},
                        "activeSince": {"type": "string", "format": "date-time", "nullable": True},
                        "firedAt": {"type": "string", "format": "date-time", "nullable": True},
                        "resolvedAt": {"type": "string", "format": "date-time", "nullable": True},
                        "value": {"type": "number", "nullable": True},
                        "updatedAt": {"type": "string", "format": "date-time"},
                        "pendingNotifications": {"type": "integer", "minimum": 0},
                    },
                },
            }
        },
    },
    "Applied": {
        "type": "object",
        "required": ["applied"],
        "properties": {
            "applied": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "generation", "created", "changed", "changes"],
                    "properties": {
                        "name": _NAME,
                        "generation": {"type": "integer", "minimum": 1},
                        "created": {"type": "boolean"},
                        "changed": {"type": "boolean"},
                        "changes": {
                            "type": "array",
                            "items": _STRING,
                            "description": "One line per changed field: `path: old -> new`.",
                        },
                    },
                },
            }
        },
    },
}  # fmt: skip


def control_openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of :data:`CONTROL_ROUTES` (a new one on every call)."""
    return openapi_document(
        CONTROL_ROUTES,
        title="modelport control plane",
        description=_DESCRIPTION,
        tags=_TAGS,
        schemas={
            **model_schemas(Deployment),
            **model_schemas(Experiment),
            **model_schemas(AlertRule),
            **FEATURE_SCHEMAS,
            **_SCHEMAS,
        },
    )
