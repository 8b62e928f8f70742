"""Artifacts at rest: sealed at registration, verified and decrypted at load, KEK rotation.

This module composes the registry's file store (:class:`~modelport.registry.ArtifactStore`) with
:mod:`modelport.security` (envelope encryption, signed manifests, key providers).

Registration (:class:`modelport.service.registration.Registrar`) works in two steps so that the
registry's write lock is held only briefly:

1. :meth:`ArtifactGuard.stage` hashes each artifact file and encrypts it, streamed, with a fresh
   data key into the store's staging folder. Nothing is recorded yet.
2. :meth:`ArtifactGuard.commit` runs inside the registration's database transaction, once the
   version number is known: it wraps each data key with the KEK bound to (digest, model,
   version, jurisdiction), writes the key records, moves the sealed objects into place and
   writes the signed manifest (SHA-256 of every file, Ed25519). If anything fails, the
   transaction rolls back and no version is recorded.

Loading (:meth:`ArtifactGuard.open`) fails closed: the version must have a signed manifest by a
trusted key that describes this very record (model, version, jurisdiction) and lists the
artifact; the artifact is then decrypted into a private temporary folder (mode 0700), every chunk
authenticated and the plaintext's SHA-256 checked, and the folder is removed as soon as the
runtime has loaded the file. Every failure is an :class:`IntegrityError` that names the model,
version and artifact.

Pickle-based artifacts (:data:`modelport.service.models.UNPICKLING_FRAMEWORKS`) run code when
loaded, so they are loaded only through a verified registration, never directly from a file.

KEK rotation (:func:`rotate_kek`) re-wraps every key record with a new KEK and leaves the sealed
objects alone; the old KEK is dropped only after every record was re-wrapped (see
:mod:`modelport.security.kek` for the crash-safe steps). It holds the store's lock exclusively,
and registrations hold it shared while they write key records, so no record wrapped with the old
KEK can appear after the rotation has looked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelport.core.clock import Clock
from modelport.core.errors import ConfigError, IntegrityError
from modelport.core.settings import Settings
from modelport.registry import ArtifactSigner, ArtifactStore, ModelVersion, digest_file
from modelport.security.envelope import (
    CHUNK_SIZE,
    Binding,
    SealedHeader,
    decode_key_record,
    encode_key_record,
    new_data_key,
    open_sealed,
    read_header,
    rewrap,
    seal,
    unwrap_data_key,
    wrap_data_key,
)
from modelport.security.kek import EnvKeyProvider, KeyProvider, open_key_provider
from modelport.security.signing import (
    Manifest,
    Resource,
    SignedManifest,
    key_id,
    load_or_create_signing_key,
    load_public_key,
    sign_manifest,
    trusted_keys,
    verify_manifest,
)

__all__ = ["ArtifactGuard", "RotationReport", "StagedArtifact", "rotate_kek"]


@dataclass(frozen=True, slots=True)
class StagedArtifact:
    """An artifact encrypted into the staging folder, waiting for its version number.

    Attributes:
        path: The sealed object in the staging folder.
        digest: SHA-256 of the plaintext, ``sha256:<hex>``.
        size: Plaintext size in bytes.
        name: Its resource name in the manifest: ``registered/<file name>`` or
            ``serving/<file name>``.
        header: The sealed object's header.
    """

    path: Path
    digest: str
    size: int
    name: str
    header: SealedHeader
    data_key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What a KEK rotation did.

    Attributes:
        active_id: The KEK every data key is now wrapped with.
        retired_ids: KEKs dropped (no data key needs them any more).
        rewrapped: Data keys re-wrapped by this run.
        already_current: Data keys that were already wrapped with the active KEK.
        resumed: Whether an interrupted rotation was finished instead of a new one started.
        note: What the operator still has to do, if anything.
    """

    active_id: str
    retired_ids: tuple[str, ...]
    rewrapped: int
    already_current: int
    resumed: bool
    note: str = ""


