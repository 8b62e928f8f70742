"""Who is calling, and what they were granted: the types every part of security shares.

A :class:`Grant` is a :class:`Role` over a name pattern (``predictor:fraud-*``). Roles are
ordered: each includes the rights of those below it (``admin`` > ``deployer`` > ``predictor`` >
``viewer``). An :class:`Identity` is the outcome of authentication, whatever the credential was.
"""

from __future__ import annotations

import enum
import fnmatch
from dataclasses import dataclass, field

from modelport.core.errors import ConfigError

__all__ = ["ANONYMOUS", "AuthMethod", "Grant", "Identity", "Role", "parse_grant", "parse_grants"]


class Role(enum.IntEnum):
    """What a grant allows; a higher role includes every lower one."""

    VIEWER = 1
    """Metadata, readiness, statistics."""
    PREDICTOR = 2
    """Inference."""
    DEPLOYER = 3
    """Register, load/unload, aliases, deployments."""
    ADMIN = 4
    """API keys, policies, audit."""

    @classmethod
    def parse(cls, text: str) -> Role:
        """Return the role named ``text`` (``viewer``, ``predictor``, ``deployer``, ``admin``).

        Raises:
            ConfigError: No such role.
        """
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(r.name.lower() for r in cls)
            raise ConfigError(f"unknown role {text!r}: expected one of {names}") from None

    @property
    def label(self) -> str:
        """The role's lowercase name."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Grant:
    """A role over the models and deployments whose names match ``pattern`` (shell-style)."""

    role: Role
    pattern: str = "*"

    def covers(self, role: Role, name: str | None) -> bool:
        """Whether this grant allows ``role`` on ``name`` (``None``: a server-wide action).

        A server-wide action needs the role over every name (pattern ``*``) unless the caller's
        result is filtered per name afterwards (the caller decides that).
        """
        if self.role < role:
            return False
        if name is None:
            return self.pattern == "*"
        return fnmatch.fnmatchcase(name, self.pattern)

    def __str__(self) -> str:
        return f"{self.role.label}:{self.pattern}"


def parse_grant(text: str) -> Grant:
    """Parse ``ROLE`` or ``ROLE:PATTERN`` (``predictor:fraud-*``).

    Raises:
        ConfigError: Unknown role or empty pattern.
    """
    role, sep, pattern = text.partition(":")
    if sep and not pattern.strip():
        raise ConfigError(f"grant {text!r} has an empty pattern: expected ROLE or ROLE:PATTERN")
    return Grant(Role.parse(role), pattern.strip() if sep else "*")


def parse_grants(texts: list[str] | tuple[str, ...]) -> tuple[Grant, ...]:
    """Parse several grants (see :func:`parse_grant`)."""
    return tuple(parse_grant(t) for t in texts)


class AuthMethod(enum.Enum):
    """How an identity was established."""

    API_KEY = "api-key"
    JWT = "jwt"
    MTLS = "mtls"
    NONE = "none"
    """Authentication is off (``--no-auth``): everyone is an anonymous admin."""


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller.

    Args:
        subject: Stable name for the audit log: ``key:<id>`` for API keys, the token's ``sub``
            (prefixed ``jwt:``) or the certificate subject (prefixed ``cert:``).
        grants: What the caller may do.
        method: How the caller was authenticated.
        expires_at: Unix time after which the credential is no longer valid (``None``: never).
    """

    subject: str
    grants: tuple[Grant, ...]
    method: AuthMethod
    expires_at: float | None = field(default=None)

    def allows(self, role: Role, name: str | None) -> bool:
        """Whether any grant covers ``role`` on ``name`` (``None``: server-wide)."""
        return any(g.covers(role, name) for g in self.grants)

    def can_see(self, name: str) -> bool:
        """Whether the caller may see ``name`` at all (any role over it)."""
        return any(fnmatch.fnmatchcase(name, g.pattern) for g in self.grants)


ANONYMOUS = Identity("anonymous", (Grant(Role.ADMIN, "*"),), AuthMethod.NONE)
"""The caller when authentication is off."""
