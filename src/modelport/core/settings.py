"""One settings tree, read once from the environment (``MODELPORT_*``) by :func:`load_settings`.

Nested sections use ``__``: ``MODELPORT_SERVER__PORT=9000`` sets ``settings.server.port``. Nothing
reads the environment at import time; the CLI and tests build a :class:`Settings` explicitly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "ArtifactSecuritySettings",
    "ControlPlaneSettings",
    "FeatureSettings",
    "GatewaySettings",
    "AuthSettings",
    "BatchingSettings",
    "LimitSettings",
    "LogSettings",
    "MonitoringSettings",
    "OidcSettings",
    "PredictionLogSettings",
    "RuntimeSettings",
    "SecuritySettings",
    "ServerSettings",
    "TlsSettings",
    "TracingSettings",
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

    max_json_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Largest JSON part of a REST inference request (the whole body, or the JSON header of a
    binary one); larger ones get 413. JSON is parsed on the event loop's thread (the parser
    holds the interpreter lock), about 40 ms per MB, so this bounds how long one request can
    hold up the others; large tensors travel in binary form, which is not parsed."""

    grpc_port: int | None = Field(default=8081, ge=0, le=65535)
    """gRPC port on the same host; 0 picks a free port; ``None`` turns gRPC off."""

    workers: int = Field(default=0, ge=0)
    """Worker processes sharing the ports; 0 means one per CPU core."""

    alias_poll_s: float = Field(default=5.0, gt=0, le=3600)
    """Seconds between two looks at the registry by each worker for models served by alias
    (``serve NAME@ALIAS``): a moved alias is loaded, warmed and switched to within this time."""

    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Largest REST request head (request line and headers together); a larger one gets 431
    before anything else reads it. 64 KiB leaves room for large OIDC bearer tokens (group and
    role claims) while bounding what an unauthenticated connection can make the server hold."""

    header_timeout_s: float = Field(default=10.0, gt=0)
    """Seconds a REST connection has to send a whole request head, from its first byte (or from
    connecting); a slower sender gets 408 and is closed."""

    body_timeout_s: float = Field(default=60.0, gt=0)
    """Seconds a REST request has to send its whole body once its head is in; a slower sender
    gets 408 and is closed."""

    keep_alive_timeout_s: float = Field(default=5.0, gt=0)
    """Seconds an idle keep-alive REST connection stays open waiting for its next request."""


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


JwtAlgorithm = Literal["RS256", "ES256", "EdDSA"]
_JWT_ALGORITHMS: tuple[JwtAlgorithm, ...] = ("RS256", "ES256", "EdDSA")


class OidcSettings(BaseModel):
    """JWT bearer tokens from an OpenID Connect provider; off while ``issuer`` is unset."""

    model_config = ConfigDict(extra="forbid")

    issuer: str | None = None
    """Expected ``iss`` claim (``https://login.example.com/realms/ml``); unset turns JWTs off."""

    audience: str | None = None
    """Expected ``aud`` claim (required when ``issuer`` is set)."""

    jwks_file: Path | None = None
    """JSON Web Key Set file with the provider's public keys."""

    jwks_url: str | None = None
    """JSON Web Key Set URL (the provider's ``jwks_uri``); fetched, cached and refetched when a
    token names an unknown ``kid``."""

    jwks_cache_s: float = Field(default=300.0, gt=0)
    """How long fetched keys are trusted before they are fetched again."""

    roles_claim: str = "roles"
    """Claim holding the caller's grants: a list of ``ROLE`` or ``ROLE:PATTERN`` strings (dots
    walk into nested objects, e.g. ``realm_access.roles``)."""

    algorithms: list[JwtAlgorithm] = Field(default_factory=lambda: list(_JWT_ALGORITHMS))
    """Signature algorithms accepted; only asymmetric ones exist here (no ``none``, no HMAC)."""

    leeway_s: float = Field(default=30.0, ge=0, le=300)
    """Clock skew allowed when checking ``exp``, ``nbf`` and ``iat``."""


class AuthSettings(BaseModel):
    """Authentication and authorisation of every REST route and gRPC method."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Require a credential on every call; ``modelport serve --no-auth`` turns it off (loopback
    only, unless ``--insecure``)."""

    open_probes: bool = True
    """Leave ``/v2/health/live``, ``/v2/health/ready`` (and gRPC ServerLive/ServerReady) open for
    orchestrators' probes; everything else always needs a credential."""

    cache_ttl_s: float = Field(default=5.0, ge=0, le=300)
    """How long an authentication decision is reused per credential; a revoked key is refused
    at the latest this long after revocation."""

    open_metrics: bool = False
    """Leave ``GET /metrics`` open so Prometheus can scrape without a key (the metrics name
    models and versions, so open it only where the port is not public)."""

    oidc: OidcSettings = Field(default_factory=OidcSettings)
    """JWT/OIDC bearer tokens."""

    mtls_identities: dict[str, list[str]] = Field(default_factory=dict)
    """Client-certificate subjects (RFC 4514, e.g. ``CN=ci-runner,O=Acme``) mapped to grants
    (``ROLE`` or ``ROLE:PATTERN``); an unlisted subject is refused."""


class TlsSettings(BaseModel):
    """TLS for the REST and gRPC ports (TLS 1.2 or newer)."""

    model_config = ConfigDict(extra="forbid")

    cert: Path | None = None
    """Server certificate chain (PEM); set with ``key`` to serve HTTPS and gRPC over TLS."""

    key: Path | None = None
    """Server private key (PEM)."""

    ca: Path | None = None
    """CA bundle (PEM) that client certificates must chain to; set it to require mutual TLS."""


class LogSettings(BaseModel):
    """What the model server logs, and how (``modelport serve --log-level/--log-format``)."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning", "error"] = "info"
    """Least severe level written; ``warning`` drops the start-up, shutdown and access lines."""

    format: Literal["text", "json"] = "text"
    """``text``: one readable line per event; ``json``: one JSON object per line."""

    access: bool = True
    """Write one access line per REST request and gRPC call (at level ``info``)."""


class PredictionLogSettings(BaseModel):
    """Where predictions are logged, how often they are written, and how long they are kept."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["parquet", "postgresql"] = "parquet"
    """Where records go: ``parquet`` (segments in :attr:`folder`, the embedded default) or
    ``postgresql`` (the ``prediction_log`` table in :attr:`database_url`, one ``COPY`` per
    batch)."""

    database_url: str | None = None
    """PostgreSQL URL of the ``postgresql`` backend's database; default: the metadata database
    (``MODELPORT_DATABASE_URL``) when that is PostgreSQL. Example:
    ``postgresql+psycopg://postgres@127.0.0.1:5432/modelport``."""

    folder: Path | None = None
    """Folder of the Parquet segments (``parquet`` backend); default ``HOME/predictions``."""

    flush_interval_s: float = Field(default=1.0, gt=0, le=3600)
    """Seconds between two writes: the most a ``kill -9`` can lose."""

    max_queue: int = Field(default=100_000, ge=1)
    """Records waiting to be written at most; more are dropped and counted."""

    retention_days: float | None = Field(default=30.0, gt=0)
    """Days (segments, or rows of the table) older than this are deleted; ``None`` keeps them."""

    max_bytes: int | None = Field(default=None, ge=1)
    """When the segments (or the table's rows) take more, the oldest days are deleted;
    ``None``: no size limit."""


class GatewaySettings(BaseModel):
    """The gateway (``modelport gateway`` and ``modelport up``): deployments, replicas, shadows."""

    model_config = ConfigDict(extra="forbid")

    poll_interval_s: float = Field(default=1.0, gt=0, le=300)
    """Seconds between two reads of the deployments' generations: how far behind a change
    the gateway can be."""

    health_interval_s: float = Field(default=2.0, gt=0, le=300)
    """Seconds between two active health checks of a replica (``/v2/health/ready``)."""

    health_timeout_s: float = Field(default=1.0, gt=0, le=60)
    """Seconds a health check may take before the replica counts as down."""

    connect_timeout_s: float = Field(default=1.0, gt=0, le=60)
    """Seconds to open a connection to a replica."""

    request_timeout_s: float = Field(default=60.0, gt=0)
    """Seconds a replica may take to answer a forwarded request."""

    breaker_failures: int = Field(default=5, ge=1)
    """Consecutive failures of a replica that open its circuit (no traffic for
    ``breaker_open_s``, then one trial request)."""

    breaker_open_s: float = Field(default=5.0, gt=0, le=3600)
    """Seconds an open circuit keeps traffic away from a replica."""

    max_connections: int = Field(default=256, ge=1)
    """Keep-alive connections held at most per replica."""

    dns_refresh_s: float = Field(default=5.0, gt=0, le=3600)
    """Seconds between two lookups of a ``replicas.dns`` name."""

    upstream_key: SecretStr | None = None
    """API key the gateway presents to replicas (``Authorization: Bearer KEY``); unset: the
    caller's own ``Authorization`` is passed on."""

    max_shadow_in_flight: int = Field(default=256, ge=1)
    """Shadow requests running at most; more are skipped and counted, never queued."""

    redis_url: str | None = None
    """Redis of the response caches with ``backend: redis`` (``redis://127.0.0.1:6379/0``),
    shared by every gateway replica; unset: such deployments cannot be served."""


class ControlPlaneSettings(BaseModel):
    """The control plane (``modelport controlplane``): its address, limits and background jobs."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    """Address the control plane binds; loopback by default so nothing is exposed by accident."""

    port: int = Field(default=8090, ge=0, le=65535)
    """Port of the ``/v1/`` API; 0 picks a free port and prints it."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Largest request body (resource documents) accepted; larger ones get 413 without being
    read whole."""

    replica_timeout_s: float = Field(default=2.0, gt=0, le=60)
    """Seconds a deployment's replica has to answer ``GET /v2/health/live`` (or its DNS name to
    resolve) when the deployment is applied; a replica that does not is refused."""

    prune_interval_s: float = Field(default=3600.0, gt=0)
    """Seconds between two runs of the prediction log's retention job (``predictions``
    ``retention_days`` and ``max_bytes``); the first runs when the control plane starts."""

    experiment_interval_s: float = Field(default=10.0, gt=0)
    """Seconds between two looks for experiments whose evaluation is due (each experiment is
    evaluated every ``spec.evaluateEvery``); the first look is when the control plane starts."""

    alert_interval_s: float = Field(default=15.0, gt=0)
    """Seconds between two evaluations of every alert rule (``modelport alerts list``); one
    process evaluates at a time (a lock file, ``HOME/alerts.lock``)."""

    alert_repeat_interval_s: float = Field(default=14400.0, gt=0)
    """Seconds after which a still-firing alert is notified again (Alertmanager's
    ``repeat_interval``, 4 h by default); an unchanged firing alert is not re-sent sooner."""

    notify_interval_s: float = Field(default=5.0, gt=0)
    """Seconds between two deliveries of the alert notifications that are due (new ones, and
    retries whose backoff has passed)."""

    drift_interval_s: float = Field(default=300.0, gt=0)
    """Seconds between two runs of the drift job: it scores each served version's latest
    window (each of ``monitoring.drift_window_seconds``) against the version's reference
    profile and against the window before it, stores the verdicts and exports them as
    metrics; the first run is when the control plane starts."""

    materialize_interval_s: float = Field(default=300.0, gt=0)
    """Seconds between two runs of the materialisation job: it copies each online feature
    view's rows newer than its last run (``materialize_incremental``) into the online store;
    the first run is when the control plane starts."""


class MonitoringSettings(BaseModel):
    """What every process's ``/metrics`` measures against."""

    model_config = ConfigDict(extra="forbid")

    slo_latency_seconds: list[float] = Field(
        default_factory=lambda: [0.1, 0.25, 0.5, 1.0], max_length=16
    )
    """Latency thresholds of your service-level objectives, in seconds, smallest first (JSON:
    ``[0.05, 0.2]``): each is a bucket edge of every latency histogram, so the share of requests
    answered within it is read exactly from the histogram, never interpolated."""

    signal_interval_s: float = Field(default=15.0, gt=0)
    """Seconds between two writes of what each gateway process measured (requests, server
    errors, latency buckets, batch-queue fill, readiness samples) to the metadata database's
    ``traffic_windows`` table, which the alert rules are evaluated on."""

    drift_bucket_s: float = Field(default=60.0, ge=1, le=3600)
    """Seconds of one drift bucket: gateways count logged predictions into their version's
    reference bins per bucket and store each bucket once it has ended (so the drift job sees a
    prediction at most this long, plus one log flush, after it was answered). Every window
    length must be a multiple of it."""

    drift_window_seconds: list[float] = Field(default_factory=lambda: [3600.0], min_length=1,
                                              max_length=8)  # fmt: skip
    """Window lengths the drift job scores, in seconds (JSON: ``[3600, 86400]``): each run
    scores the latest window of each length, ending at the latest bucket boundary."""

    drift_min_rows: int = Field(default=100, ge=1)
    """A window with fewer rows is not scored (its verdict would be noise)."""

    drift_retention_days: float = Field(default=14.0, gt=0)
    """Days drift buckets and verdicts are kept (the drift job deletes older ones); at least
    two of the longest window are kept whatever this says."""

    @field_validator("slo_latency_seconds")
    @classmethod
    def _positive_and_increasing(cls, thresholds: list[float]) -> list[float]:
        for value in thresholds:
            if not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"each threshold must be a positive number of seconds, got {value}"
                )
        for earlier, later in zip(thresholds, thresholds[1:], strict=False):
            if later <= earlier:
                raise ValueError(
                    f"thresholds must be listed smallest first without repeats, got {earlier} "
                    f"before {later}"
                )
        return thresholds

    @model_validator(mode="after")
    def _windows_fit_buckets(self) -> MonitoringSettings:
        for window in self.drift_window_seconds:
            buckets = window / self.drift_bucket_s
            if window <= 0 or abs(buckets - round(buckets)) > 1e-9:
                raise ValueError(
                    f"each of drift_window_seconds must be a positive multiple of "
                    f"drift_bucket_s ({self.drift_bucket_s:g}), got {window:g}"
                )
        return self


