"""Key-encryption keys (KEKs): who wraps the per-artifact data keys, and how a KEK is rotated.

Every artifact is encrypted with its own data key (see :mod:`modelport.security.envelope`); the
data key is stored only *wrapped* by a KEK. A :class:`KeyProvider` holds the KEKs and never hands
them out: it wraps and unwraps, so a KMS or HSM backend keeps its key inside the device.

Built-in providers (short names map to ``"module:Class"`` strings in :data:`KEY_PROVIDERS` and
only the chosen one is imported, see :func:`provider_class`):

* ``file``: :class:`FileKeyProvider`, a JSON key ring (``HOME/keys/kek.json``) created with mode
  0600 on first use; the provider refuses a key ring that group or others can read.
* ``env``: :class:`EnvKeyProvider`, 32 bytes in base64 in an environment variable
  (``MODELPORT_KEK``); during a rotation ``<VAR>_PREVIOUS`` holds the key being retired.

Wrapping is AES-256-GCM with a random 96-bit nonce; the associated data the caller passes (the
artifact binding) must be given again to unwrap. A KEK is named by its id, the first 16 hex digits
of ``SHA-256("modelport kek id" || key)``, so a wrapped key says which KEK opens it without
revealing it.

Rotation is crash-safe in three steps: :meth:`KeyProvider.begin_rotation` makes a new active KEK
and keeps the old one as *retiring* (both in the key ring, written atomically); the caller re-wraps
every data key with the active KEK, one sidecar at a time; :meth:`KeyProvider.finish_rotation`
drops the retiring KEKs, which the caller does only once no data key needs them. A rotation
interrupted between the steps is resumed by calling :meth:`~KeyProvider.begin_rotation` again: it
keeps the pending new key instead of making another.

Key ring file format (``modelport.kek/v1``)::

    {"format": "modelport.kek/v1",
     "active": {"id": "3f1c...", "key": "<base64>", "created_at": "2025-01-01T00:00:00+00:00"},
     "retiring": [{"id": ..., "key": ..., "created_at": ...}]}
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import importlib
import json
import os
import secrets
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import ConfigError, IntegrityError
from modelport.core.settings import ArtifactSecuritySettings

__all__ = [
    "KEK_BYTES",
    "KEY_PROVIDERS",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyProvider",
    "RotationStart",
    "WrappedKey",
    "kek_id",
    "open_key_provider",
    "provider_class",
    "write_private_file",
]

KEK_BYTES: Final = 32
"""AES-256: every KEK and data key is 32 bytes."""

KEY_PROVIDERS: Final[dict[str, str]] = {
    "file": "modelport.security.kek:FileKeyProvider",
    "env": "modelport.security.kek:EnvKeyProvider",
}
"""Provider name -> ``"module:Class"``; a KMS or HSM backend adds its own entry."""

_NONCE = 12
_FORMAT = "modelport.kek/v1"


def kek_id(key: bytes) -> str:
    """Return the public name of a KEK: 16 hex digits of a domain-separated SHA-256."""
    return hashlib.sha256(b"modelport kek id\x00" + key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key wrapped by a KEK.

    Attributes:
        kek_id: Which KEK wrapped it.
        blob: Provider-defined bytes (for the built-in providers: nonce || ciphertext || tag).
    """

    kek_id: str
    blob: bytes


@dataclass(frozen=True, slots=True)
class RotationStart:
    """What :meth:`KeyProvider.begin_rotation` set up.

    Attributes:
        active_id: The KEK every data key is re-wrapped with.
        retiring_ids: KEKs still able to unwrap, to be dropped by ``finish_rotation``.
        resumed: Whether an unfinished rotation was picked up instead of a new key made.
    """

    active_id: str
    retiring_ids: tuple[str, ...]
    resumed: bool


