"""The TLS files both transports serve with, checked once for both."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from modelport.core.errors import ConfigError, NotFound
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
        ConfigError: Only one of cert and key is set, a CA without the server's own pair, or a
            file that is a folder.
        NotFound: A file does not exist.
    """
    if tls.cert is None and tls.key is None:
        if tls.ca is not None:
            raise ConfigError("--tls-ca needs --tls-cert and --tls-key (the server's own pair)")
        return None
    if tls.cert is None or tls.key is None:
        raise ConfigError("TLS needs both --tls-cert and --tls-key")
    for option, path in (("--tls-cert", tls.cert), ("--tls-key", tls.key), ("--tls-ca", tls.ca)):
        if path is not None and not path.exists():
            raise NotFound(f"{option} {str(path)!r}: no such file")
        if path is not None and not path.is_file():
            raise ConfigError(f"{option} {str(path)!r} is not a file")
    return TlsFiles(tls.cert, tls.key, tls.ca)