class FeatureSettings(BaseModel):
    """The feature store: its online store and how the offline store reads sources.

    The definitions (entities, feature views, feature services) live in the metadata database.
    """

    model_config = ConfigDict(extra="forbid")

    online_store: str | None = None
    """Where online feature rows live: ``sqlite:///PATH`` or ``redis://HOST:PORT/DB`` (or
    ``rediss://``); unset means SQLite at ``HOME/features/online.db``. Every gateway, ``up``
    worker and the control plane of one installation must name the same store."""

    redis_prefix: str = Field(default="modelport:online:", min_length=1)
    """Prefix of every key the Redis online store writes."""

    duckdb_threads: int | None = Field(default=None, ge=1)
    """Threads of the offline store's DuckDB queries; unset: one per core."""

    duckdb_memory_limit: str | None = None
    """DuckDB's memory limit for training sets and materialisation (``4GB``); beyond it,
    DuckDB spills to disk."""

    materialize_chunk_rows: int = Field(default=10_000, ge=1)
    """Rows read and written at a time when materialising."""

    @field_validator("online_store")
    @classmethod
    def _store_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite:///", "redis://", "rediss://")):
            raise ValueError(
                f"expected sqlite:///PATH, redis://HOST:PORT/DB or rediss://..., got {url!r}"
            )
        return url


