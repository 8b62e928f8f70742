"""Key-encryption key providers: file (0600 key ring) and env, the lazy registry, rotation."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelport.core.errors import ConfigError, IntegrityError
from modelport.core.settings import ArtifactSecuritySettings
from modelport.security.kek import (
    KEY_PROVIDERS,
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    kek_id,
    open_key_provider,
    provider_class,
)
from modelport.testing import FakeClock

AAD = b"binding"
DATA_KEY = bytes(range(32))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_file_provider_creates_a_private_key_ring_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "kek.json"
    provider = FileKeyProvider(path, FakeClock(datetime(2025, 5, 1, tzinfo=UTC)))
    assert not path.exists()
    active = provider.active_id()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    doc = json.loads(path.read_text())
    assert doc["format"] == "modelport.kek/v1" and doc["retiring"] == []
    assert doc["active"]["id"] == active == kek_id(base64.b64decode(doc["active"]["key"]))
    assert doc["active"]["created_at"] == "2025-05-01T00:00:00+00:00"
    assert FileKeyProvider(path).active_id() == active, "a second provider shares the ring"
    assert list(path.parent.iterdir()) == [path], "no temporary file is left"


def test_file_provider_wraps_and_unwraps(tmp_path: Path) -> None:
    provider = FileKeyProvider(tmp_path / "kek.json")
    wrapped = provider.wrap(DATA_KEY, AAD)
    assert wrapped.kek_id == provider.active_id() and DATA_KEY not in wrapped.blob
    assert provider.unwrap(wrapped, AAD) == DATA_KEY
    with pytest.raises(IntegrityError, match="does not unwrap"):
        provider.unwrap(wrapped, b"other binding")


def test_file_provider_does_not_create_a_key_to_decrypt(tmp_path: Path) -> None:
    sealed = FileKeyProvider(tmp_path / "a.json").wrap(DATA_KEY, AAD)
    with pytest.raises(ConfigError, match="does not exist"):
        FileKeyProvider(tmp_path / "b.json").unwrap(sealed, AAD)
    assert not (tmp_path / "b.json").exists()


def test_file_provider_refuses_a_ring_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    provider = FileKeyProvider(path)
    provider.active_id()
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        provider.active_id()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"format": "other"}',
        '{"format": "modelport.kek/v1"}',
        '{"format": "modelport.kek/v1", "active": {"id": "x", "key": "AAAA"}}',
    ],
)
def test_file_provider_refuses_a_malformed_ring(tmp_path: Path, content: str) -> None:
    path = tmp_path / "kek.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=r"malformed|32 bytes"):
        FileKeyProvider(path).active_id()


def test_file_rotation_keeps_the_old_key_until_finished(tmp_path: Path) -> None:
    provider = FileKeyProvider(tmp_path / "kek.json")
    old = provider.active_id()
    wrapped = provider.wrap(DATA_KEY, AAD)
    start = provider.begin_rotation()
    assert start.active_id != old and start.retiring_ids == (old,) and not start.resumed
    assert provider.active_id() == start.active_id
    assert provider.unwrap(wrapped, AAD) == DATA_KEY, "the retiring key still unwraps"
    again = provider.begin_rotation()  # e.g. after a crash: resumes, makes no third key
    assert (again.active_id, again.retiring_ids, again.resumed) == (start.active_id, (old,), True)
    rewrapped = provider.wrap(provider.unwrap(wrapped, AAD), AAD)
    assert provider.finish_rotation() == (old,)
    assert provider.finish_rotation() == ()
    assert provider.unwrap(rewrapped, AAD) == DATA_KEY
    with pytest.raises(IntegrityError, match=f"wrapped with KEK {old}"):
        provider.unwrap(wrapped, AAD)
    assert stat.S_IMODE((tmp_path / "kek.json").stat().st_mode) == 0o600


def test_env_provider_reads_the_variable() -> None:
    key = b"k" * 32
    provider = EnvKeyProvider("MY_KEK", {"MY_KEK": b64(key)})
    assert provider.active_id() == kek_id(key)
    assert provider.unwrap(provider.wrap(DATA_KEY, AAD), AAD) == DATA_KEY


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "needs the key-encryption key in MY_KEK"),
        ("not base64!!", "MY_KEK is not valid base64"),
        (b64(b"short"), "must hold 32 bytes .* it holds 5"),
        (b64(b"x" * 33), "it holds 33"),
    ],
)
def test_env_provider_refuses_bad_keys(value: str, message: str) -> None:
    environ = {"MY_KEK": value} if value else {}
    with pytest.raises(ConfigError, match=message) as caught:
        EnvKeyProvider("MY_KEK", environ)
    if value:
        assert value not in str(caught.value), "the secret is never echoed"


def test_env_provider_refuses_a_bad_previous_key() -> None:
    with pytest.raises(ConfigError, match="MY_KEK_PREVIOUS must hold 32 bytes"):
        EnvKeyProvider("MY_KEK", {"MY_KEK": b64(b"a" * 32), "MY_KEK_PREVIOUS": b64(b"b")})


def test_env_rotation_uses_the_previous_variable() -> None:
    old, new = b"o" * 32, b"n" * 32
    wrapped = EnvKeyProvider("K", {"K": b64(old)}).wrap(DATA_KEY, AAD)
    with pytest.raises(ConfigError, match="K_PREVIOUS"):
        EnvKeyProvider("K", {"K": b64(old)}).begin_rotation()
    rotating = EnvKeyProvider("K", {"K": b64(new), "K_PREVIOUS": b64(old)})
    start = rotating.begin_rotation()
    assert (start.active_id, start.retiring_ids) == (kek_id(new), (kek_id(old),))
    assert rotating.unwrap(wrapped, AAD) == DATA_KEY
    assert rotating.finish_rotation() == (kek_id(old),)
    with pytest.raises(IntegrityError, match="wrong key-encryption key"):
        EnvKeyProvider("K", {"K": b64(new)}).unwrap(wrapped, AAD)


def test_registry_is_lazy_and_extensible(tmp_path: Path) -> None:
    assert set(KEY_PROVIDERS) == {"file", "env"}
    assert provider_class("file") is FileKeyProvider
    assert provider_class("modelport.security.kek:EnvKeyProvider") is EnvKeyProvider
    with pytest.raises(ConfigError, match="unknown key provider 'kms'"):
        provider_class("kms")
    with pytest.raises(ConfigError, match="cannot import"):
        provider_class("no_such_module:Provider")
    with pytest.raises(ConfigError, match="not a KeyProvider"):
        provider_class("modelport.security.kek:WrappedKey")
    assert issubclass(provider_class("env"), KeyProvider)


def test_open_key_provider_from_settings(tmp_path: Path) -> None:
    file = open_key_provider(ArtifactSecuritySettings(), tmp_path, {})
    assert isinstance(file, FileKeyProvider) and file.path == tmp_path / "kek.json"
    custom = ArtifactSecuritySettings(kek_file=tmp_path / "elsewhere.json")
    elsewhere = open_key_provider(custom, tmp_path, {})
    assert isinstance(elsewhere, FileKeyProvider) and elsewhere.path == tmp_path / "elsewhere.json"
    env = ArtifactSecuritySettings(kek_provider="env", kek_env="VAR")
    provider = open_key_provider(env, tmp_path, {"VAR": b64(b"v" * 32)})
    assert isinstance(provider, EnvKeyProvider) and provider.active_id() == kek_id(b"v" * 32)
