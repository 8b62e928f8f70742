"""The REST API's one declarative route table, and the router built from it.

Every route is one :class:`Route`: HTTP method, path template, the :class:`RestApp` endpoint
that answers it, the :class:`Action` it needs and what that action is about (:class:`Target`),
and its OpenAPI description. Routing (:class:`Router`), the authorisation of each call and the
OpenAPI document (:mod:`.openapi`) are all derived from :data:`ROUTES`; adding an endpoint means
adding a row here and a method to the app.

Matching rules:

- A path is split on ``/`` *before* percent-decoding, so ``%2F`` inside a segment is part of a
  name and never a separator (``/v2%2Frepository...`` is one segment, and matches nothing).
- One trailing ``/`` is ignored (``/v2/`` is ``/v2``); empty segments elsewhere match nothing.
- ``{model_name}``, ``{model_version}`` and ``{name}`` match one non-empty segment. Templates
  are tried in table order and the first that matches wins, so ``/v2/models/stats`` (listed
  first) is every model's statistics, not the metadata of a model named ``stats``.
- ``{name}`` names a resource other than a served model (``/v1/deployments/{name}``); like
  ``{model_name}``, it is the name a :attr:`Target.MODEL` route's action is authorised on.
- A path that matches with another method answers 405 with ``Allow``; ``GET`` routes also
  answer ``HEAD``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

from modelport.security.rbac import Action
from modelport.server.rest import openapi as doc

__all__ = ["ROUTES", "Match", "Route", "Router", "Target"]

_ROUTER_CACHE_SIZE: Final = 1024
"""Most request paths whose match is remembered (a model's endpoints take a handful)."""


class Target(enum.Enum):
    """What a route's action is about, for authorisation."""

    SERVER = "server"
    """The server as a whole: the action's role is needed over every model (``*``)."""
    MODEL = "model"
    """The model (or, with ``{name}``, the resource) named in the path: the action's role is
    needed over that name."""
    LISTING = "listing"
    """A listing: any grant of the role will do, and the answer shows only visible models."""


@dataclass(frozen=True, slots=True)
class Route:
    """One method on one path template.

    Args:
        method: ``GET``, ``PUT``, ``POST`` or ``DELETE``.
        path: The template; ``{model_name}``, ``{model_version}`` and ``{name}`` are path
            arguments.
        endpoint: Name of the app's method that answers (a
            :class:`~modelport.server.rest.app.RoutedApp` subclass). A route with
            ``{model_name}`` calls it as ``endpoint(request, model, version)`` (``version`` is
            ``None`` without ``{model_version}``), one with ``{name}`` as
            ``endpoint(request, name)``, any other as ``endpoint(request)``.
        action: What the call does (decides the role it needs).
        target: What the action is about.
        operation: The route's OpenAPI operation, without ``operationId`` and path parameters
            (derived from the template).
        operation_id: The OpenAPI ``operationId``.
    """

    method: str
    path: str
    endpoint: str
    action: Action
    target: Target
    operation: Mapping[str, Any] = field(repr=False)
    operation_id: str = ""

    @property
    def segments(self) -> tuple[str, ...]:
        """The template's segments after the leading ``/``."""
        return tuple(self.path[1:].split("/"))

    @property
    def needs_credential(self) -> bool:
        """Whether the route needs a credential (server health probes do not, by default)."""
        return not (self.action is Action.HEALTH and self.target is Target.SERVER)

    @property
    def has_model(self) -> bool:
        """Whether the template names a model (its endpoint takes ``model, version``)."""
        return "{model_name}" in self.path


@dataclass(frozen=True, slots=True)
class Match:
    """A request path matched to a template: its routes by method and the path's arguments.

    Args:
        routes: The template's routes by method (``HEAD`` included where ``GET`` is).
        model: The name the path is about: the ``{model_name}`` or ``{name}`` argument, or
            ``None``.
        args: What the endpoint takes after the request: ``(model, version)`` for a template
            with ``{model_name}`` (``version`` is ``None`` without ``{model_version}``),
            ``(name,)`` for one with ``{name}``, else ``()``.
        allow: The ``Allow`` header value for a 405 on this path.
    """

    routes: Mapping[str, Route]
    model: str | None
    args: tuple[str | None, ...]
    allow: str


class Router:
    """Matches request paths against the route table, remembering recent answers.

    Args:
        routes: The route table, in priority order.
    """

    def __init__(self, routes: Sequence[Route]) -> None:
        self._templates: list[tuple[tuple[str, ...], dict[str, Route]]] = []
        for route in routes:
            by_method = next((m for s, m in self._templates if s == route.segments), {})
            if not by_method:
                self._templates.append((route.segments, by_method))
            if route.method in by_method:
                raise ValueError(f"two routes for {route.method} {route.path}")
            by_method[route.method] = route
            if route.method == "GET":
                by_method["HEAD"] = route
        self._cache: dict[str, Match | None] = {}

    def match(self, raw_path: str) -> Match | None:
        """Return the match for a raw (still percent-encoded) path, or ``None`` (404)."""
        try:
            return self._cache[raw_path]
        except KeyError:
            pass
        found = self._match(raw_path)
        # Matching depends on the path alone; a flood of distinct paths starts the cache over
        # instead of growing it without limit.
        if len(self._cache) >= _ROUTER_CACHE_SIZE:
            self._cache.clear()
        self._cache[raw_path] = found
        return found

    def _match(self, raw_path: str) -> Match | None:
        if not raw_path.startswith("/"):
            return None
        if len(raw_path) > 1 and raw_path.endswith("/"):
            raw_path = raw_path[:-1]
        parts = [unquote(part) for part in raw_path[1:].split("/")]
        for segments, by_method in self._templates:
            arguments = _bind(segments, parts)
            if arguments is None:
                continue
            model = arguments.get("model_name")
            args: tuple[str | None, ...]
            if model is not None:
                args = (model, arguments.get("model_version"))
            else:
                model = arguments.get("name")
                args = () if model is None else (model,)
            return Match(by_method, model, args, ", ".join(sorted(by_method)))
        return None


def _bind(segments: tuple[str, ...], parts: list[str]) -> dict[str, str] | None:
    """Return the template's arguments when ``parts`` fit ``segments``, else ``None``."""
    if len(segments) != len(parts):
        return None
    arguments: dict[str, str] = {}
    for segment, part in zip(segments, parts, strict=True):
        if not part:
            return None
        if segment.startswith("{"):
            arguments[segment[1:-1]] = part
        elif segment != part:
            return None
    return arguments


def _model_routes(
    method: str,
    suffix: str,
    endpoint: str,
    action: Action,
    name: str,
    operation: Mapping[str, Any],
) -> tuple[Route, Route]:
    """A model route and its ``/versions/{model_version}`` twin."""
    base = "/v2/models/{model_name}"
    return (
        Route(method, base + suffix, endpoint, action, Target.MODEL, operation, f"model_{name}"),
        Route(
            method,
            base + "/versions/{model_version}" + suffix,
            endpoint,
            action,
            Target.MODEL,
            operation,
            f"model_version_{name}",
        ),
    )


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "GET",
        "/v2",
        "server_metadata",
        Action.METADATA,
        Target.LISTING,
        doc.SERVER_METADATA,
        "server_metadata",
    ),
    Route(
        "GET",
        "/v2/health/live",
        "live",
        Action.HEALTH,
        Target.SERVER,
        doc.LIVE,
        "server_live",
    ),
    Route(
        "GET",
        "/v2/health/ready",
        "ready",
        Action.HEALTH,
        Target.SERVER,
        doc.READY,
        "server_ready",
    ),
    Route(
        "GET",
        "/v2/models/stats",
        "all_statistics",
        Action.METADATA,
        Target.LISTING,
        doc.ALL_STATISTICS,
        "statistics",
    ),
    *_model_routes("GET", "", "model_metadata", Action.METADATA, "metadata", doc.MODEL_METADATA),
    *_model_routes("GET", "/ready", "model_ready", Action.METADATA, "ready", doc.MODEL_READY),
    *_model_routes("GET", "/config", "model_config", Action.METADATA, "config", doc.MODEL_CONFIG),
    *_model_routes(
        "GET", "/stats", "model_statistics", Action.METADATA, "statistics", doc.MODEL_STATISTICS
    ),
    *_model_routes("POST", "/infer", "infer", Action.INFER, "infer", doc.INFER),
    Route(
        "POST",
        "/v2/repository/index",
        "repository_index",
        Action.MANAGE,
        Target.LISTING,
        doc.REPOSITORY_INDEX,
        "repository_index",
    ),
    Route(
        "POST",
        "/v2/repository/models/{model_name}/load",
        "repository_load",
        Action.MANAGE,
        Target.MODEL,
        doc.REPOSITORY_LOAD,
        "repository_model_load",
    ),
    Route(
        "POST",
        "/v2/repository/models/{model_name}/unload",
        "repository_unload",
        Action.MANAGE,
        Target.MODEL,
        doc.REPOSITORY_UNLOAD,
        "repository_model_unload",
    ),
    Route(
        "GET",
        "/v2/openapi.json",
        "openapi",
        Action.METADATA,
        Target.LISTING,
        doc.OPENAPI,
        "openapi",
    ),
    Route(
        "GET",
        "/metrics",
        "metrics",
        Action.METRICS,
        Target.SERVER,
        doc.METRICS,
        "metrics",
    ),
)
"""Every REST route, in matching priority order."""