class ArtifactSecuritySettings(BaseModel):
    """Encryption at rest and signing of model artifacts."""

    model_config = ConfigDict(extra="forbid")

    kek_provider: str = "file"
    """Where the key-encryption key comes from: ``file`` (``kek_file``, created with mode 0600
    on first use), ``env`` (the variable named by ``kek_env``), or ``module:Class`` naming a
    :class:`modelport.security.kek.KeyProvider` subclass for a KMS or HSM."""

    kek_file: Path | None = None
    """Key-encryption key file; unset means ``HOME/keys/kek.json``."""

    kek_env: str = "MODELPORT_KEK"
    """Environment variable holding the key-encryption key as 32 bytes in base64 (``env``
    provider)."""

    signing_key: Path | None = None
    """Ed25519 private key (PEM) that signs manifests at registration; unset means
    ``HOME/keys/signing.pem``, created with mode 0600 on first use."""

    signer: str | None = None
    """Signer identity written into manifests; defaults to ``user``."""

    trusted_signers: list[Path] = Field(default_factory=list)
    """Ed25519 public keys (PEM) whose signatures are accepted at load, besides this
    installation's own signing key."""


class LimitSettings(BaseModel):
    """Request limits and per-identity rate limits."""

    model_config = ConfigDict(extra="forbid")

    max_rows: int = Field(default=1_000_000, ge=1)
    """Most rows (first dimension) of any input tensor in one request."""

    max_elements: int = Field(default=64 * 1024 * 1024, ge=1)
    """Most elements of all input tensors of one request together."""

    rate_per_s: float = Field(default=0.0, ge=0)
    """Sustained requests per second per identity (token bucket); 0 turns rate limits off."""

    burst: int = Field(default=100, ge=1)
    """Requests an identity may send at once above the sustained rate."""

    peer_rate_per_s: float = Field(default=100.0, ge=0)
    """Authentication attempts per second per client address, before the credential is checked
    (token bucket; 0 turns it off). Calls answered from the decision cache do not count, so it
    bounds floods of bad or unknown credentials, not a client's traffic."""

    peer_burst: int = Field(default=500, ge=1)
    """Authentication attempts a client address may make at once above ``peer_rate_per_s``."""


