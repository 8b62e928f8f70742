"""Certificates: a development CA with server and client certificates, and subject names.

:func:`make_dev_certs` writes a throw-away certificate authority and, signed by it, a server
certificate (``serverAuth``, SANs for the given host names and IP addresses) and a client
certificate (``clientAuth``) for mutual TLS. All keys are EC P-256, signatures SHA-256, validity
one year. It is for development and tests: production certificates come from your own PKI.

:func:`certificate_subject` gives the RFC 4514 subject string (``CN=ci-runner,O=Acme``) that
``security.auth.mtls_identities`` maps to grants; :func:`normalize_subject` puts a configured
subject into the same form, so spacing and escaping in settings do not matter.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import ConfigError, Conflict, Unauthenticated

__all__ = [
    "DevCerts",
    "certificate_subject",
    "make_dev_certs",
    "normalize_subject",
]

DEFAULT_HOSTS: Final[tuple[str, ...]] = ("localhost", "127.0.0.1", "::1")
_VALIDITY: Final = dt.timedelta(days=365)
_BACKDATE: Final = dt.timedelta(minutes=5)  # tolerate clocks a little behind ours
_ORG: Final = "modelport development"


@dataclass(frozen=True, slots=True)
class DevCerts:
    """Where :func:`make_dev_certs` wrote each file."""

    ca: Path
    ca_key: Path
    server: Path
    server_key: Path
    client: Path
    client_key: Path
    client_subject: str
    """The client certificate's RFC 4514 subject, as ``mtls_identities`` expects it."""

    @property
    def files(self) -> tuple[Path, ...]:
        """All six files, certificates before keys."""
        return (self.ca, self.ca_key, self.server, self.server_key, self.client, self.client_key)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _check_hosts(hosts: tuple[str, ...]) -> None:
    if not hosts:
        raise ConfigError("at least one host name or IP address is needed for the server cert")
    for host in hosts:
        try:
            ipaddress.ip_address(host.strip("[]"))
            continue
        except ValueError:
            pass
        labels = host.removeprefix("*.").split(".")
        if not host.isascii() or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels
        ):
            raise ConfigError(f"host {host!r} is not a DNS name or an IP address")


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically, the file having ``mode`` from its first byte."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_dev_certs(
    folder: Path | str,
    hosts: tuple[str, ...] | list[str] = DEFAULT_HOSTS,
    client_cn: str = "modelport-dev-client",
    *,
    force: bool = False,
    clock: Clock | None = None,
) -> DevCerts:
    """Write a development CA, a server certificate and a client certificate into ``folder``.

    Files: ``ca.pem``, ``ca-key.pem``, ``server.pem``, ``server-key.pem``, ``client.pem``,
    ``client-key.pem``. Private keys are written with mode ``0600``, certificates ``0644``.

    Args:
        folder: Where to write (created if missing).
        hosts: DNS names and IP addresses the server certificate is valid for.
        client_cn: Common name of the client certificate.
        force: Replace files that already exist.
        clock: Time source for the validity period (the system clock by default).

    Returns:
        The paths written and the client certificate's subject.

    Raises:
        Conflict: One of the files exists and ``force`` is false (nothing is written).
        ConfigError: A host is neither a DNS name nor an IP address, or ``client_cn`` is empty.
    """
    folder = Path(folder)
    hosts = tuple(hosts)
    _check_hosts(hosts)
    if not client_cn.strip():
        raise ConfigError("the client certificate's common name must not be empty")
    paths = DevCerts(
        ca=folder / "ca.pem",
        ca_key=folder / "ca-key.pem",
        server=folder / "server.pem",
        server_key=folder / "server-key.pem",
        client=folder / "client.pem",
        client_key=folder / "client-key.pem",
        client_subject=_name(client_cn).rfc4514_string(),
    )
    existing = [p.name for p in paths.files if p.exists()]
    if existing and not force:
        raise Conflict(
            f"refusing to overwrite {', '.join(existing)} in {folder}: "
            "remove them or pass --force to replace them"
        )
    folder.mkdir(parents=True, exist_ok=True)
    now = (clock or SystemClock()).now()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("modelport development CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _builder(_name(hosts[0]), ca_name, server_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(hosts), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = (
        _builder(_name(client_cn), ca_name, client_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    _write(paths.ca_key, _key_pem(ca_key), 0o600)
    _write(paths.ca, _cert_pem(ca_cert), 0o644)
    _write(paths.server_key, _key_pem(server_key), 0o600)
    _write(paths.server, _cert_pem(server_cert), 0o644)
    _write(paths.client_key, _key_pem(client_key), 0o600)
    _write(paths.client, _cert_pem(client_cert), 0o644)
    return paths


def certificate_subject(der_or_cert: bytes | x509.Certificate) -> str:
    """Return a certificate's subject as an RFC 4514 string (``CN=ci-runner,O=Acme``).

    Args:
        der_or_cert: The certificate, DER bytes (as ``ssl``'s ``getpeercert(binary_form=True)``
            gives it), PEM bytes, or a parsed certificate.

    Raises:
        Unauthenticated: The bytes are not a certificate.
    """
    if isinstance(der_or_cert, x509.Certificate):
        return der_or_cert.subject.rfc4514_string()
    try:
        if der_or_cert.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(der_or_cert)
        else:
            cert = x509.load_der_x509_certificate(der_or_cert)
    except ValueError:
        raise Unauthenticated("client certificate could not be parsed") from None
    return cert.subject.rfc4514_string()


def _trim_separators(text: str) -> str:
    """Drop unescaped spaces around ``,`` and ``+`` (``CN=a, O=b`` is a common way to write it)."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char in ",+":
            parts.append(_trim("".join(current)))
            parts.append(char)
            current = []
        else:
            current.append(char)
    parts.append(_trim("".join(current)))
    return "".join(parts)


def _trim(part: str) -> str:
    part = part.lstrip(" ")
    while part.endswith(" ") and (len(part) - len(part[:-1].rstrip("\\")) - 1) % 2 == 0:
        part = part[:-1]  # the space is not escaped (an even number of backslashes before it)
    return part


def normalize_subject(text: str) -> str:
    """Return ``text``, an RFC 4514 distinguished name, in :func:`certificate_subject`'s form.

    Spaces around the ``,`` and ``+`` separators are ignored, so ``CN=a, O=b`` and ``CN=a,O=b``
    normalise to the same string.

    Raises:
        ConfigError: ``text`` is not an RFC 4514 distinguished name.
    """
    expected = "expected an RFC 4514 subject such as 'CN=ci-runner,O=Acme'"
    try:
        name = x509.Name.from_rfc4514_string(_trim_separators(text.strip()))
    except ValueError:
        raise ConfigError(f"{text!r} is not an RFC 4514 subject: {expected}") from None
    if not list(name):
        raise ConfigError(f"{text!r} is not an RFC 4514 subject: {expected}")
    return name.rfc4514_string()