class KeyProvider(ABC):
    """Holds key-encryption keys; wraps and unwraps data keys with them.

    A backend implements these six methods and nothing else: orchestration (which data keys to
    re-wrap, when a rotation is finished) belongs to the caller.
    """

    @classmethod
    @abstractmethod
    def from_settings(
        cls,
        settings: ArtifactSecuritySettings,
        keys_dir: Path,
        environ: Mapping[str, str],
        clock: Clock,
    ) -> KeyProvider:
        """Build the provider from the artifact security settings.

        Args:
            settings: ``security.artifacts``.
            keys_dir: This installation's key folder (default locations live here).
            environ: The process environment (passed in, never read at import time).
            clock: Timestamps for keys the provider creates.

        Raises:
            ConfigError: The settings name an unusable key.
        """

    @abstractmethod
    def active_id(self) -> str:
        """Return the id of the KEK that wraps new data keys, creating it if the backend can.

        Raises:
            ConfigError: There is no usable KEK.
        """

    @abstractmethod
    def wrap(self, data_key: bytes, aad: bytes) -> WrappedKey:
        """Wrap ``data_key`` with the active KEK, binding ``aad``.

        Raises:
            ConfigError: There is no usable KEK.
        """

    @abstractmethod
    def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytes:
        """Return the data key inside ``wrapped``; ``aad`` must be what it was wrapped with.

        Raises:
            IntegrityError: The KEK named by ``wrapped`` is not available here, or the wrapped key
                was altered or belongs to other associated data.
            ConfigError: The KEKs cannot be read.
        """

    @abstractmethod
    def begin_rotation(self) -> RotationStart:
        """Make a new active KEK and keep the current one as retiring (or resume a rotation).

        Raises:
            ConfigError: The backend cannot make or find a new KEK.
        """

    @abstractmethod
    def finish_rotation(self) -> tuple[str, ...]:
        """Drop the retiring KEKs (call once no data key is wrapped by them); return their ids."""


def provider_class(name: str) -> type[KeyProvider]:
    """Import and return the provider named ``name``.

    Args:
        name: A key of :data:`KEY_PROVIDERS` or a ``"module:Class"`` string.

    Raises:
        ConfigError: Unknown name, or the target is not a :class:`KeyProvider`.
    """
    target = KEY_PROVIDERS.get(name, name if ":" in name else None)
    if target is None:
        known = ", ".join(sorted(KEY_PROVIDERS))
        raise ConfigError(f"unknown key provider {name!r}; expected one of {known} or module:Class")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import key provider {target!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, KeyProvider)):
        raise ConfigError(f"{target} is not a KeyProvider class")
    return cls


def open_key_provider(
    settings: ArtifactSecuritySettings,
    keys_dir: Path,
    environ: Mapping[str, str],
    clock: Clock | None = None,
) -> KeyProvider:
    """Build the provider ``settings.kek_provider`` names.

    Raises:
        ConfigError: Unknown provider or unusable key.
    """
    cls = provider_class(settings.kek_provider)
    return cls.from_settings(settings, keys_dir, environ, clock or SystemClock())


# -- AES-GCM wrapping shared by the built-in providers ----------------------------------------


def _wrap_with(key: bytes, data_key: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, data_key, aad)


def _unwrap_with(keys: Mapping[str, bytes], wrapped: WrappedKey, aad: bytes, where: str) -> bytes:
    key = keys.get(wrapped.kek_id)
    if key is None:
        have = ", ".join(sorted(keys)) or "none"
        raise IntegrityError(
            f"the data key was wrapped with KEK {wrapped.kek_id}, which {where} does not hold "
            f"(available: {have}); wrong key-encryption key?"
        )
    if len(wrapped.blob) <= _NONCE:
        raise IntegrityError("the wrapped data key is truncated")
    try:
        return AESGCM(key).decrypt(wrapped.blob[:_NONCE], wrapped.blob[_NONCE:], aad)
    except InvalidTag:
        raise IntegrityError(
            f"the data key does not unwrap with KEK {wrapped.kek_id}: the key record was altered "
            "or belongs to another artifact record"
        ) from None


