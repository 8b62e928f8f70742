"""The local artifact store: where each version's sealed artifacts, key records and manifest live.

The store keeps files, never plaintext model bytes: what goes in is already encrypted and signed
by the service layer (:mod:`modelport.service.artifact_guard`, which composes this store with
:mod:`modelport.security`). Layout under the root folder::

    tmp/                                  staging; same file system, so renames are atomic
    models/<model>/<version>/
        <sha256 hex>.sealed               a sealed (encrypted) artifact, read-only
        <sha256 hex>.key                  its wrapped data key; rewritten alone by KEK rotation
        manifest.dsse.json                the version's signed manifest
    .lock                                 shared by writers of key records, exclusive for rotation

Artifacts are filed by version, not only by content: each ciphertext is bound to its record, so
the same file registered twice is stored twice. The hex name is the SHA-256 of the plaintext, so
a version's registered and serving artifacts sit side by side. Folders are created 0700 and files
0600 (sealed objects 0400). Every write is crash-safe: bytes go to a temporary file, are flushed,
and are renamed into place; a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modelport.core.errors import ConfigError, InvalidInput
from modelport.core.refs import validate_model_name

__all__ = ["ArtifactStore", "StoredArtifact", "digest_file", "parse_digest"]

_CHUNK = 1024 * 1024
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_MANIFEST = "manifest.dsse.json"


def parse_digest(digest: str) -> str:
    """Return the hex part of ``sha256:<64 lowercase hex digits>``.

    Raises:
        InvalidInput: ``digest`` has another form.
    """
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise InvalidInput(
            f"invalid digest {digest!r}: expected 'sha256:' followed by 64 lowercase hex digits"
        )
    return match.group(1)


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"{what} {path} is not a regular file")


def digest_file(path: Path) -> str:
    """Return the ``sha256:<hex>`` digest of a file, read in chunks.

    Args:
        path: A regular file, for example an artifact or the training data of a model version.

    Raises:
        ConfigError: ``path`` is missing or not a regular file.
    """
    _require_file(path, "file")
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def _fsync_dir(folder: Path) -> None:
    # Makes a rename durable; some platforms cannot open a directory, which is fine to skip.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """An artifact's plaintext digest (``sha256:<hex>``) and size in bytes."""

    digest: str
    size: int


class ArtifactStore:
    """Sealed artifacts, key records and manifests under one root folder.

    Args:
        root: The store's folder; created on first write.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        """The store's folder."""
        return self._root

    def version_dir(self, model: str, version: int) -> Path:
        """Return the folder of one version's files (whether or not it exists).

        Raises:
            InvalidInput: Malformed model name or version.
        """
        validate_model_name(model)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidInput(f"version must be a number >= 1, got {version!r}")
        return self._root / "models" / model / str(version)

    def sealed_path(self, model: str, version: int, digest: str) -> Path:
        """Return where the sealed artifact ``digest`` of a version lives.

        Raises:
            InvalidInput: Malformed model name, version or digest.
        """
        return self.version_dir(model, version) / f"{parse_digest(digest)}.sealed"

    def key_path(self, model: str, version: int, digest: str) -> Path:
        """Return where the key record of artifact ``digest`` of a version lives.

        Raises:
            InvalidInput: Malformed model name, version or digest.
        """
        return self.version_dir(model, version) / f"{parse_digest(digest)}.key"

    def manifest_path(self, model: str, version: int) -> Path:
        """Return where a version's signed manifest lives.

        Raises:
            InvalidInput: Malformed model name or version.
        """
        return self.version_dir(model, version) / _MANIFEST

    def staging_file(self) -> Path:
        """Create an empty private file (0600) in the store's staging folder and return it.

        The caller fills it and either :meth:`place` s it or deletes it.

        Raises:
            ConfigError: The store is not writable.
        """
        tmp_dir = self._root / "tmp"
        try:
            # mkdir(parents=True) gives parents the default mode: make the store's root first.
            self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp_dir.mkdir(mode=0o700, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="stage-")
        except OSError as exc:
            raise ConfigError(
                f"cannot write to the artifact store at {self._root}: {exc}"
            ) from None
        os.close(fd)
        return Path(name)

    def clear_version(self, model: str, version: int) -> None:
        """Remove a version's folder: leftovers of a registration that never committed.

        Raises:
            InvalidInput: Malformed model name or version.
        """
        shutil.rmtree(self.version_dir(model, version), ignore_errors=True)

    def _version_parent(self, target: Path) -> None:
        try:
            for folder in (self._root, self._root / "models", target.parent.parent, target.parent):
                folder.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot write to the artifact store at {self._root}: {exc}"
            ) from None

    def place(self, staged: Path, target: Path) -> None:
        """Move a filled staging file to ``target`` atomically and make it read-only.

        Raises:
            ConfigError: The store is not writable.
        """
        self._version_parent(target)
        try:
            with staged.open("rb+") as handle:
                os.fsync(handle.fileno())
            staged.chmod(0o400)  # sealed objects never change once written
            os.replace(staged, target)
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc}") from None
        _fsync_dir(target.parent)

    def write_file(self, target: Path, data: bytes) -> None:
        """Replace ``target`` with ``data`` atomically (mode 0600): key records and manifests.

        Raises:
            ConfigError: The store is not writable.
        """
        self._version_parent(target)
        tmp: Path | None = None
        try:
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            tmp = Path(name)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc}") from None
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        _fsync_dir(target.parent)

    def key_records(self) -> Iterator[Path]:
        """Yield every key record file in the store, in a stable order."""
        models = self._root / "models"
        if models.is_dir():
            yield from sorted(models.glob("*/*/*.key"))

    @contextlib.contextmanager
    def lock(self, *, exclusive: bool) -> Iterator[None]:
        """Hold the store's lock: shared while writing key records, exclusive to rotate the KEK.

        Held across processes (``flock``); where ``flock`` does not exist it does nothing.

        Raises:
            ConfigError: The lock file cannot be created.
        """
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock
            yield
            return
        try:
            self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot lock the artifact store at {self._root}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock
