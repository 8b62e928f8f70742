"""Certificate commands: ``certs dev`` writes a development CA, server and client certificates."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Final

import typer

__all__ = ["DEFAULT_HOSTS", "attach", "certs_app"]

DEFAULT_HOSTS: Final = ("localhost", "127.0.0.1", "::1")
"""Where a development server certificate is valid unless ``--host`` says otherwise (the same as
:data:`modelport.security.certs.DEFAULT_HOSTS`, which is not imported here: it loads the
cryptography package, and ``--help`` must not)."""

certs_app = typer.Typer(
    help="TLS certificates for development and tests (production ones come from your PKI).",
    no_args_is_help=True,
)


@certs_app.command("dev")
def dev(
    folder: Annotated[
        Path, typer.Argument(help="Folder to write the certificates into.", show_default=False)
    ],
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            help="DNS name or IP address the server certificate is valid for (repeatable) "
            f"\\[default: {', '.join(DEFAULT_HOSTS)}].",
            show_default=False,
        ),
    ] = None,
    client_cn: Annotated[
        str, typer.Option("--client-cn", help="Common name of the client certificate.")
    ] = "modelport-dev-client",
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
) -> None:
    """Write a development CA and, signed by it, a server and a client certificate."""
    from modelport.security.certs import make_dev_certs

    hosts = tuple(host) if host else DEFAULT_HOSTS
    made = make_dev_certs(folder, hosts, client_cn, force=force)
    print(f"wrote a development CA, server and client certificates to {folder}:")
    for path in made.files:
        print(f"  {path}")
    print(f"server certificate valid for: {', '.join(hosts)}")
    q = shlex.quote
    print("serve with TLS:")
    print(f"  modelport serve --tls-cert {q(str(made.server))} --tls-key {q(str(made.server_key))}")
    print(f"add --tls-ca {q(str(made.ca))} to require client certificates (mutual TLS);")
    print(f"grant the client certificate, subject {made.client_subject!r}, a role:")
    identities = json.dumps({made.client_subject: ["admin"]})
    print(f"  MODELPORT_SECURITY__AUTH__MTLS_IDENTITIES={q(identities)}")
    print("call it:")
    print(
        f"  curl --cacert {q(str(made.ca))} --cert {q(str(made.client))} "
        f"--key {q(str(made.client_key))} https://{_url_host(hosts[0])}:8080/v2/health/ready"
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def attach(app: typer.Typer) -> None:
    """Add the ``certs`` command group to ``app``."""
    app.add_typer(certs_app, name="certs")