def _decode_key(text: object, what: str) -> bytes:
    # Messages never echo the value: it is a secret.
    if not isinstance(text, str):
        raise ConfigError(f"{what} must be a base64 string")
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{what} is not valid base64") from None
    if len(key) != KEK_BYTES:
        raise ConfigError(
            f"{what} must hold {KEK_BYTES} bytes (AES-256) in base64, it holds {len(key)}"
        )
    return key


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_private_file(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Write ``data`` to ``path`` atomically with mode 0600 (its folder 0700 when created).

    Args:
        path: Target file.
        data: Full content.
        exclusive: Create only: when ``path`` already exists, leave it and return ``False``
            (two processes creating the same key at once end up sharing one).

    Returns:
        Whether ``path`` now holds ``data``.

    Raises:
        ConfigError: The folder is not writable.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from None
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # atomic create-if-absent, with the full content
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
        return True
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


# -- file provider ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    id: str
    key: bytes
    created_at: str

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "key": base64.b64encode(self.key).decode(),
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class _Ring:
    active: _Entry
    retiring: tuple[_Entry, ...]

    def keys(self) -> dict[str, bytes]:
        return {e.id: e.key for e in (self.active, *self.retiring)}

    def dump(self) -> bytes:
        return json.dumps(
            {
                "format": _FORMAT,
                "active": self.active.to_json(),
                "retiring": [e.to_json() for e in self.retiring],
            },
            indent=2,
        ).encode()


class FileKeyProvider(KeyProvider):
    """KEKs in a local JSON key ring, created with mode 0600 on first use.

    The file is read on every operation (it is small), so a long-running server sees a rotation
    made by ``modelport keys rotate-kek`` in another process.

    Args:
        path: The key ring file.
        clock: Creation times of new keys.
    """

    def __init__(self, path: Path, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()

    @classmethod
    def from_settings(
        cls,
        settings: ArtifactSecuritySettings,
        keys_dir: Path,
        environ: Mapping[str, str],
        clock: Clock,
    ) -> FileKeyProvider:
        """Use ``settings.kek_file`` (default ``KEYS_DIR/kek.json``)."""
        return cls(settings.kek_file or keys_dir / "kek.json", clock)

    def _new_entry(self) -> _Entry:
        key = AESGCM.generate_key(bit_length=KEK_BYTES * 8)
        return _Entry(kek_id(key), key, self._clock.now().isoformat())

    def _read(self) -> _Ring | None:
        try:
            mode = self.path.stat().st_mode
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the key-encryption key file {self.path}: {exc}"
            ) from None
        if os.name == "posix" and mode & 0o077:
            raise ConfigError(
                f"the key-encryption key file {self.path} is accessible by other users "
                f"(mode {mode & 0o777:o}); run: chmod 600 {self.path}"
            )
        try:
            doc = json.loads(raw)
            if doc.get("format") != _FORMAT:
                raise ValueError(f"format is {doc.get('format')!r}, expected {_FORMAT!r}")
            active = self._entry(doc["active"])
            retiring = tuple(self._entry(e) for e in doc.get("retiring", []))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"the key-encryption key file {self.path} is malformed: {exc}"
            ) from None
        return _Ring(active, retiring)

    def _entry(self, raw: Mapping[str, Any]) -> _Entry:
        key = _decode_key(raw["key"], f"a key in {self.path}")
        if raw["id"] != kek_id(key):
            raise ValueError(f"key {raw['id']!r} does not match its id")
        return _Entry(raw["id"], key, str(raw.get("created_at", "")))

    def _ring(self, create: bool) -> _Ring:
        ring = self._read()
        if ring is not None:
            return ring
        if not create:
            raise ConfigError(
                f"the key-encryption key file {self.path} does not exist, so no artifact can be "
                "decrypted; point security.artifacts.kek_file at the key ring the artifacts were "
                "sealed with"
            )
        write_private_file(self.path, _Ring(self._new_entry(), ()).dump(), exclusive=True)
        created = self._read()
        if created is None:  # removed between the two calls
            raise ConfigError(f"the key-encryption key file {self.path} vanished")
        return created

    def active_id(self) -> str:
        """Return the active KEK's id, creating the key ring on first use."""
        return self._ring(create=True).active.id

    def wrap(self, data_key: bytes, aad: bytes) -> WrappedKey:
        """Wrap with the active KEK (creating the key ring on first use)."""
        active = self._ring(create=True).active
        return WrappedKey(active.id, _wrap_with(active.key, data_key, aad))

    def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytes:
        """Unwrap with the active or a retiring KEK."""
        return _unwrap_with(self._ring(create=False).keys(), wrapped, aad, str(self.path))

    def begin_rotation(self) -> RotationStart:
        """Make a new active KEK, the old one retiring; resume when one is already retiring."""
        ring = self._ring(create=True)
        if ring.retiring:
            return RotationStart(ring.active.id, tuple(e.id for e in ring.retiring), True)
        rotated = _Ring(self._new_entry(), (ring.active,))
        write_private_file(self.path, rotated.dump())
        return RotationStart(rotated.active.id, (ring.active.id,), False)

    def finish_rotation(self) -> tuple[str, ...]:
        """Rewrite the key ring with the active KEK only."""
        ring = self._ring(create=False)
        if ring.retiring:
            write_private_file(self.path, _Ring(ring.active, ()).dump())
        return tuple(e.id for e in ring.retiring)


