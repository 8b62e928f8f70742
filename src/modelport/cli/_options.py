"""The options every serving command shares (``serve``, ``gateway``, ``up``, ``controlplane``).

One definition each, so the commands spell and explain them alike. typer reads an option object
afresh for every command that uses it.
"""

from __future__ import annotations

import typer

__all__ = [
    "GRPC_PORT",
    "HOST",
    "INSECURE",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "NO_AUTH",
    "NO_GRPC",
    "REST_PORT",
    "TLS_CA",
    "TLS_CERT",
    "TLS_KEY",
    "WORKERS",
]

HOST = typer.Option(help="Address to bind \\[default: 127.0.0.1].")
REST_PORT = typer.Option(
    "--port", min=0, max=65535, help="REST port; 0 picks a free one \\[default: 8080]."
)
GRPC_PORT = typer.Option(min=0, max=65535, help="gRPC port; 0 picks a free one \\[default: 8081].")
NO_GRPC = typer.Option("--no-grpc", help="Serve REST only.")
WORKERS = typer.Option(min=1, help="Worker processes sharing the ports \\[default: one per core].")
NO_AUTH = typer.Option(
    "--no-auth", help="Turn authentication off (local development; loopback addresses only)."
)
INSECURE = typer.Option("--insecure", help="Allow --no-auth on a non-loopback address.")
TLS_CERT = typer.Option(help="Server certificate chain (PEM): serve HTTPS (and gRPC over TLS).")
TLS_KEY = typer.Option(help="Server private key (PEM).")
TLS_CA = typer.Option(help="CA (PEM) that client certificates must chain to: mutual TLS.")
LOG_LEVEL = typer.Option(help="debug, info, warning or error \\[default: info].")
LOG_FORMAT = typer.Option(help="text or json (one JSON object per line) \\[default: text].")
