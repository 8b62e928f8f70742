"""The TLS files both transports serve with, checked once for both."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from modelport.core.errors import ConfigError
from modelport.core.settings import TlsSettings

__all__ = ["TlsFiles", "tls_files"]


class TlsFiles(NamedTuple):
    """The server's certificate chain and key, and the CA client certificates must chain to."""

    cert: Path
    key: Path
    ca: Path | None


def tls_files(tls: TlsSettings) -> TlsFiles | None:
    """Return the files to serve TLS with, or ``None`` when TLS is off.

    Raises:
        ConfigError: Only one of cert and key is set, or a CA without the server's own pair.
    """
    if tls.cert is None and tls.key is None:
        if tls.ca is not None:
            raise ConfigError("--tls-ca needs --tls-cert and --tls-key (the server's own pair)")
        return None
    if tls.cert is None or tls.key is None:
        raise ConfigError("TLS needs both --tls-cert and --tls-key")
    return TlsFiles(tls.cert, tls.key, tls.ca)