class SecuritySettings(BaseModel):
    """Authentication, TLS, artifact protection and limits."""

    model_config = ConfigDict(extra="forbid")

    auth: AuthSettings = Field(default_factory=AuthSettings)
    """Who may call what."""

    tls: TlsSettings = Field(default_factory=TlsSettings)
    """Transport security."""

    artifacts: ArtifactSecuritySettings = Field(default_factory=ArtifactSecuritySettings)
    """Encryption at rest and signing."""

    limits: LimitSettings = Field(default_factory=LimitSettings)
    """Request limits and rate limits."""


class TracingSettings(BaseModel):
    """OpenTelemetry tracing of requests (``pip install 'modelport[tracing]'``), off by default."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    """Trace requests and export the spans over OTLP/HTTP; on without the ``tracing`` extra
    installed, a server refuses to start. Off, no OpenTelemetry module is imported."""

    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    """OTLP/HTTP (protobuf) traces URL of the collector or tracing backend: an OpenTelemetry
    Collector, Jaeger, Tempo, or a vendor's intake."""

    service_name: str | None = Field(default=None, min_length=1, max_length=255)
    """``service.name`` of the spans; unset: ``modelport-server`` (``serve``),
    ``modelport-gateway`` (``gateway``) or ``modelport-up`` (``up``)."""

    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of new traces recorded (parent-based: a request whose ``traceparent`` says its
    caller recorded it is always recorded, one that says not never is)."""

    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Headers sent with every export, such as a vendor's API key (JSON:
    ``{"x-api-key": "KEY"}``); never logged."""

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, endpoint: str) -> str:
        if not endpoint.startswith(("http://", "https://")) or len(endpoint) <= len("https://"):
            raise ValueError(
                f"must be an http:// or https:// URL (OTLP/HTTP), got {endpoint!r}; for example "
                "http://127.0.0.1:4318/v1/traces"
            )
        return endpoint