class ArtifactGuard:
    """Seals artifacts at registration, opens them verified at load, rotates the KEK.

    Args:
        store: Where sealed artifacts, key records and manifests live.
        keks: The key provider, or a function building it on first use (so commands that never
            touch an artifact do not need a usable KEK).
        signing_key: This installation's Ed25519 signing key (PEM); created 0600 on first
            registration.
        signer: The identity written into manifests.
        trusted_signers: Public keys (PEM) of other signers whose manifests are accepted; this
            installation's own key is always trusted.
        chunk_size: Plaintext bytes per encrypted chunk.
    """

    def __init__(
        self,
        store: ArtifactStore,
        keks: KeyProvider | Callable[[], KeyProvider],
        signing_key: Path,
        signer: str,
        trusted_signers: Sequence[Path] = (),
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.store = store
        self._keks = keks
        self._signing_key_path = Path(signing_key)
        self._signer = signer
        self._trusted_paths = tuple(Path(p) for p in trusted_signers)
        self._chunk_size = chunk_size
        self._private: Ed25519PrivateKey | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        signer: str,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> ArtifactGuard:
        """Build the guard ``settings.security.artifacts`` describes.

        Args:
            settings: All settings (``home``, ``keys_dir``, ``security.artifacts``).
            signer: The identity written into manifests (the settings' ``signer`` wins).
            environ: The environment the ``env`` key provider reads; the process's by default.
            clock: Creation times of new keys.
        """
        conf = settings.security.artifacts
        env = os.environ if environ is None else environ

        def keks() -> KeyProvider:
            return open_key_provider(conf, settings.keys_dir, env, clock)

        return cls(
            ArtifactStore(settings.artifacts_dir),
            keks,
            conf.signing_key or settings.keys_dir / "signing.pem",
            conf.signer or signer,
            conf.trusted_signers,
        )

    @property
    def keks(self) -> KeyProvider:
        """The key provider (built on first use).

        Raises:
            ConfigError: The configured provider is unusable.
        """
        if not isinstance(self._keks, KeyProvider):
            self._keks = self._keks()
        return self._keks

    # -- registration ---------------------------------------------------------------------

    def _private_key(self) -> Ed25519PrivateKey:
        if self._private is None:
            self._private = load_or_create_signing_key(self._signing_key_path)
        return self._private

    def signer(self) -> ArtifactSigner:
        """Return who signs this installation's manifests, creating the signing key if needed.

        Raises:
            ConfigError: The signing key is unreadable or cannot be created.
        """
        return ArtifactSigner(self._signer, key_id(self._private_key().public_key()))

    def stage(self, source: Path, role: str, filename: str | None = None) -> StagedArtifact:
        """Encrypt ``source`` with a fresh data key into the staging folder.

        Args:
            source: The plaintext artifact file.
            role: ``registered`` or ``serving``: the first part of its name in the manifest.
            filename: Its file name in the manifest (``source``'s by default).

        Raises:
            ConfigError: ``source`` is not a file, the store is not writable, or there is no
                usable KEK (checked here, before anything is recorded).
            IntegrityError: ``source`` changed while it was being encrypted.
        """
        self.keks.active_id()  # fail before the work on a missing or bad KEK
        digest = digest_file(source)
        data_key = new_data_key()
        staged = self.store.staging_file()
        try:
            with source.open("rb") as src, staged.open("wb") as dst:
                header = seal(src, dst, data_key, digest, chunk_size=self._chunk_size)
                size = src.tell()
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        name = f"{role}/{filename or source.name}"
        return StagedArtifact(staged, digest, size, name, header, data_key)

    def commit(
        self, model: str, version: int, jurisdiction: str, staged: Sequence[StagedArtifact]
    ) -> None:
        """Bind staged artifacts to version ``version`` of ``model`` and sign its manifest.

        Meant to run inside the registration's transaction, once the number is assigned.

        Raises:
            ConfigError: The store or key files are not writable, or there is no usable KEK.
        """
        self.store.clear_version(model, version)  # leftovers of a registration that rolled back
        resources = []
        with self.store.lock(exclusive=False):
            for item in staged:
                binding = Binding(item.digest, model, version, jurisdiction)
                record = wrap_data_key(self.keks, item.data_key, binding, item.header.object_id)
                self.store.write_file(
                    self.store.key_path(model, version, item.digest), encode_key_record(record)
                )
                self.store.place(item.path, self.store.sealed_path(model, version, item.digest))
                resources.append(
                    Resource(item.name, item.digest.removeprefix("sha256:"), item.size)
                )
        manifest = Manifest(model, version, jurisdiction, self._signer, tuple(resources))
        envelope = sign_manifest(manifest, self._private_key())
        self.store.write_file(self.store.manifest_path(model, version), envelope)

    def discard(self, staged: Sequence[StagedArtifact]) -> None:
        """Delete staged files that were not committed (safe to call after a commit)."""
        for item in staged:
            item.path.unlink(missing_ok=True)

    # -- loading --------------------------------------------------------------------------

    def _trusted(self) -> dict[str, Ed25519PublicKey]:
        keys = [load_public_key(p) for p in self._trusted_paths]
        own = self._signing_key_path
        public = own.with_name(own.name.removesuffix(".pem") + ".pub.pem")
        if public.is_file():
            keys.append(load_public_key(public))
        elif own.is_file():
            keys.append(load_public_key(own))
        return trusted_keys(keys)

    def verify(self, version: ModelVersion) -> SignedManifest:
        """Check the signed manifest of ``version``: trusted signer, and about this record.

        Raises:
            IntegrityError: The version has no manifest (registered before signing), the
                manifest is missing, unsigned, signed by an untrusted key, altered, or describes
                another record.
            ConfigError: A trusted signer key file is unreadable.
        """
        if version.signer is None:
            raise IntegrityError(
                "the version was registered before artifacts were encrypted and signed, so it "
                "has no signed manifest; register the artifact again"
            )
        path = self.store.manifest_path(version.name, version.version)
        try:
            envelope = path.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(
                f"the signed manifest {path} is missing: the version is not signed"
            ) from None
        except OSError as exc:
            raise IntegrityError(f"cannot read the signed manifest {path}: {exc}") from None
        signed = verify_manifest(envelope, self._trusted())
        found = signed.manifest
        if (found.model, found.version, found.jurisdiction) != (
            version.name,
            version.version,
            version.jurisdiction,
        ):
            raise IntegrityError(
                f"the signed manifest is for {found.model}@{found.version} "
                f"({found.jurisdiction}), not {version.name}@{version.version} "
                f"({version.jurisdiction}): it was moved from another version"
            )
        return signed

    def _label(self, version: ModelVersion, digest: str) -> str:
        if version.serving is not None and digest == version.serving.digest:
            what = f"serving artifact ({version.serving.framework})"
        else:
            what = f"artifact {version.artifact_filename}"
        return f"{what} {digest[:19]}... of {version.name}@{version.version}"

    def _decrypt(self, version: ModelVersion, digest: str, folder: Path) -> Path:
        resource = self.verify(version).manifest.resource_for(digest)
        if resource is None:
            raise IntegrityError("the signed manifest does not list this artifact")
        sealed = self.store.sealed_path(version.name, version.version, digest)
        key_path = self.store.key_path(version.name, version.version, digest)
        for path, what in ((sealed, "encrypted artifact"), (key_path, "key record")):
            if not path.is_file():
                raise IntegrityError(f"its {what} {path} is missing from the artifact store")
        record = decode_key_record(key_path.read_bytes())
        binding = Binding(digest, version.name, version.version, version.jurisdiction)
        plain = folder / digest.removeprefix("sha256:")
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with sealed.open("rb") as src, os.fdopen(fd, "wb") as out:
            header = read_header(src)
            data_key = unwrap_data_key(self.keks, record, binding, header)
            size = open_sealed(src, out, data_key, header)
        if size != resource.size or header.digest.hex() != resource.digest:
            raise IntegrityError(
                f"the decrypted artifact ({size} bytes) does not match its signed manifest entry "
                f"({resource.size} bytes, {resource.digest_text})"
            )
        return plain

    @contextlib.contextmanager
    def open(self, version: ModelVersion, digest: str) -> Iterator[Path]:
        """Verify and decrypt artifact ``digest`` of ``version``; yield its plaintext path.

        The plaintext lives in a private temporary folder (0700, under ``TMPDIR``) that is
        removed when the block ends: load the model inside the block.

        Raises:
            IntegrityError: The signature or any byte fails verification (the message names the
                model, version and artifact).
            ConfigError: The KEK or a trusted key is unusable.
        """
        folder = Path(tempfile.mkdtemp(prefix="modelport-load-"))
        try:
            try:
                plain = self._decrypt(version, digest, folder)
            except IntegrityError as exc:
                raise IntegrityError(
                    f"{self._label(version, digest)} failed verification: {exc}; refusing to load"
                ) from None
            except ConfigError as exc:
                raise ConfigError(f"cannot open {self._label(version, digest)}: {exc}") from None
            yield plain
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # -- KEK rotation ---------------------------------------------------------------------

    def rotate_kek(self) -> RotationReport:
        """Re-wrap every data key with a new KEK, then retire the old one.

        Interrupted rotations are resumed by running this again. The old KEK is kept when any
        key record fails to re-wrap, so nothing becomes unreadable.

        Raises:
            ConfigError: The provider cannot rotate (e.g. ``env`` without ``VAR_PREVIOUS``).
            IntegrityError: Some key records could not be re-wrapped (listed in the message).
        """
        keks = self.keks
        with self.store.lock(exclusive=True):
            start = keks.begin_rotation()
            rewrapped = current = 0
            failures: list[str] = []
            for path in self.store.key_records():
                try:
                    record = decode_key_record(path.read_bytes())
                    if record.wrapped.kek_id == start.active_id:
                        current += 1
                        continue
                    self.store.write_file(path, encode_key_record(rewrap(keks, record)))
                    rewrapped += 1
                except (IntegrityError, OSError) as exc:
                    failures.append(f"{path}: {exc}")
            if failures:
                raise IntegrityError(
                    f"{len(failures)} data key(s) could not be re-wrapped, so the old KEK is kept "
                    f"(fix or remove them and run rotate-kek again): {'; '.join(failures)}"
                )
            retired = keks.finish_rotation()
        note = ""
        if isinstance(keks, EnvKeyProvider):
            note = f"remove {keks.previous_variable} from the environment to retire the old KEK"
        return RotationReport(start.active_id, retired, rewrapped, current, start.resumed, note)


def rotate_kek(settings: Settings, environ: Mapping[str, str] | None = None) -> RotationReport:
    """Rotate the key-encryption key of the artifact store ``settings`` names.

    Raises:
        ConfigError: The provider cannot rotate or the store is not writable.
        IntegrityError: Some key records could not be re-wrapped; the old KEK is kept.
    """
    guard = ArtifactGuard.from_settings(settings, signer="modelport", environ=environ)
    return guard.rotate_kek()
