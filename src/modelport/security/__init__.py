"""Security: authentication, authorisation, artifact protection, rate limits and audit.

Who is calling (API keys, JWT/OIDC, mTLS), what they may do (RBAC), artifact encryption and
signing, rate limits and the tamper-evident audit log.

Pure decisions live here; the service layer composes them with storage and transports.
"""

from __future__ import annotations

from modelport.security.identity import (
    ANONYMOUS,
    AuthMethod,
    Grant,
    Identity,
    Role,
    parse_grant,
    parse_grants,
)

__all__ = [
    "ANONYMOUS",
    "AuthMethod",
    "Grant",
    "Identity",
    "Role",
    "parse_grant",
    "parse_grants",
]
