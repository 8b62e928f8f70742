"""The control plane's REST API: deployments, experiments, alert rules, features, probes (ASGI).

:class:`ControlPlaneApp` is a :class:`~modelport.server.rest.app.RoutedApp` over
:data:`~modelport.server.controlplane.routes.CONTROL_ROUTES`: the base class routes, admits each
call for its route's action (viewer to read, deployer to change, on the deployment's name) and
maps errors to statuses and ``{"error": ...}``; each endpoint here reads the body, calls one
:class:`~modelport.service.deployments.DeploymentService` or
:class:`~modelport.service.experiments.ExperimentService` method in a worker thread (they query
the database) and serialises the answer. Experiment routes are admitted for any grant of their
role (a listing) and then authorised here on the experiment's deployment, which grants name;
alert rule routes likewise, on the deployment each rule watches, through
:class:`~modelport.service.alert_rules.AlertRuleService`. Feature definitions
(``/v1/entities``, ``/v1/featureviews``, ``/v1/featureservices``) are authorised on their own
names and go through :class:`~modelport.service.features.FeatureStoreService`, as do online
reads (authorised on each view read), materialisation (on each view, or on ``*``) and pushes
(on each view the push source feeds); their bodies are read by :mod:`.features`.

A body is YAML or JSON by its ``Content-Type``: ``application/json`` (one document, or a list of
them for ``POST``), ``application/yaml`` or ``text/yaml`` (one document, or several with
``---`` between them for ``POST``); without a ``Content-Type`` it is read as YAML, of which JSON
is a part.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson

from modelport.core.clock import Clock, SystemClock
from modelport.core.documents import Document, load_documents
from modelport.core.errors import InvalidInput, NotFound
from modelport.experiments.experiment_store import StoredExperiment
from modelport.experiments.store import Applied, StoredDeployment
from modelport.features import FeatureService, FeatureStore
from modelport.features.documents import DefinitionKind
from modelport.features.online.sqlite import SqliteOnlineStore
from modelport.features.push import push_views
from modelport.monitoring.alert_rules import StoredAlertRule
from modelport.security.rbac import Action
from modelport.server.controlplane.features import (
    OnlineQuery,
    check_kinds,
    online_reply,
    parse_materialize,
    parse_online,
    parse_push,
    push_columns,
)
from modelport.server.controlplane.routes import CONTROL_ROUTES, control_openapi_document
from modelport.server.rest.app import Hook, RoutedApp
from modelport.server.rest.asgi import Reply, Request, read_body
from modelport.service.access import AccessControl, audit_text
from modelport.service.alert_rules import AlertRuleService, Authorize, describe_rule, rule_changes
from modelport.service.alerts import AlertService
from modelport.service.deployments import (
    DeploymentService,
    ReplicaProbe,
    applied_changes,
    describe,
)
from modelport.service.experiments import ExperimentService, describe_experiment
from modelport.service.features import (
    FeatureStoreService,
    describe_definition,
    describe_summary,
)

__all__ = ["ControlPlaneApp", "parse_documents"]

DEFINITIONS_MAX_AGE_S: Final = 1.0
"""Online reads see feature definitions applied by other processes within this many seconds
(the registry is read again at most this often, not on every read)."""

log = logging.getLogger("modelport.controlplane")

READY_TIMEOUT_S: Final = 2.0
"""Seconds the database has to answer a readiness probe."""
_JSON_TYPES: Final = frozenset({"application/json"})
_YAML_TYPES: Final = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
)
_SOURCE: Final = "request body"
_DEFINITION_PATHS: Final[dict[DefinitionKind, tuple[str, str]]] = {
    "Entity": ("entities", "entities"),
    "FeatureView": ("featureviews", "featureViews"),
    "FeatureService": ("featureservices", "featureServices"),
}
"""Per definition kind: its path's plural and its listing's key."""


class ControlPlaneApp(RoutedApp):
    """The control plane's ``/v1/`` routes over deployments, experiments, alerts and features.

    Args:
        access: Authentication, authorisation and audit of every call.
        deployments: The deployments' use cases.
        experiments: The experiments' use cases.
        max_body_bytes: Largest accepted request body.
        on_startup: Awaited in order when the server starts (before it accepts requests).
        on_shutdown: Awaited in order when the server stops.
        probe: Checks that the replicas an applied deployment names answer; ``None`` skips it.
        metrics: Returns the Prometheus text of ``GET /metrics`` and its content type; ``None``:
            the route answers 404.
        alert_rules: The alert rules' use cases; ``None``: their routes answer 404.
        alerts: The alerts' listing (``GET /v1/alerts``); ``None``: it answers 404.
        features: The feature store's use cases; ``None``: their routes answer 404.
        clock: The time a materialisation without ``end`` runs up to.
        materialize_chunk_rows: Rows read and written at a time when materialising.
    """

    def __init__(
        self,
        access: AccessControl,
        deployments: DeploymentService,
        experiments: ExperimentService,
        max_body_bytes: int,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        probe: ReplicaProbe | None = None,
        metrics: Callable[[], tuple[bytes, str]] | None = None,
        alert_rules: AlertRuleService | None = None,
        alerts: AlertService | None = None,
        features: FeatureStoreService | None = None,
        clock: Clock | None = None,
        materialize_chunk_rows: int = 10_000,
    ) -> None:
        self.deployments = deployments
        self.experiments = experiments
        self.alert_rules = alert_rules
        self.alerts = alerts
        self.features = features
        self.clock = clock or SystemClock()
        self.materialize_chunk_rows = materialize_chunk_rows
        self._definitions_read_at = -math.inf
        self.max_body = max_body_bytes
        self.probe = probe
        self._metrics = metrics
        super().__init__(
            access, CONTROL_ROUTES, on_startup, on_shutdown, openapi=control_openapi_document()
        )

    # -- endpoints: one per route of the table, named by its ``endpoint`` ----------------------

    async def list_deployments(self, request: Request) -> Reply:
        """``GET /v1/deployments``: the deployments the caller may see."""
        found = await asyncio.to_thread(self.deployments.list)
        if self.access.enabled:
            names = self.access.visible(request.identity, [s.name for s in found])
            found = [s for s in found if s.name in names]
        return Reply.json({"deployments": [describe(s) for s in found]})

    async def get_deployment(self, request: Request, name: str) -> Reply:
        """``GET /v1/deployments/{name}``."""
        return Reply.json(describe(await asyncio.to_thread(self.deployments.get, name)))

    async def put_deployment(self, request: Request, name: str) -> Reply:
        """``PUT /v1/deployments/{name}``: create or replace one deployment."""
        body = await read_body(request, self.max_body)
        applied = await asyncio.to_thread(self._apply, request, body, name)
        return Reply.json({"applied": [_applied(a) for a in applied]})

    async def apply_deployments(self, request: Request) -> Reply:
        """``POST /v1/deployments``: apply one or several documents, all checked first."""
        body = await read_body(request, self.max_body)
        applied = await asyncio.to_thread(self._apply, request, body, None)
        return Reply.json({"applied": [_applied(a) for a in applied]})

    async def delete_deployment(self, request: Request, name: str) -> Reply:
        """``DELETE /v1/deployments/{name}``: what was removed."""
        removed: StoredDeployment = await asyncio.to_thread(
            self.deployments.delete,
            name,
            _actor(request),
            request_id=request.caller.request_id,
        )
        return Reply.json(describe(removed))

    async def list_experiments(self, request: Request) -> Reply:
        """``GET /v1/experiments``: experiments on the deployments the caller may see."""
        found = await asyncio.to_thread(self.experiments.list)
        if self.access.enabled:
            names = self.access.visible(request.identity, {s.deployment for s in found})
            found = [s for s in found if s.deployment in names]
        return Reply.json({"experiments": [describe_experiment(s) for s in found]})

    async def get_experiment(self, request: Request, name: str) -> Reply:
        """``GET /v1/experiments/{name}``: the experiment and its newest decisions."""

        def work() -> dict[str, Any]:
            stored = self._experiment(request, Action.METADATA, name)
            return describe_experiment(stored, self.experiments.decisions(name))

        return Reply.json(await asyncio.to_thread(work))

    async def put_experiment(self, request: Request, name: str) -> Reply:
        """``PUT /v1/experiments/{name}``: start or update one experiment."""
        body = await read_body(request, self.max_body)
        return Reply.json(await asyncio.to_thread(self._apply_experiments, request, body, name))

    async def apply_experiments(self, request: Request) -> Reply:
        """``POST /v1/experiments``: apply one or several Experiment documents."""
        body = await read_body(request, self.max_body)
        return Reply.json(await asyncio.to_thread(self._apply_experiments, request, body, None))

    async def delete_experiment(self, request: Request, name: str) -> Reply:
        """``DELETE /v1/experiments/{name}``: remove an ended experiment."""
        return await self._act(request, name, self.experiments.delete)

    async def pause_experiment(self, request: Request, name: str) -> Reply:
        """``POST /v1/experiments/{name}/pause``."""
        return await self._act(request, name, self.experiments.pause)

    async def resume_experiment(self, request: Request, name: str) -> Reply:
        """``POST /v1/experiments/{name}/resume``."""
        return await self._act(request, name, self.experiments.resume)

    async def abort_experiment(self, request: Request, name: str) -> Reply:
        """``POST /v1/experiments/{name}/abort``."""
        return await self._act(request, name, self.experiments.abort)

    async def promote_experiment(self, request: Request, name: str) -> Reply:
        """``POST /v1/experiments/{name}/promote``."""
        return await self._act(request, name, self.experiments.promote)

    async def acknowledge_experiment(self, request: Request, name: str) -> Reply:
        """``POST /v1/experiments/{name}/acknowledge``."""
        return await self._act(request, name, self.experiments.acknowledge)

    async def evaluate_experiment(self, request: Request, name: str) -> Reply:
        """``POST /v1/experiments/{name}/evaluate``: evaluate now; the experiment after it."""

        def work() -> dict[str, Any]:
            self._experiment(request, Action.MANAGE, name)
            self.experiments.evaluate(name)
            return describe_experiment(
                self.experiments.get(name), self.experiments.decisions(name, 1)
            )

        return Reply.json(await asyncio.to_thread(work))

    async def list_alert_rules(self, request: Request) -> Reply:
        """``GET /v1/alertrules[?deployment=NAME]``: rules of the deployments the caller may see."""
        rules = self._rules()
        deployment = _query(request, "deployment")
        visible = None
        if self.access.enabled:

            def visible(names: Collection[str]) -> Collection[str]:
                return self.access.visible(request.identity, names)

        found = await asyncio.to_thread(rules.list, deployment, visible=visible)
        return Reply.json({"alertRules": [describe_rule(s) for s in found]})

    async def get_alert_rule(self, request: Request, name: str) -> Reply:
        """``GET /v1/alertrules/{name}``."""
        stored = await asyncio.to_thread(
            self._rules().get, name, authorize=self._authorize(request, Action.METADATA)
        )
        return Reply.json(describe_rule(stored))

    async def put_alert_rule(self, request: Request, name: str) -> Reply:
        """``PUT /v1/alertrules/{name}``: create or replace one rule."""
        body = await read_body(request, self.max_body)
        return Reply.json(await asyncio.to_thread(self._apply_rules, request, body, name))

    async def apply_alert_rules(self, request: Request) -> Reply:
        """``POST /v1/alertrules``: apply one or several AlertRule documents, all checked first."""
        body = await read_body(request, self.max_body)
        return Reply.json(await asyncio.to_thread(self._apply_rules, request, body, None))

    async def delete_alert_rule(self, request: Request, name: str) -> Reply:
        """``DELETE /v1/alertrules/{name}``: what was removed."""
        removed: StoredAlertRule = await asyncio.to_thread(
            self._rules().delete,
            name,
            _actor(request),
            authorize=self._authorize(request, Action.MANAGE),
            request_id=request.caller.request_id,
        )
        return Reply.json(describe_rule(removed))

    # -- feature store: definitions (one kind per path), online reads, materialisation ----------

    async def list_entities(self, request: Request) -> Reply:
        """``GET /v1/entities``: the entities the caller may see."""
        return await self._list_definitions(request, "Entity")

    async def apply_entities(self, request: Request) -> Reply:
        """``POST /v1/entities``: apply one or several Entity documents, all checked first."""
        return await self._apply_definitions(request, "Entity", None)

    async def get_entity(self, request: Request, name: str) -> Reply:
        """``GET /v1/entities/{name}``."""
        return await self._get_definition("Entity", name)

    async def put_entity(self, request: Request, name: str) -> Reply:
        """``PUT /v1/entities/{name}``: create or replace one entity."""
        return await self._apply_definitions(request, "Entity", name)

    async def delete_entity(self, request: Request, name: str) -> Reply:
        """``DELETE /v1/entities/{name}``: what was removed (409 while a view uses it)."""
        return await self._delete_definition(request, "Entity", name)

    async def list_feature_views(self, request: Request) -> Reply:
        """``GET /v1/featureviews``: the feature views the caller may see."""
        return await self._list_definitions(request, "FeatureView")

    async def apply_feature_views(self, request: Request) -> Reply:
        """``POST /v1/featureviews``: apply one or several FeatureView documents."""
        return await self._apply_definitions(request, "FeatureView", None)

    async def get_feature_view(self, request: Request, name: str) -> Reply:
        """``GET /v1/featureviews/{name}``."""
        return await self._get_definition("FeatureView", name)

    async def put_feature_view(self, request: Request, name: str) -> Reply:
        """``PUT /v1/featureviews/{name}``: create or replace one feature view."""
        return await self._apply_definitions(request, "FeatureView", name)

    async def delete_feature_view(self, request: Request, name: str) -> Reply:
        """``DELETE /v1/featureviews/{name}``: what was removed (409 while a service uses it)."""
        return await self._delete_definition(request, "FeatureView", name)

    async def list_feature_services(self, request: Request) -> Reply:
        """``GET /v1/featureservices``: the feature services the caller may see."""
        return await self._list_definitions(request, "FeatureService")

    async def apply_feature_services(self, request: Request) -> Reply:
        """``POST /v1/featureservices``: apply one or several FeatureService documents."""
        return await self._apply_definitions(request, "FeatureService", None)

    async def get_feature_service(self, request: Request, name: str) -> Reply:
        """``GET /v1/featureservices/{name}``."""
        return await self._get_definition("FeatureService", name)

    async def put_feature_service(self, request: Request, name: str) -> Reply:
        """``PUT /v1/featureservices/{name}``: create or replace one feature service."""
        return await self._apply_definitions(request, "FeatureService", name)

    async def delete_feature_service(self, request: Request, name: str) -> Reply:
        """``DELETE /v1/featureservices/{name}``: what was removed."""
        return await self._delete_definition(request, "FeatureService", name)

    async def online_features(self, request: Request) -> Reply:
        """``POST /v1/features/online``: the latest feature values of entities."""
        features = self._features()
        body = await read_body(request, self.max_body)

        store = features.store
        now = time.monotonic()
        if now - self._definitions_read_at >= DEFINITIONS_MAX_AGE_S:
            self._definitions_read_at = now
            await asyncio.to_thread(store.refresh)  # definitions applied by other processes

        def work() -> dict[str, Any]:
            query = parse_online(body, request.header(b"content-type"))
            return online_reply(self._read_online(request, store, query), query.orientation)

        if isinstance(store.online_store(), SqliteOnlineStore):
            # Embedded SQLite answers in tens of microseconds: a thread hop would cost more.
            return Reply.json(work())
        return Reply.json(await asyncio.to_thread(work))

    async def materialize_features(self, request: Request) -> Reply:
        """``POST /v1/features/materialize``: copy the newest rows into the online store."""
        features = self._features()
        body = await read_body(request, self.max_body)
        now = self.clock.now()

        def work() -> dict[str, Any]:
            query = parse_materialize(body, request.header(b"content-type"), now)
            if query.views is None:
                self.access.check(request.caller, Action.MANAGE)  # every view: over '*'
            for view in query.views or ():
                self.access.check(request.caller, Action.MANAGE, view)
            summary = features.materialize(
                _actor(request),
                start=query.start,
                end=query.end,
                views=query.views,
                chunk_rows=self.materialize_chunk_rows,
                request_id=request.caller.request_id,
            )
            return describe_summary(summary)

        return Reply.json(await asyncio.to_thread(work))

    async def push_features(self, request: Request) -> Reply:
        """``POST /v1/features/push``: rows to the views fed by a push source (Feast's push)."""
        features = self._features()
        body = await read_body(request, self.max_body)

        def work() -> dict[str, Any]:
            query = parse_push(body, request.header(b"content-type"))
            store = features.store
            store.refresh()
            views = push_views({v.name: v for v in store.list_feature_views()}, query.source)
            for view in views:
                self.access.check(request.caller, Action.MANAGE, view.name)
            return features.push(
                _actor(request),
                query.source,
                push_columns(query, views),
                query.to,
                request_id=request.caller.request_id,
            )

        return Reply.json(await asyncio.to_thread(work))

    async def list_alerts(self, request: Request) -> Reply:
        """``GET /v1/alerts[?deployment=NAME][&all=true]``: the alerts the caller may see."""
        if self.alerts is None:
            raise NotFound("alerts are not served by this server")
        deployment, everything = _alert_query(request)
        visible = None
        if self.access.enabled:

            def visible(names: set[str]) -> set[str]:
                return self.access.visible(request.identity, names)

        listed = await asyncio.to_thread(self.alerts.list_alerts, deployment, everything, visible)
        return Reply.json(listed)

    async def live(self, request: Request) -> Reply:
        """``GET /v1/health/live``."""
        return Reply.json({"live": True})

    async def ready(self, request: Request) -> Reply:
        """``GET /v1/health/ready``: ready when the metadata database answers."""
        try:
            ready = await asyncio.wait_for(
                asyncio.to_thread(self.deployments.ready), READY_TIMEOUT_S
            )
        except TimeoutError:
            log.warning("the metadata database did not answer within %g s", READY_TIMEOUT_S)
            ready = False
        return Reply.json({"ready": ready}, 200 if ready else 503)

    async def metrics(self, request: Request) -> Reply:
        """``GET /metrics``: the control plane's Prometheus metrics."""
        if self._metrics is None:
            raise NotFound("metrics are not enabled in this server")
        text, content_type = self._metrics()
        return Reply(200, text, content_type.encode())

    # -- helpers -------------------------------------------------------------------------------

    def _apply(self, request: Request, body: bytes, name: str | None) -> list[Applied]:
        """Parse, authorise and apply a body (in a worker thread: parsing YAML takes time).

        ``name`` is the path's name of a ``PUT`` (already authorised by the route); a ``POST``
        authorises every document's name here, before anything is validated or written.
        """
        documents = parse_documents(body, request.header(b"content-type"))
        if name is not None:
            _single(documents, name, "deployments")
        else:
            for document in documents:
                given = _name_of(document)
                if given is not None:  # a document without a name fails validation anyway
                    self.access.check(request.caller, Action.MANAGE, given)
        return self.deployments.apply(
            documents,
            _actor(request),
            probe=self.probe,
            request_id=request.caller.request_id,
        )

    def _experiment(self, request: Request, action: Action, name: str) -> StoredExperiment:
        """The experiment called ``name``, if the caller may take ``action`` on its deployment."""
        stored = self.experiments.get(name)
        self.access.check(request.caller, action, stored.deployment)
        return stored

    async def _act(
        self, request: Request, name: str, verb: Callable[..., StoredExperiment]
    ) -> Reply:
        def work() -> dict[str, Any]:
            self._experiment(request, Action.MANAGE, name)
            done = verb(name, _actor(request), request_id=request.caller.request_id)
            return describe_experiment(done)

        return Reply.json(await asyncio.to_thread(work))

    def _features(self) -> FeatureStoreService:
        if self.features is None:
            raise NotFound("the feature store is not served by this server")
        return self.features

    async def _list_definitions(self, request: Request, kind: DefinitionKind) -> Reply:
        found = await asyncio.to_thread(self._features().list, kind)
        if self.access.enabled:
            names = self.access.visible(request.identity, [s.name for s in found])
            found = [s for s in found if s.name in names]
        key = _DEFINITION_PATHS[kind][1]
        return Reply.json({key: [describe_definition(s) for s in found]})

    async def _get_definition(self, kind: DefinitionKind, name: str) -> Reply:
        stored = await asyncio.to_thread(self._features().get, kind, name)
        return Reply.json(describe_definition(stored))

    async def _apply_definitions(
        self, request: Request, kind: DefinitionKind, name: str | None
    ) -> Reply:
        features = self._features()
        body = await read_body(request, self.max_body)

        def work() -> dict[str, Any]:
            """Parse, check the kinds, authorise each name (a POST's) and apply, all or none."""
            documents = parse_documents(body, request.header(b"content-type"))
            if name is not None:
                _single(documents, name, _DEFINITION_PATHS[kind][0])
            check_kinds(documents, kind)
            if name is None:
                for document in documents:
                    given = _name_of(document)
                    if given is not None:  # a document without a name fails validation anyway
                        self.access.check(request.caller, Action.MANAGE, given)
            before = {s.name: s.generation for s in features.list(kind)}
            applied = features.apply_documents(
                documents, _actor(request), request_id=request.caller.request_id
            )
            return {
                "applied": [
                    describe_definition(s)
                    | {
                        "created": s.name not in before,
                        "changed": before.get(s.name) != s.generation,
                    }
                    for s in applied
                ]
            }

        return Reply.json(await asyncio.to_thread(work))

    async def _delete_definition(self, request: Request, kind: DefinitionKind, name: str) -> Reply:
        removed = await asyncio.to_thread(
            self._features().delete,
            kind,
            name,
            _actor(request),
            request_id=request.caller.request_id,
        )
        return Reply.json(describe_definition(removed))

    def _read_online(self, request: Request, store: FeatureStore, query: OnlineQuery) -> Any:
        """Authorise each view read, check the join keys, read (in a worker thread)."""
        for view in query.views():  # before any lookup: nothing leaks outside the grants
            self.access.check(request.caller, Action.METADATA, view)
        wanted: list[str] | FeatureService
        if query.service is not None:
            wanted = store.get_feature_service(query.service)
            views = [projection.name for projection in wanted.projections]
            for view in views:
                self.access.check(request.caller, Action.METADATA, view)
        else:
            wanted, views = list(query.features or ()), query.views()
        for view in views:
            keys = store.get_feature_view(view).join_keys
            missing = [key for key in keys if key not in query.entities]
            if missing:
                raise InvalidInput(
                    f"the entities have no join key {missing[0]!r}, needed by feature view "
                    f"{view!r} (keyed by {', '.join(keys)}); give it in entities or in every "
                    "entityRows item"
                )
        return store.get_online_features(wanted, query.entities, query.full_feature_names)

    def _rules(self) -> AlertRuleService:
        if self.alert_rules is None:
            raise NotFound("alert rules are not served by this server")
        return self.alert_rules

    def _authorize(self, request: Request, action: Action) -> Authorize | None:
        """Checks ``action`` on a rule's deployment for the caller; ``None`` without auth."""
        if not self.access.enabled:
            return None

        def authorize(deployment: str) -> None:
            self.access.check(request.caller, action, deployment)

        return authorize

    def _apply_rules(self, request: Request, body: bytes, name: str | None) -> dict[str, Any]:
        """Parse, authorise (on each rule's deployment) and apply (in a worker thread)."""
        rules = self._rules()
        documents = parse_documents(body, request.header(b"content-type"))
        if name is not None:
            _single(documents, name, "alertrules")
        applied = rules.apply(
            documents,
            _actor(request),
            authorize=self._authorize(request, Action.MANAGE),
            request_id=request.caller.request_id,
        )
        return {
            "applied": [
                {
                    "name": a.stored.name,
                    "generation": a.stored.generation,
                    "created": a.previous is None,
                    "changed": a.changed,
                    "changes": rule_changes(a),
                }
                for a in applied
            ]
        }

    def _apply_experiments(self, request: Request, body: bytes, name: str | None) -> dict[str, Any]:
        """Parse, authorise (on each experiment's deployment) and apply (in a worker thread)."""
        documents = parse_documents(body, request.header(b"content-type"))
        if name is not None:
            _single(documents, name, "experiments")
        for document in documents:
            spec = document.get("spec")
            deployment = spec.get("deployment") if isinstance(spec, dict) else None
            if isinstance(deployment, str):  # a document without one fails validation anyway
                self.access.check(request.caller, Action.MANAGE, deployment)
        applied = self.experiments.apply(
            documents, _actor(request), request_id=request.caller.request_id
        )
        return {
            "applied": [
                {
                    "name": a.stored.name,
                    "status": a.stored.status,
                    "generation": a.stored.generation,
                    "created": a.created,
                    "changed": a.changed,
                }
                for a in applied
            ]
        }


def parse_documents(body: bytes, content_type: str | None) -> list[Document]:
    """Read the resource documents of a request body by its ``Content-Type``.

    Args:
        body: The body.
        content_type: The ``Content-Type`` header; ``None`` reads the body as YAML.

    Raises:
        InvalidInput: The content type is not one accepted here, or the body is not UTF-8,
            not valid JSON or YAML, empty, or holds something other than mappings.
    """
    media = (content_type or "").partition(";")[0].strip().lower()
    if media and media not in _JSON_TYPES and media not in _YAML_TYPES:
        raise InvalidInput(
            f"Content-Type {content_type!r} is not accepted here; send the documents as "
            "application/json, application/yaml or text/yaml"
        )
    if media in _JSON_TYPES:
        try:
            loaded = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"{_SOURCE}: not valid JSON: {exc}") from None
        documents = loaded if isinstance(loaded, list) else [loaded]
        if not documents:
            raise InvalidInput(f"{_SOURCE}: an empty list; expected at least one resource")
        for number, document in enumerate(documents, start=1):
            if not isinstance(document, dict):
                raise InvalidInput(
                    f"{_SOURCE}: document {number} is a {_json_type(document)}; expected an "
                    "object with apiVersion, kind, metadata and spec"
                )
        return documents
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{_SOURCE}: not UTF-8 text") from None
    return load_documents(text, _SOURCE)


