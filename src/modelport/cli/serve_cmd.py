"""``modelport serve``: host registered versions or artifact files over REST and gRPC (OIP v2)."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, get_args

import typer

from modelport.cli import _options as o
from modelport.core.errors import ConfigError

if TYPE_CHECKING:
    from modelport.core.settings import BatchingSettings, Settings
    from modelport.server.supervisor import Listening

# Settings (pydantic), the servers (uvicorn, grpc) and the registry (SQLAlchemy) are imported
# when a command runs, so that loading this module for `modelport --help` stays cheap.

__all__ = [
    "announce",
    "attach",
    "is_loopback",
    "log_settings",
    "parse_batching",
    "security_settings",
    "server_options",
]


def parse_batching(
    values: list[str], default: BatchingSettings
) -> tuple[BatchingSettings, dict[str, BatchingSettings]]:
    """Parse ``--batching`` values: ``[MODEL:]key=value[,key=value...]``.

    Giving ``--batching`` turns batching on (``enabled=false`` turns it off). Without ``MODEL:``
    the settings apply to every model; a per-model value starts from those.

    Returns:
        The settings for every model, and per-model settings by served name.

    Raises:
        ConfigError: A value is malformed or a key or value is invalid.
    """
    updates: dict[str | None, dict[str, str]] = {}
    for value in values:
        model, sep, rest = value.partition(":")
        if not sep:
            model, rest = "", value
        fields = updates.setdefault(model or None, {"enabled": "true"})
        for item in filter(None, rest.split(",")):
            key, eq, setting = item.partition("=")
            if not eq or not key:
                raise ConfigError(f"--batching {value!r}: expected [MODEL:]KEY=VALUE[,KEY=VALUE]")
            fields[key.strip()] = setting.strip()

    from pydantic import ValidationError

    from modelport.core.settings import BatchingSettings

    def build(base: BatchingSettings, fields: dict[str, str]) -> BatchingSettings:
        try:
            return BatchingSettings.model_validate({**base.model_dump(), **fields})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"--batching: {problems}") from None

    every = build(default, updates.pop(None, {})) if None in updates else default
    return every, {name: build(every, fields) for name, fields in updates.items() if name}


def announce(listening: Listening, what: str) -> None:
    """Print where a server listens, once every worker serves.

    ``serving WHAT with N worker(s)``, the gRPC address, then ``serving on URL`` (the line
    scripts wait for), in one write: log lines on standard error may share a pipe with it.
    """
    lines = [f"serving {what} with {listening.workers} worker(s)"]
    if listening.grpc_address is not None:
        lines.append(f"grpc on {listening.grpc_address}")
    lines.append(f"serving on {listening.rest_url}")
    # One write: log lines on standard error may share a pipe with it (never mid-line).
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()


def serve(
    models: Annotated[
        list[str],
        typer.Argument(
            help="NAME, NAME@VERSION, NAME@ALIAS (registered), an artifact file or module:Class "
            "(with --name), or SERVED=ANY-OF-THOSE to choose the served name.",
            show_default=False,
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="Served name for an artifact file (one artifact only).")
    ] = None,
    host: Annotated[str | None, o.HOST] = None,
    port: Annotated[int | None, o.REST_PORT] = None,
    grpc_port: Annotated[int | None, o.GRPC_PORT] = None,
    no_grpc: Annotated[bool, o.NO_GRPC] = False,
    workers: Annotated[int | None, o.WORKERS] = None,
    batching: Annotated[
        list[str] | None,
        typer.Option(
            help="Dynamic batching, [MODEL:]KEY=VALUE,...; keys: max_batch_rows, max_delay (µs), "
            "preferred_batch_rows, max_queue_rows, enabled. Repeatable."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or gpu \\[default: cpu].")] = None,
    original: Annotated[
        bool,
        typer.Option(
            "--original",
            help="Serve registered scikit-learn versions as registered, not their ONNX copy.",
        ),
    ] = False,
    no_auth: Annotated[bool, o.NO_AUTH] = False,
    insecure: Annotated[bool, o.INSECURE] = False,
    tls_cert: Annotated[Path | None, o.TLS_CERT] = None,
    tls_key: Annotated[Path | None, o.TLS_KEY] = None,
    tls_ca: Annotated[Path | None, o.TLS_CA] = None,
    log_level: Annotated[str | None, o.LOG_LEVEL] = None,
    log_format: Annotated[str | None, o.LOG_FORMAT] = None,
) -> None:
    """Serve models over REST and gRPC (Open Inference Protocol v2) until interrupted."""
    from modelport.cli._settings import checked_settings
    from modelport.server.logs import start_logs
    from modelport.server.supervisor import serve as serve_models
    from modelport.service.wiring import ServeTarget, open_registrar, resolve_sources

    settings = server_options(checked_settings(), host, port, grpc_port, no_grpc, workers, device)
    settings = security_settings(settings, no_auth, insecure, tls_cert, tls_key, tls_ca)
    settings = log_settings(settings, log_level, log_format)
    targets = [ServeTarget(spec) for spec in models]
    direct = [t for t in targets if t.is_direct()]
    if name is not None:
        if len(direct) != 1 or direct[0].name is not None:
            raise ConfigError(
                "--name names one artifact; give exactly one artifact with it, "
                "or name each one as NAME=ARTIFACT"
            )
        direct[0].name = name
    every, per_model = parse_batching(batching or [], settings.batching)
    use_registry = len(direct) < len(targets)
    registrar = open_registrar(settings) if use_registry else None
    try:
        sources = resolve_sources(targets, registrar, per_model, every, original)
    finally:
        if registrar is not None:
            registrar.store.close()  # workers open their own connections
    names = [f"{s.name}@{s.version}" for s in sources]
    logs = start_logs(settings.log)
    try:
        status = serve_models(
            settings, sources, use_registry, lambda at: announce(at, ", ".join(names)), logs
        )
    finally:
        logs.stop()
    raise typer.Exit(status)


def log_settings(settings: Settings, level: str | None, form: str | None) -> Settings:
    """Apply ``--log-level`` and ``--log-format`` to ``settings``.

    Raises:
        ConfigError: A value is not one of the choices.
    """
    updates: dict[str, object] = {}
    for option, value, field in (("--log-level", level, "level"), ("--log-format", form, "format")):
        if value is None:
            continue
        from modelport.core.settings import LogSettings

        choices = get_args(LogSettings.model_fields[field].annotation)
        if value.lower() not in choices:
            raise ConfigError(f"{option} {value!r}: expected one of {', '.join(choices)}")
        updates[field] = value.lower()
    if not updates:
        return settings
    return settings.model_copy(update={"log": settings.log.model_copy(update=updates)})


def server_options(
    settings: Settings,
    host: str | None,
    port: int | None,
    grpc_port: int | None,
    no_grpc: bool,
    workers: int | None,
    device: str | None,
) -> Settings:
    """Apply the serving options (address, ports, workers, device) to ``settings``.

    Raises:
        ConfigError: ``--device`` is not cpu or gpu.
    """
    server: dict[str, object] = {
        k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v is not None
    }
    if grpc_port is not None:
        server["grpc_port"] = grpc_port
    if no_grpc:
        server["grpc_port"] = None
    updates: dict[str, object] = {"server": settings.server.model_copy(update=server)}
    if device is not None:
        if device not in ("cpu", "gpu"):
            raise ConfigError(f"--device {device!r}: expected cpu or gpu")
        updates["runtime"] = settings.runtime.model_copy(update={"device": device})
    return settings.model_copy(update=updates)


def security_settings(
    settings: Settings,
    no_auth: bool,
    insecure: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_ca: Path | None,
    *,
    host: str | None = None,
) -> Settings:
    """Apply ``--no-auth``, ``--insecure`` and the TLS options to ``settings``.

    ``host`` is the address the process will listen on (``settings.server.host`` by default),
    which ``--no-auth`` needs to be a loopback address unless ``--insecure`` is given.

    Raises:
        ConfigError: ``--no-auth`` on a non-loopback address without ``--insecure``, or
            incomplete TLS options.
    """
    security = settings.security
    tls = security.tls.model_copy(
        update={
            k: v for k, v in (("cert", tls_cert), ("key", tls_key), ("ca", tls_ca)) if v is not None
        }
    )
    auth = security.auth
    if no_auth:
        auth = auth.model_copy(update={"enabled": False})
    host = settings.server.host if host is None else host
    if not auth.enabled and not insecure and not is_loopback(host):
        raise ConfigError(
            f"authentication is off but the server would listen on {host}, which "
            "other machines can reach: anyone could call and manage its models. Keep "
            "authentication on (create a key with 'modelport keys create'), bind 127.0.0.1, "
            "or add --insecure if this network is trusted"
        )
    from modelport.server.rest.tls import server_ssl_context

    server_ssl_context(tls)  # fail here, before any worker starts, on bad TLS files
    return settings.model_copy(
        update={"security": security.model_copy(update={"tls": tls, "auth": auth})}
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def attach(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve)
