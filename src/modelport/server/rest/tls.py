"""HTTPS for the REST port: the TLS context.

The verified client certificate reaches the app through the REST protocol
(:mod:`modelport.server.rest.http_protocol`).
"""

from __future__ import annotations

import ssl

from modelport.core.errors import ConfigError
from modelport.core.settings import TlsSettings
from modelport.server.tls import tls_files

__all__ = ["server_ssl_context"]


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
