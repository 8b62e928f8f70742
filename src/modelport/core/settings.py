"""One settings tree, read once from the environment (``MODELPORT_*``) by :func:`load_settings`.

Nested sections use ``__``: ``MODELPORT_SERVER__PORT=9000`` sets ``settings.server.port``. Nothing
reads the environment at import time; the CLI and tests build a :class:`Settings` explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "BatchingSettings",
    "RuntimeSettings",
    "ServerSettings",
    "Settings",
    "load_settings",
]


class ServerSettings(BaseModel):
    """The model server's network settings."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    """Address the REST server binds; loopback by default so nothing is exposed by accident."""

    port: int = Field(default=8080, ge=0, le=65535)
    """REST port; 0 picks a free port and prints it."""

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest request body (and gRPC message) accepted; larger ones get 413 /
    RESOURCE_EXHAUSTED without being read whole."""

    grpc_port: int | None = Field(default=8081, ge=0, le=65535)
    """gRPC port on the same host; 0 picks a free port; ``None`` turns gRPC off."""

    workers: int = Field(default=0, ge=0)
    """Worker processes sharing the ports; 0 means one per CPU core."""


class RuntimeSettings(BaseModel):
    """How runtimes execute models."""

    model_config = ConfigDict(extra="forbid")

    device: Literal["cpu", "gpu"] = "cpu"
    """``cpu`` runs on the CPU; ``gpu`` asks ONNX Runtime for the CUDA/TensorRT providers."""

    threads: int = Field(default=0, ge=0)
    """Intra-op threads per model; 0 lets the framework decide."""


class BatchingSettings(BaseModel):
    """Dynamic batching of one model: rows from concurrent requests run as one batch."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    """Batch requests of this model; off runs each request on its own."""

    max_batch_rows: int = Field(default=64, ge=1)
    """Most rows in one batch; a request with more rows runs alone."""

    max_delay: int = Field(default=500, ge=0)
    """Longest time, in microseconds, the first queued request waits for others to join."""

    preferred_batch_rows: int | None = Field(default=None, ge=1)
    """Run as soon as this many rows are queued, without waiting for ``max_delay``."""

    max_queue_rows: int = Field(default=4096, ge=1)
    """Most rows waiting; beyond it requests are refused with 503 / RESOURCE_EXHAUSTED."""


class Settings(BaseSettings):
    """All of modelport's settings."""

    model_config = SettingsConfigDict(
        env_prefix="MODELPORT_", env_nested_delimiter="__", extra="forbid"
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".modelport")
    """Data directory: the SQLite database and the content-addressed artifact store live here."""

    database_url: str | None = None
    """SQLAlchemy URL of the metadata database; unset means SQLite at ``HOME/modelport.db``.
    Example: ``postgresql+psycopg://postgres@127.0.0.1:5432/modelport``."""

    user: str | None = None
    """Who registers and moves aliases (recorded in lineage and alias history); defaults to the
    operating-system user."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    """Model server settings."""

    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    """Runtime settings."""

    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    """Dynamic batching for every served model (``modelport serve --batching`` overrides it,
    per model or for all)."""

    def resolved_database_url(self) -> str:
        """Return the metadata database URL, defaulting to SQLite under :attr:`home`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'modelport.db'}"

    @property
    def artifacts_dir(self) -> Path:
        """Folder of the content-addressed artifact store."""
        return self.home / "artifacts"


def load_settings() -> Settings:
    """Read settings from the environment (``MODELPORT_*``)."""
    return Settings()
