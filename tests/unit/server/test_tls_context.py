"""The REST server's TLS context and the ``serve`` options that guard authentication."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from modelport.cli.serve_cmd import is_loopback, security_settings
from modelport.core.errors import ConfigError, NotFound
from modelport.core.settings import ServerSettings, Settings, TlsSettings
from modelport.security.certs import DevCerts, make_dev_certs
from modelport.server.grpc.server import server_credentials
from modelport.server.rest.tls import server_ssl_context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


def test_no_tls_settings_means_plaintext() -> None:
    assert server_ssl_context(TlsSettings()) is None
    assert server_credentials(TlsSettings()) is None


def test_the_context_speaks_tls_1_2_or_newer_only(certs: DevCerts) -> None:
    context = server_ssl_context(TlsSettings(cert=certs.server, key=certs.server_key))
    assert context is not None
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_NONE


def test_a_ca_requires_client_certificates(certs: DevCerts) -> None:
    tls = TlsSettings(cert=certs.server, key=certs.server_key, ca=certs.ca)
    context = server_ssl_context(tls)
    assert context is not None and context.verify_mode is ssl.CERT_REQUIRED
    assert server_credentials(tls) is not None


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"cert": "server"}, "both --tls-cert and --tls-key"),
        ({"key": "server_key"}, "both --tls-cert and --tls-key"),
        ({"ca": "ca"}, "--tls-ca needs --tls-cert"),
        ({"cert": "server", "key": "ca"}, "cannot load"),
    ],
)
def test_incomplete_or_wrong_tls_files_are_config_errors(
    certs: DevCerts, fields: dict[str, str], fragment: str
) -> None:
    tls = TlsSettings(**{k: getattr(certs, v) for k, v in fields.items()})
    with pytest.raises(ConfigError, match=fragment):
        server_ssl_context(tls)


def test_a_missing_tls_file_is_not_found_and_names_its_option(
    tmp_path: Path, certs: DevCerts
) -> None:
    tls = TlsSettings(cert=tmp_path / "nope.pem", key=certs.server_key)
    with pytest.raises(NotFound, match="--tls-cert '.*nope.pem': no such file"):
        server_ssl_context(tls)
    with pytest.raises(NotFound, match="--tls-cert"):
        server_credentials(tls)


def test_an_unreadable_tls_file_is_a_config_error(tmp_path: Path, certs: DevCerts) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    tls = TlsSettings(cert=garbage, key=certs.server_key)
    with pytest.raises(ConfigError):
        server_ssl_context(tls)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def settings_on(host: str) -> Settings:
    return Settings(server=ServerSettings(host=host))


def test_no_auth_is_refused_on_a_reachable_address() -> None:
    with pytest.raises(ConfigError, match="--insecure"):
        security_settings(settings_on("0.0.0.0"), True, False, None, None, None)


def test_no_auth_is_allowed_on_loopback_or_with_insecure() -> None:
    local = security_settings(settings_on("127.0.0.1"), True, False, None, None, None)
    assert not local.security.auth.enabled
    exposed = security_settings(settings_on("0.0.0.0"), True, True, None, None, None)
    assert not exposed.security.auth.enabled


def test_auth_stays_on_by_default() -> None:
    kept = security_settings(settings_on("0.0.0.0"), False, False, None, None, None)
    assert kept.security.auth.enabled