class Settings(BaseSettings):
    """All of modelport's settings."""

    model_config = SettingsConfigDict(
        env_prefix="MODELPORT_", env_nested_delimiter="__", extra="forbid"
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".modelport")
    """Data directory: the SQLite database, the artifact store and this installation's keys."""

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

    security: SecuritySettings = Field(default_factory=SecuritySettings)
    """Authentication, authorisation, TLS, artifact encryption and signing, limits."""

    log: LogSettings = Field(default_factory=LogSettings)
    """Log level, format and the access log of the model server."""

    predictions: PredictionLogSettings = Field(default_factory=PredictionLogSettings)
    """The prediction log's folder, write interval, queue and retention."""

    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    """The gateway: how often it reads deployments, checks replicas and opens circuits."""

    controlplane: ControlPlaneSettings = Field(default_factory=ControlPlaneSettings)
    """The control plane: address, body limit, replica checks and background job intervals."""

    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    """What the metrics measure against: the latency thresholds of the service-level
    objectives."""

    tracing: TracingSettings = Field(default_factory=TracingSettings)
    """OpenTelemetry tracing: on or off, where spans go, the service name and sampling."""

    features: FeatureSettings = Field(default_factory=FeatureSettings)
    """The feature store's online store and offline (DuckDB) settings."""

    def resolved_database_url(self) -> str:
        """Return the metadata database URL, defaulting to SQLite under :attr:`home`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'modelport.db'}"

    @property
    def artifacts_dir(self) -> Path:
        """Folder of the artifact store (sealed artifacts, key records, signed manifests)."""
        return self.home / "artifacts"

    @property
    def predictions_dir(self) -> Path:
        """Folder of the prediction log's Parquet segments."""
        return self.predictions.folder or self.home / "predictions"

    @property
    def keys_dir(self) -> Path:
        """Folder of this installation's own keys (key-encryption key, signing key)."""
        return self.home / "keys"


def load_settings() -> Settings:
    """Read settings from the environment (``MODELPORT_*``)."""
    return Settings()