def _single(documents: Sequence[Document], name: str, kinds: str) -> None:
    """Refuse a ``PUT`` body that is not one document named as the path."""
    if len(documents) != 1:
        raise InvalidInput(
            f"PUT /v1/{kinds}/{name} takes one document, got {len(documents)}; "
            f"apply several with POST /v1/{kinds}"
        )
    given = _name_of(documents[0])
    if given is not None and given != name:
        raise InvalidInput(
            f"metadata.name {given!r} does not match the name in the path, {name!r}; "
            "PUT a document to its own name"
        )


def _query(request: Request, accepted: str) -> str | None:
    """The one query parameter a listing takes, or ``None`` when it is not given.

    Raises:
        InvalidInput: Another parameter is given, or this one more than once.
    """
    text = request.query_string.decode("latin-1")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True) if text else []
    except ValueError:
        raise InvalidInput(f"the query string {text!r} is not NAME=VALUE pairs") from None
    others = sorted({key for key, _ in pairs if key != accepted})
    if others:
        raise InvalidInput(f"unknown query parameter {others[0]!r}; this listing takes {accepted}")
    values = [value for key, value in pairs if key == accepted]
    if len(values) > 1:
        raise InvalidInput(f"{accepted} is given {len(values)} times; give it once")
    return values[0] if values else None


