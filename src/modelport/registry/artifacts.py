"""A local, content-addressed artifact store.

Objects live at ``ROOT/sha256/ab/<hex>``, named by the SHA-256 of their bytes, so the same file
registered twice is stored once and any change to a stored byte is detectable. Writes are
crash-safe: the bytes go to a temporary file inside the store, are flushed to disk, and are renamed
into place atomically; a reader never sees half an object.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modelport.core.errors import ConfigError, IntegrityError, InvalidInput, NotFound

__all__ = ["ArtifactStore", "StoredArtifact", "digest_file", "parse_digest"]

_CHUNK = 1024 * 1024
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


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


def _hash_file(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def digest_file(path: Path) -> str:
    """Return the ``sha256:<hex>`` digest of a file, read in chunks (for lineage records).

    Args:
        path: A regular file, for example the training data of a model version.

    Raises:
        ConfigError: ``path`` is missing or not a regular file.
    """
    _require_file(path, "file")
    return f"sha256:{_hash_file(path)}"


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable; some platforms cannot open a directory, which is fine to skip.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """An object in the store: its digest (``sha256:<hex>``) and size in bytes."""

    digest: str
    size: int


class ArtifactStore:
    """Content-addressed files under one root folder.

    Args:
        root: The store's folder; created on first write.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        """The store's folder."""
        return self._root

    def path_for(self, digest: str) -> Path:
        """Return where the object ``digest`` lives (whether or not it is there).

        Raises:
            InvalidInput: ``digest`` is not ``sha256:<64 hex digits>``.
        """
        hex_digest = parse_digest(digest)
        return self._root / "sha256" / hex_digest[:2] / hex_digest

    def exists(self, digest: str) -> bool:
        """Return whether the object ``digest`` is in the store (without checking its bytes).

        Raises:
            InvalidInput: ``digest`` is malformed.
        """
        return self.path_for(digest).is_file()

    def put(self, source: Path) -> StoredArtifact:
        """Copy ``source`` into the store, hashing it on the way; reuse an existing object.

        The file is read once, in chunks, so large artifacts do not have to fit in memory.

        Args:
            source: A regular file.

        Returns:
            The object's digest and size.

        Raises:
            ConfigError: ``source`` is missing or not a regular file, or the store is not writable.
        """
        source = Path(source)
        _require_file(source, "artifact source")
        tmp_dir = self._root / "tmp"
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        except OSError as exc:
            raise ConfigError(
                f"cannot write to the artifact store at {self._root}: {exc}"
            ) from None
        tmp = Path(tmp_name)
        try:
            sha, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                while chunk := src.read(_CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            stored = StoredArtifact(digest=f"sha256:{sha.hexdigest()}", size=size)
            target = self.path_for(stored.digest)
            if target.is_file() and target.stat().st_size == size:
                tmp.unlink()
                return stored
            # Objects never change once written; read-only says so to other tools.
            tmp.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            target.parent.mkdir(parents=True, exist_ok=True)
            # A same-digest object of the wrong size is a truncated leftover: replace it.
            os.replace(tmp, target)
            _fsync_dir(target.parent)
            return stored
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def open_verified(self, digest: str) -> Path:
        """Return the path of object ``digest`` after checking that its bytes still match.

        Call this right before loading a model: it re-reads the whole file.

        Raises:
            InvalidInput: ``digest`` is malformed.
            NotFound: The object is not in the store.
            IntegrityError: The file's content no longer hashes to ``digest``.
        """
        path = self.path_for(digest)
        if not path.is_file():
            raise NotFound(f"artifact {digest} is not in the artifact store at {self._root}")
        actual = f"sha256:{_hash_file(path)}"
        if actual != digest:
            raise IntegrityError(
                f"artifact {digest} is corrupt: its content hashes to {actual}, refusing to load"
            )
        return path
