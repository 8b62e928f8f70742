"""``modelport certs dev`` as a user runs it: a real process writing real files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow  # each command is a fresh Python process

NAMES = ["ca-key.pem", "ca.pem", "client-key.pem", "client.pem", "server-key.pem", "server.pem"]


def test_certs_dev_writes_and_explains(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    done = modelport(tmp_path, "certs", "dev", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == NAMES
    for name in ("ca-key.pem", "server-key.pem", "client-key.pem"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    for name in NAMES:
        assert str(out / name) in done.stdout
    assert (
        f"modelport serve --tls-cert {out}/server.pem --tls-key {out}/server-key.pem" in done.stdout
    )
    assert f"--tls-ca {out}/ca.pem" in done.stdout
    assert "CN=modelport-dev-client,O=modelport development" in done.stdout
    assert "MODELPORT_SECURITY__AUTH__MTLS_IDENTITIES=" in done.stdout
    assert "localhost, 127.0.0.1, ::1" in done.stdout


def test_certs_dev_options(tmp_path: Path) -> None:
    out = tmp_path / "c"
    done = modelport(
        tmp_path,
        "certs",
        "dev",
        str(out),
        "--host",
        "models.internal",
        "--host",
        "10.1.2.3",
        "--client-cn",
        "ci-runner",
    )
    assert done.returncode == 0, done.stderr
    server = x509.load_pem_x509_certificate((out / "server.pem").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["models.internal"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert "CN=ci-runner,O=modelport development" in done.stdout


def test_certs_dev_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    assert modelport(tmp_path, "certs", "dev", str(out)).returncode == 0
    before = (out / "ca.pem").read_bytes()
    done = modelport(tmp_path, "certs", "dev", str(out))
    assert done.returncode == 4, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: refusing to overwrite ca.pem, ca-key.pem, server.pem")
    assert "--force" in lines[0]
    assert (out / "ca.pem").read_bytes() == before
    done = modelport(tmp_path, "certs", "dev", str(out), "--force")
    assert done.returncode == 0, done.stderr
    assert (out / "ca.pem").read_bytes() != before


def test_certs_dev_bad_host(tmp_path: Path) -> None:
    done = modelport(tmp_path, "certs", "dev", str(tmp_path / "c"), "--host", "not a host")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: host 'not a host' is not a DNS name or an IP address"
    assert not (tmp_path / "c").exists()
