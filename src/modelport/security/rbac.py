"""Role-based access decisions: which :class:`Action` needs which role, and who may take it.

Pure functions over an :class:`~modelport.security.identity.Identity`; no I/O, no state.

=========  =========  ====================================================================
action     role       covers
=========  =========  ====================================================================
HEALTH     viewer     model readiness (server liveness/readiness when probes are closed)
METADATA   viewer     server and model metadata, model listings, statistics
METRICS    viewer     Prometheus metrics of the whole server (open by configuration)
INFER      predictor  inference
MANAGE     deployer   register, load/unload, aliases, deployments, repository index
ADMIN      admin      API keys, policies, audit
=========  =========  ====================================================================

Existence is never revealed to a caller outside its grants: :func:`authorize` builds its message
from the caller, the action and the requested name only, so a name outside the caller's scope
reads the same whether or not such a model exists. The service layer must therefore call
:func:`authorize` *before* it looks the name up, and answer ``NotFound`` only to callers who
passed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final

from modelport.core.errors import PermissionDenied
from modelport.security.identity import Identity, Role

__all__ = ["Action", "authorize", "is_allowed", "visible"]


class Action(enum.Enum):
    """Something a caller asks to do; :attr:`role` is the least role that allows it."""

    HEALTH = "health"
    """Liveness and readiness of the server or a model."""
    METADATA = "metadata"
    """Server and model metadata, listings, statistics."""
    METRICS = "metrics"
    """Prometheus metrics of the whole server."""
    INFER = "infer"
    """Inference."""
    MANAGE = "manage"
    """Register, load/unload, aliases, deployments, repository index."""
    ADMIN = "admin"
    """API keys, policies, audit."""

    # Members are singletons compared by identity, so identity is a valid hash; Enum's own
    # hashes the name in Python, which every request pays in the decision cache's key.
    __hash__ = object.__hash__

    @property
    def role(self) -> Role:
        """The least role that allows this action."""
        return _ROLE[self]

    @property
    def verb(self) -> str:
        """How the action reads in a refusal (``infer on``)."""
        return _VERB[self]


_ROLE: Final[dict[Action, Role]] = {
    Action.HEALTH: Role.VIEWER,
    Action.METADATA: Role.VIEWER,
    Action.METRICS: Role.VIEWER,
    Action.INFER: Role.PREDICTOR,
    Action.MANAGE: Role.DEPLOYER,
    Action.ADMIN: Role.ADMIN,
}

_VERB: Final[dict[Action, str]] = {
    Action.HEALTH: "check the health of",
    Action.METADATA: "read",
    Action.METRICS: "read the metrics of",
    Action.INFER: "infer on",
    Action.MANAGE: "manage",
    Action.ADMIN: "administer",
}


def is_allowed(identity: Identity, action: Action, name: str | None) -> bool:
    """Whether ``identity`` may take ``action`` on ``name`` (``None``: server-wide).

    A server-wide action needs the action's role over every name (pattern ``*``).
    """
    return identity.allows(_ROLE[action], name)


def authorize(identity: Identity, action: Action, name: str | None, *, what: str = "model") -> None:
    """Refuse unless ``identity`` may take ``action`` on ``name``.

    Args:
        identity: The authenticated caller.
        action: What the caller asks to do.
        name: The model or deployment name, or ``None`` for a server-wide action (which needs
            the role over pattern ``*``).
        what: The noun used in the message (``model``, ``deployment``).

    Raises:
        PermissionDenied: The caller lacks the role over ``name``. The message says whether
            ``name`` is outside the caller's scope (no grant's pattern matches it) or inside it
            with too low a role; it depends only on the caller, the action and the name asked
            for, never on whether ``name`` exists.
    """
    role = _ROLE[action]
    if identity.allows(role, name):
        return
    verb = _VERB[action]
    if name is None:
        raise PermissionDenied(
            f"{identity.subject} may not {verb} this server (needs {role.label} over '*')"
        )
    if not identity.can_see(name):
        scope = ", ".join(sorted({g.pattern for g in identity.grants})) or "nothing"
        raise PermissionDenied(
            f"{what} {name!r} is outside the scope of {identity.subject} ({scope})"
        )
    held = max((g.role for g in identity.grants if g.covers(Role.VIEWER, name)), default=None)
    has = f", has {held.label}" if held is not None else ""
    raise PermissionDenied(
        f"{identity.subject} may not {verb} {what} {name!r} (needs {role.label}{has})"
    )


def visible(identity: Identity, names: Iterable[str]) -> list[str]:
    """Return the names ``identity`` may see (any role over them), in their order.

    Use it to filter listings, so a caller never learns of models outside its grants.
    """
    return [name for name in names if identity.can_see(name)]