def _alert_query(request: Request) -> tuple[str | None, bool]:
    """``deployment`` and ``all`` of ``GET /v1/alerts``.

    Raises:
        InvalidInput: Another parameter, one given twice, or ``all`` neither true nor false.
    """
    text = request.query_string.decode("latin-1")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True) if text else []
    except ValueError:
        raise InvalidInput(f"the query string {text!r} is not NAME=VALUE pairs") from None
    given: dict[str, str] = {}
    for key, value in pairs:
        if key not in ("deployment", "all"):
            raise InvalidInput(
                f"unknown query parameter {key!r}; this listing takes deployment, all"
            )
        if key in given:
            raise InvalidInput(f"{key} is given more than once; give it once")
        given[key] = value
    everything = given.get("all", "false").lower()
    if everything not in ("true", "false", "1", "0"):
        raise InvalidInput(f"all={given['all']!r}: expected true or false")
    return given.get("deployment"), everything in ("true", "1")


def _name_of(document: Document) -> str | None:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def _actor(request: Request) -> str:
    """Who acts, as the audit log and the stored deployment record it."""
    return audit_text(request.identity.subject)


def _applied(applied: Applied) -> dict[str, Any]:
    stored = applied.stored
    return {
        "name": stored.name,
        "generation": stored.generation,
        "created": applied.previous is None,
        "changed": applied.changed,
        "changes": applied_changes(applied),
    }


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
