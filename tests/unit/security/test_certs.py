"""Development certificates: files, modes, extensions, and a real mutual-TLS handshake."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelport.core.errors import ConfigError, Conflict, Unauthenticated
from modelport.security.certs import (
    DevCerts,
    certificate_subject,
    make_dev_certs,
    normalize_subject,
)
from tests.unit.security._clock import FakeClock

NAMES = ["ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem"]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return make_dev_certs(tmp_path_factory.mktemp("certs") / "dev")


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_files_and_modes(made: DevCerts) -> None:
    folder = made.ca.parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(NAMES)
    assert [p.name for p in made.files] == NAMES
    for path in (made.ca_key, made.server_key, made.client_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.curve.name == "secp256r1"
    for path in (made.ca, made.server, made.client):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_extensions(made: DevCerts) -> None:
    ca, server, client = load(made.ca), load(made.server), load(made.client)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    for leaf in (server, client):
        assert leaf.issuer == ca.subject
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert leaf.signature_hash_algorithm is not None
        assert leaf.signature_hash_algorithm.name == "sha256"
        leaf.verify_directly_issued_by(ca)
    server_eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    client_eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(server_eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert list(client_eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert (
        client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        == "modelport-dev-client"
    )


def test_validity_is_about_a_year(tmp_path: Path) -> None:
    clock = FakeClock()
    made = make_dev_certs(tmp_path, clock=clock)
    now = clock.now()
    for path in (made.ca, made.server, made.client):
        cert = load(path)
        assert cert.not_valid_before_utc <= now
        assert now - cert.not_valid_before_utc < dt.timedelta(hours=1)
        assert cert.not_valid_after_utc - now == dt.timedelta(days=365)


def test_custom_hosts_and_client_name(tmp_path: Path) -> None:
    made = make_dev_certs(
        tmp_path, ["models.internal", "*.models.internal", "10.0.0.7"], "ci-runner"
    )
    san = load(made.server).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["models.internal", "*.models.internal"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]
    assert made.client_subject == "CN=ci-runner,O=modelport development"
    assert certificate_subject(load(made.client)) == made.client_subject


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    first = make_dev_certs(tmp_path)
    before = {p.name: p.read_bytes() for p in first.files}
    with pytest.raises(Conflict, match="refusing to overwrite ca.pem, ca-key.pem, server.pem"):
        make_dev_certs(tmp_path)
    assert {p.name: p.read_bytes() for p in first.files} == before
    (tmp_path / "ca.pem").unlink()
    for name in NAMES[1:]:
        (tmp_path / name).unlink()
    (tmp_path / "client-key.pem").write_text("mine")
    with pytest.raises(Conflict, match=r"refusing to overwrite client-key.pem in .*pass --force"):
        make_dev_certs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client-key.pem"]


def test_force_replaces_and_keeps_key_modes(tmp_path: Path) -> None:
    first = make_dev_certs(tmp_path)
    before_ca = first.ca.read_bytes()
    first.server_key.chmod(0o644)
    second = make_dev_certs(tmp_path, force=True)
    assert second.ca.read_bytes() != before_ca
    assert stat.S_IMODE(second.server_key.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("hosts", [[], ["bad host"], ["exa_mple..com"], ["ünïcode.example"]])
def test_bad_hosts(tmp_path: Path, hosts: list[str]) -> None:
    with pytest.raises(ConfigError):
        make_dev_certs(tmp_path, hosts)
    assert list(tmp_path.iterdir()) == []


def test_empty_client_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="common name"):
        make_dev_certs(tmp_path, client_cn=" ")


def test_certificate_subject_forms(made: DevCerts) -> None:
    pem = made.client.read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert certificate_subject(der) == certificate_subject(pem) == certificate_subject(cert)
    assert certificate_subject(der) == "CN=modelport-dev-client,O=modelport development"
    assert (
        normalize_subject("CN=modelport-dev-client, O=modelport development") == made.client_subject
    )
    with pytest.raises(Unauthenticated, match="could not be parsed"):
        certificate_subject(b"\x30\x03garbage")


# ---- a real handshake --------------------------------------------------------------------


def server_context(made: DevCerts, require_client: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(made.server, made.server_key)
    if require_client:
        ctx.load_verify_locations(made.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(made: DevCerts, with_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(made.ca))
    if with_cert:
        ctx.load_cert_chain(made.client, made.client_key)
    return ctx


def handshake(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    server_hostname: str,
    family: socket.AddressFamily = socket.AF_INET,
) -> str | None:
    """Connect over loopback; return the client certificate's subject as the server saw it."""
    address = "127.0.0.1" if family == socket.AF_INET else "::1"
    seen: list[str | None] = []
    errors: list[BaseException] = []
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((address, 0))
        listener.listen(1)
        listener.settimeout(10)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    der = tls.getpeercert(binary_form=True)
                    seen.append(certificate_subject(der) if der else None)
                    tls.sendall(b"hello")
            except (OSError, ssl.SSLError) as exc:
                errors.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with socket.create_connection((address, port), timeout=10) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                    assert tls.recv(5) == b"hello"
        finally:
            thread.join(10)
    if errors:
        raise errors[0]
    return seen[0]


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_mutual_tls_handshake(made: DevCerts, hostname: str) -> None:
    subject = handshake(server_context(made), client_context(made), hostname)
    assert subject == made.client_subject == "CN=modelport-dev-client,O=modelport development"


def test_handshake_over_ipv6(made: DevCerts) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    assert handshake(server_context(made), client_context(made), "::1", socket.AF_INET6)


def test_server_without_client_ca_sees_no_subject(made: DevCerts) -> None:
    assert (
        handshake(server_context(made, require_client=False), client_context(made), "localhost")
        is None
    )


def test_client_without_certificate_is_refused(made: DevCerts) -> None:
    with pytest.raises((ssl.SSLError, OSError)):
        handshake(server_context(made), client_context(made, with_cert=False), "localhost")


def test_name_not_in_the_certificate_is_refused(made: DevCerts) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(server_context(made, require_client=False), client_context(made), "example.com")


def test_other_ca_is_not_trusted(made: DevCerts, tmp_path: Path) -> None:
    other = make_dev_certs(tmp_path)
    ctx = ssl.create_default_context(cafile=str(other.ca))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server_context(made, require_client=False), ctx, "localhost")


def test_client_certificate_cannot_serve(made: DevCerts) -> None:
    # The clientAuth-only certificate must not pass as a server certificate.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(made.client, made.client_key)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate purpose"):
        handshake(ctx, client_context(made, with_cert=False), "localhost")
