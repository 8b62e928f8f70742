"""HTTPS for the REST port: the TLS context, and the client certificate handed to the app.

uvicorn terminates TLS but does not tell the application who the verified client is. The
protocol class here reads the peer certificate once per connection, right after the handshake
(which already verified it against the configured CA), and puts its subject into every request's
scope as the ASGI TLS extension's ``client_cert_name``.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelport.core.errors import ConfigError
from modelport.core.settings import TlsSettings
from modelport.security.certs import certificate_subject
from modelport.server.tls import tls_files

__all__ = ["ClientCertProtocol", "server_ssl_context"]


def server_ssl_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """Return the server's TLS context (TLS 1.2 or newer), or ``None`` when TLS is off.

    With ``tls.ca`` set, clients must present a certificate that chains to it (mutual TLS).

    Raises:
        ConfigError: Only one of cert and key is set, a CA without a server pair, or a file
            that cannot be read or parsed.
    """
    files = tls_files(tls)
    if files is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.cert, files.key)
        if files.ca is not None:
            context.load_verify_locations(files.ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate, key or CA: {exc}") from None
    return context


class ClientCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the verified client certificate's subject."""

    _client_cert_name: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Remember the peer certificate's subject (mutual TLS) for this connection."""
        super().connection_made(transport)
        ssl_object: Any = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                self._client_cert_name = certificate_subject(der)

    def on_message_begin(self) -> None:
        """Start a request's scope, with the TLS extension when there is a client certificate."""
        super().on_message_begin()
        if self._client_cert_name is not None:
            self.scope["extensions"] = {"tls": {"client_cert_name": self._client_cert_name}}
