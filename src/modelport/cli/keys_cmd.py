"""Key commands: API keys (``keys create|list|revoke``) and KEK rotation (``keys rotate-kek``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from modelport.cli import _when
from modelport.core.clock import SystemClock
from modelport.core.errors import ConfigError

if TYPE_CHECKING:
    from modelport.security.apikeys import ApiKeyRecord
    from modelport.security.identity import Grant
    from modelport.security.store import SecurityStore

# Storage and cryptography are imported by the commands that use them, not to parse options.

__all__ = ["attach", "keys_app"]

keys_app = typer.Typer(
    help="API keys for callers, and rotation of the artifact key-encryption key.",
    no_args_is_help=True,
)


# -- API keys ------------------------------------------------------------------------------

_NOT_STORED = (
    "this is the only time the key is shown: modelport stores only a hash of it, so keep it "
    "somewhere safe now"
)


def _security_store() -> SecurityStore:
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import open_security_store

    return open_security_store(checked_settings())


def _grants(role: str, scopes: list[str]) -> tuple[Grant, ...]:
    from modelport.security.identity import Grant, Role

    parsed = Role.parse(role)
    grants = []
    for scope in scopes or ["*"]:
        if not scope.strip():
            raise ConfigError("--scope must not be empty: give a name pattern such as fraud-*")
        grants.append(Grant(parsed, scope.strip()))
    return tuple(grants)


def _when_text(at: datetime | None, never: str = "never") -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else never


def key_dict(record: ApiKeyRecord, now: datetime) -> dict[str, Any]:
    """Return a key's record as plain JSON-ready data (never a secret or hash)."""
    return {
        "key_id": record.key_id,
        "name": record.name,
        "grants": [str(g) for g in record.grants],
        "created_at": record.created_at.isoformat(),
        "created_by": record.created_by,
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "revoked_by": record.revoked_by,
        "status": record.status(now),
    }


@keys_app.command("create")
def keys_create(
    role: Annotated[
        str,
        typer.Option("--role", help="viewer, predictor, deployer or admin.", show_default=False),
    ],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="Model/deployment name pattern the role covers (fraud-*); repeatable; "
            "default: every name.",
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            help="When the key stops working: 30d, 12h or an ISO-8601 time; default never."
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key and print it once (only a hash of it is stored)."""
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import current_user, open_security_store

    settings = checked_settings()
    grants = _grants(role, scope or [])
    expires_at = _when.expiry(expires, SystemClock().now()) if expires is not None else None
    with open_security_store(settings) as store:
        record, token = store.create_key(name, grants, expires_at, current_user(settings))
    if json:
        payload = {**key_dict(record, record.created_at), "key": token, "warning": _NOT_STORED}
        typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return
    grant_text = ", ".join(str(g) for g in record.grants)
    typer.echo(
        f"created API key {record.key_id} ({grant_text}), expires {_when_text(record.expires_at)}",
        err=True,
    )
    typer.echo(token)
    typer.echo(f"warning: {_NOT_STORED}", err=True)


@keys_app.command("list")
def keys_list(
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List API keys: id, name, grants, dates and status (never the secrets)."""
    with _security_store() as store:
        records = store.list_keys()
    now = SystemClock().now()
    if json:
        typer.echo(
            orjson.dumps([key_dict(r, now) for r in records], option=orjson.OPT_INDENT_2).decode()
        )
        return
    from rich.console import Console
    from rich.table import Column, Table

    console = Console(highlight=False)
    if not records:
        console.print("no API keys yet; create one with: modelport keys create --role ROLE")
        return
    # Key ids are copied into `keys revoke`: never cut them short.
    table = Table(
        Column("id", no_wrap=True, min_width=12),
        "name",
        Column("grants", overflow="fold"),
        "created",
        "expires",
        "revoked",
    )
    for r in records:
        expiry = _when_text(r.expires_at)
        if r.status(now) == "expired":
            expiry += " (expired)"
        revoked = f"{_when_text(r.revoked_at)} by {r.revoked_by}" if r.revoked_at else "-"
        table.add_row(
            r.key_id,
            r.name,
            ", ".join(str(g) for g in r.grants),
            _when_text(r.created_at),
            expiry,
            revoked,
        )
    console.print(table, markup=False)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`modelport keys list`).")],
) -> None:
    """Revoke an API key for good; servers refuse it within their cache time."""
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import current_user, open_security_store

    settings = checked_settings()
    with open_security_store(settings) as store:
        before = store.get_key(key_id)
        record = store.revoke_key(key_id, current_user(settings))
    if before.revoked_at is not None:
        typer.echo(f"API key {key_id} was already revoked ({_when_text(before.revoked_at)})")
        return
    typer.echo(f"revoked API key {record.key_id}" + (f" ({record.name})" if record.name else ""))


# -- key-encryption key ----------------------------------------------------------------------


@keys_app.command("rotate-kek")
def keys_rotate_kek() -> None:
    """Re-wrap every artifact data key with a new key-encryption key, then retire the old one.

    Artifacts are not re-encrypted: only their small key records are rewritten. An interrupted
    rotation is finished by running the command again; the old key is kept until every data key
    is re-wrapped.
    """
    from modelport.cli._settings import checked_settings
    from modelport.service.artifact_guard import rotate_kek

    report = rotate_kek(checked_settings())
    done = "finished an interrupted rotation: " if report.resumed else ""
    typer.echo(
        f"{done}re-wrapped {report.rewrapped} data key(s) with KEK {report.active_id}"
        f" ({report.already_current} already used it)"
    )
    if report.retired_ids:
        typer.echo(f"retired KEK {', '.join(report.retired_ids)}")
    if report.note:
        typer.echo(report.note)


def attach(app: typer.Typer) -> None:
    """Add the ``keys`` command group to ``app``."""
    app.add_typer(keys_app, name="keys")