# -- environment provider ---------------------------------------------------------------------


class EnvKeyProvider(KeyProvider):
    """A KEK given in an environment variable as 32 bytes in base64.

    A rotation is done by the operator: put the new key in ``VAR`` and the old one in
    ``VAR_PREVIOUS``, run ``modelport keys rotate-kek`` (which re-wraps every data key with the
    new key), then remove ``VAR_PREVIOUS``.

    Args:
        variable: The variable's name (``security.artifacts.kek_env``).
        environ: The environment to read it from.

    Raises:
        ConfigError: The variable is unset, not base64, or not 32 bytes.
    """

    def __init__(self, variable: str, environ: Mapping[str, str]) -> None:
        self.variable = variable
        self.previous_variable = f"{variable}_PREVIOUS"
        text = environ.get(variable)
        if not text:
            raise ConfigError(
                f"the env key provider needs the key-encryption key in {variable} "
                "(32 random bytes in base64, e.g. from: "
                'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())")'
            )
        self._active = _decode_key(text, variable)
        previous = environ.get(self.previous_variable)
        self._previous = _decode_key(previous, self.previous_variable) if previous else None

    @classmethod
    def from_settings(
        cls,
        settings: ArtifactSecuritySettings,
        keys_dir: Path,
        environ: Mapping[str, str],
        clock: Clock,
    ) -> EnvKeyProvider:
        """Read the variable ``settings.kek_env``."""
        return cls(settings.kek_env, environ)

    def _keys(self) -> dict[str, bytes]:
        keys = {kek_id(self._active): self._active}
        if self._previous is not None:
            keys[kek_id(self._previous)] = self._previous
        return keys

    def active_id(self) -> str:
        """Return the id of the key in the variable."""
        return kek_id(self._active)

    def wrap(self, data_key: bytes, aad: bytes) -> WrappedKey:
        """Wrap with the key in the variable."""
        return WrappedKey(self.active_id(), _wrap_with(self._active, data_key, aad))

    def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytes:
        """Unwrap with the key in the variable or the one in ``VAR_PREVIOUS``."""
        return _unwrap_with(self._keys(), wrapped, aad, f"${self.variable}")

    def begin_rotation(self) -> RotationStart:
        """Use the variables as given: the new key in ``VAR``, the retiring one in ``VAR_PREVIOUS``.

        Raises:
            ConfigError: ``VAR_PREVIOUS`` is unset or equals ``VAR``.
        """
        if self._previous is None or self._previous == self._active:
            raise ConfigError(
                f"the env key provider cannot make a key: put the new key in {self.variable} and "
                f"the current one in {self.previous_variable}, then run rotate-kek again"
            )
        return RotationStart(self.active_id(), (kek_id(self._previous),), False)

    def finish_rotation(self) -> tuple[str, ...]:
        """Report the retired key; the operator removes ``VAR_PREVIOUS`` from the environment."""
        return (kek_id(self._previous),) if self._previous is not None else ()
