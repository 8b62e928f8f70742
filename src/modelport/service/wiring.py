"""Builds the object graph from settings: the one place that picks concrete backends."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from modelport import __version__
from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import ConfigError, Conflict, ModelportError, NotFound
from modelport.core.refs import ModelRef, validate_model_name
from modelport.core.settings import BatchingSettings, Settings
from modelport.security.checkpoints import CheckpointFile
from modelport.security.store import SecurityStore
from modelport.service.jobs import Job, JobSkipped, exclusive, turn

# The rest is imported by the functions that use it: every command that opens the installation
# imports this module, and most need a few of its stores, not the serving stack.
if TYPE_CHECKING:
    from modelport.drift import Profile
    from modelport.experiments.experiment_store import ExperimentStore
    from modelport.experiments.feedback import FeedbackKind
    from modelport.experiments.store import DeploymentStore
    from modelport.features import FeatureStore
    from modelport.features.online import RedisOnlineStoreConfig, SqliteOnlineStoreConfig
    from modelport.monitoring import DriftScore, Exposition
    from modelport.monitoring.drift_recorder import DriftRecorder
    from modelport.monitoring.drift_store import DriftStore
    from modelport.monitoring.prediction_log import (
        PredictionLog,
        PredictionRecord,
        PredictionSink,
    )
    from modelport.service.access import AccessControl
    from modelport.service.alert_rules import AlertRuleService
    from modelport.service.dataplane import DataPlane, Peers
    from modelport.service.deployments import DeploymentService
    from modelport.service.experiments import ExperimentService
    from modelport.service.features import FeatureStoreService
    from modelport.service.feedback import FeedbackService
    from modelport.service.gateway import Gateway
    from modelport.service.models import ModelSource
    from modelport.service.registration import Registrar

__all__ = [
    "control_plane_jobs",
    "deployment_sources",
    "open_alert_rules",
    "open_control_plane",
    "open_deployment_store",
    "open_deployments",
    "open_drift_recorder",
    "open_drift_store",
    "open_experiments",
    "open_feature_store",
    "open_features",
    "online_store_config",
    "open_feedback",
    "open_prediction_log",
    "open_prediction_sink",
    "prediction_log_secret",
    "build_access",
    "ServeTarget",
    "build_dataplane",
    "build_exposition",
    "current_user",
    "open_registrar",
    "open_security_store",
    "RegistryAliases",
    "registered_source",
    "resolve_sources",
]


def current_user(settings: Settings) -> str:
    """Return who is acting: ``MODELPORT_USER`` or the operating-system user."""
    if settings.user:
        return settings.user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def open_registrar(settings: Settings, clock: Clock | None = None) -> Registrar:
    """Open the registry (metadata database + sealed artifact store) named by ``settings``.

    Artifacts are encrypted with the KEK ``settings.security.artifacts`` names (built on first
    use) and manifests signed by this installation's signing key as the acting user.
    """
    from modelport.registry import MetadataStore
    from modelport.service.artifact_guard import ArtifactGuard
    from modelport.service.registration import Registrar

    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = MetadataStore(settings.resolved_database_url(), clock or SystemClock())
    guard = ArtifactGuard.from_settings(settings, current_user(settings), clock=clock)
    return Registrar(store, guard, settings.runtime, open_security_store(settings, clock))


@contextmanager
def open_deployments(settings: Settings, clock: Clock | None = None) -> Iterator[DeploymentService]:
    """Open deployments, the registry they point into and the audit log; close them after."""
    with _deployment_service(settings, clock or SystemClock()) as (service, _, _):
        yield service


@contextmanager
def open_alert_rules(settings: Settings, clock: Clock | None = None) -> Iterator[AlertRuleService]:
    """Open alert rules, the deployments they watch and the audit log; close them after.

    Raises:
        ConfigError: The database URL is unsupported or the database cannot be reached.
    """
    from modelport.experiments.store import DeploymentStore
    from modelport.monitoring.alert_rules import AlertRuleStore
    from modelport.service.alert_rules import AlertRuleService

    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    url, clock = settings.resolved_database_url(), clock or SystemClock()
    with (
        AlertRuleStore(url, clock) as store,
        DeploymentStore(url, clock) as deployments,
        open_security_store(settings, clock) as security,
    ):
        yield AlertRuleService(store, deployments, security)


@contextmanager
def _deployment_service(
    settings: Settings, clock: Clock
) -> Iterator[tuple[DeploymentService, SecurityStore, ExperimentStore]]:
    """The deployment service, the security store it audits into, and the experiments.

    A running experiment owns its deployment's split (see :class:`DeploymentService`).
    """
    from modelport.experiments.experiment_store import ExperimentStore
    from modelport.experiments.store import DeploymentStore
    from modelport.registry import MetadataStore
    from modelport.service.deployments import DeploymentService

    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = settings.resolved_database_url()
    with (
        DeploymentStore(url, clock) as store,
        MetadataStore(url, clock) as registry,
        ExperimentStore(url, clock) as experiments,
        open_security_store(settings, clock) as security,
    ):

        def owner(deployment: str) -> tuple[str, str, str] | None:
            running = experiments.active(deployment)
            if running is None:
                return None
            spec = running.experiment.spec
            return running.name, spec.control, spec.treatment

        yield DeploymentService(store, registry, security, owner), security, experiments


@contextmanager
def open_control_plane(
    settings: Settings, clock: Clock | None = None
) -> Iterator[tuple[DeploymentService, ExperimentService, AccessControl]]:
    """Open what ``modelport controlplane`` serves; close it all after.

    Yields the deployments (with the registry they point into and the audit log), the
    experiments (which evaluate on request too), and the access control of the API (API keys
    and denials in the same security store).

    Raises:
        ConfigError: The database URL is unsupported or the database cannot be reached.
    """
    from modelport.service.access import build_access_control

    clock = clock or SystemClock()
    with _experiment_service(settings, clock, evaluate=True) as (experiments, security):
        access = build_access_control(settings.security, security, security, clock)
        try:
            yield experiments.deployments, experiments, access
        finally:
            access.close()  # the denials still queued are written


@contextmanager
def open_experiments(
    settings: Settings, clock: Clock | None = None, *, evaluate: bool = True
) -> Iterator[ExperimentService]:
    """Open experiments with what they change and read; close it all after.

    Args:
        settings: Where the metadata database, the prediction log and the keys are.
        clock: The time of decisions.
        evaluate: Also open what evaluations need: the prediction log's storage and the
            registrar that moves the promotion alias (``False`` for listing commands).

    Raises:
        ConfigError: The database URL is unsupported or the database cannot be reached, or the
            prediction log's backend is ``postgresql`` without a PostgreSQL URL.
    """
    with _experiment_service(settings, clock or SystemClock(), evaluate) as (service, _):
        yield service


@contextmanager
def _experiment_service(
    settings: Settings, clock: Clock, evaluate: bool
) -> Iterator[tuple[ExperimentService, SecurityStore]]:
    """The experiment service over its stores, and the security store it audits into."""
    from modelport.experiments.feedback import FeedbackStore
    from modelport.service.experiments import ExperimentService, PredictionLogData

    url = settings.resolved_database_url()
    with (
        _deployment_service(settings, clock) as (deployments, security, store),
        FeedbackStore(url, clock) as feedback,
    ):
        data = aliases = None
        if evaluate:
            source: Path | str = settings.predictions_dir
            if settings.predictions.backend == "postgresql":
                source = _prediction_log_url(settings)
            data = PredictionLogData(source, feedback)
            aliases = open_registrar(settings, clock)
        try:
            yield ExperimentService(store, deployments, security, clock, data, aliases), security
        finally:
            if aliases is not None:
                aliases.store.close()


@contextmanager
def open_feedback(
    settings: Settings, sink: PredictionSink, clock: Clock | None = None
) -> Iterator[FeedbackService]:
    """Open the feedback of ``settings``' installation, checked against ``sink``'s records.

    Request ids are looked up in the prediction log (``sink``), and a deployment's running
    experiment says which kind of feedback it takes (a label for classification, a value for
    regression).

    Raises:
        ConfigError: The database URL is unsupported or the database cannot be reached.
    """
    from modelport.experiments.experiment_store import ExperimentStore
    from modelport.experiments.feedback import FeedbackStore
    from modelport.service.feedback import FeedbackService, lookup_wait_s

    clock = clock or SystemClock()
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = settings.resolved_database_url()
    with FeedbackStore(url, clock) as store, ExperimentStore(url, clock) as experiments:

        def expected_kind(deployment: str) -> FeedbackKind | None:
            running = experiments.active(deployment)
            if running is None:
                return None
            return "label" if running.experiment.spec.task == "classification" else "value"

        yield FeedbackService(
            store,
            sink.find_request_ids,
            expected_kind,
            clock,
            lookup_wait_s(settings.predictions.flush_interval_s),
        )


def control_plane_jobs(
    settings: Settings,
    clock: Clock | None = None,
    on_evaluated: Callable[[list[tuple[str, str, float]]], None] | None = None,
    on_drift: Callable[[list[DriftScore]], None] | None = None,
) -> list[Job]:
    """The control plane's background jobs: experiments, drift, the prediction log's retention.

    Experiments are evaluated under an exclusive lock on ``HOME/experiments.lock``, so of the
    processes running the job (the control plane, every ``modelport up`` worker) one evaluates
    at a time and the others skip their turn (:class:`~modelport.service.jobs.JobSkipped`); the
    drift job likewise under ``HOME/drift.lock``.

    Args:
        settings: The installation and the jobs' intervals.
        clock: The time of decisions and of retention.
        on_evaluated: Told after each evaluation run when every experiment not yet ended was
            last evaluated: ``(experiment, deployment, Unix time)`` (the metrics').
        on_drift: Told after each drift run the latest scores (the metrics').

    Raises:
        ConfigError: The prediction log's backend is ``postgresql`` without a PostgreSQL URL.
    """
    from modelport.service.alert_jobs import alert_jobs

    clock = clock or SystemClock()
    if settings.predictions.backend == "postgresql":
        _prediction_log_url(settings)  # a bad setting fails the start, not every run
    lock = settings.home / "experiments.lock"

    def evaluate() -> str | None:
        with exclusive(lock) as held:
            if not held:
                raise JobSkipped("another process is evaluating")
            with open_experiments(settings, clock) as experiments:
                summary = experiments.evaluate_due()
                if on_evaluated is not None:
                    on_evaluated(_last_evaluations(experiments))
                return summary

    jobs = [Job("evaluate-experiments", settings.controlplane.experiment_interval_s, evaluate)]
    jobs.append(_drift_job(settings, clock, on_drift))
    jobs.append(_materialize_job(settings, clock))
    jobs += alert_jobs(settings, clock)
    return jobs + _retention_jobs(settings, clock)


def _drift_job(
    settings: Settings, clock: Clock, on_drift: Callable[[list[DriftScore]], None] | None
) -> Job:
    """The drift job (:class:`~modelport.service.drift_monitor.DriftMonitor`), one at a time."""
    from modelport.monitoring.drift_store import DriftStore
    from modelport.registry import MetadataStore
    from modelport.service.drift_monitor import DriftMonitor, drift_scores

    lock = settings.home / "drift.lock"

    def score() -> str:
        url = settings.resolved_database_url()
        with DriftStore(url) as store:
            try:
                with turn(lock, settings.controlplane.drift_interval_s):
                    with MetadataStore(url, clock) as registry:
                        return DriftMonitor(store, registry, settings.monitoring, clock).run()
            finally:  # this process's metrics show the latest scores, whoever made them
                if on_drift is not None:
                    on_drift(drift_scores(store.latest_results(against="reference")))

    return Job("score-drift", settings.controlplane.drift_interval_s, score)


def _materialize_job(settings: Settings, clock: Clock) -> Job:
    """Each online view from where its last materialisation ended to now, one process a turn."""
    lock = settings.home / "materialize.lock"
    interval = settings.controlplane.materialize_interval_s

    def materialize() -> str:
        with turn(lock, interval), open_features(settings, clock) as features:
            if not any(v.online for v in features.store.list_feature_views()):
                return "no online feature views"
            summary = features.materialize(
                "controlplane",
                start=None,
                end=clock.now(),
                chunk_rows=settings.features.materialize_chunk_rows,
            )
            return ", ".join(f"{view}: {rows} rows" for view, rows in summary.rows.items())

    return Job("materialize-features", interval, materialize)


def online_store_config(settings: Settings) -> SqliteOnlineStoreConfig | RedisOnlineStoreConfig:
    """The online feature store ``features.online_store`` names (SQLite in the home by default)."""
    from modelport.features.online import RedisOnlineStoreConfig, SqliteOnlineStoreConfig

    url = settings.features.online_store
    if url is None:
        return SqliteOnlineStoreConfig(path=settings.home / "features" / "online.db")
    if url.startswith("sqlite:///"):
        return SqliteOnlineStoreConfig(path=Path(url.removeprefix("sqlite:///")))
    return RedisOnlineStoreConfig(url=url, prefix=settings.features.redis_prefix)


def open_feature_store(settings: Settings, clock: Clock | None = None) -> FeatureStore:
    """The feature store on the metadata database's registry and the configured online store.

    Raises:
        ConfigError: The database URL is unsupported or the database cannot be reached.
    """
    from modelport.features import FeatureStore

    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    duckdb: dict[str, str | int] = {}
    if settings.features.duckdb_threads is not None:
        duckdb["threads"] = settings.features.duckdb_threads
    if settings.features.duckdb_memory_limit is not None:
        duckdb["memory_limit"] = settings.features.duckdb_memory_limit
    now = (clock or SystemClock()).now
    return FeatureStore(
        registry=settings.resolved_database_url(),
        actor=current_user(settings),
        online_store=online_store_config(settings),
        duckdb_config=duckdb,
        clock=now,
    )


@contextmanager
def open_features(settings: Settings, clock: Clock | None = None) -> Iterator[FeatureStoreService]:
    """Open the feature store and the audit log it records changes in; close them after.

    Raises:
        ConfigError: The database URL is unsupported or the database cannot be reached.
    """
    from modelport.service.features import FeatureStoreService

    with (
        open_feature_store(settings, clock) as store,
        open_security_store(settings, clock) as security,
    ):
        yield FeatureStoreService(store, security)


def open_drift_store(settings: Settings) -> DriftStore:
    """Open the drift windows and verdicts kept in the metadata database."""
    from modelport.monitoring.drift_store import DriftStore

    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return DriftStore(settings.resolved_database_url())


def open_drift_recorder(settings: Settings, gateway: Callable[[], Gateway]) -> DriftRecorder:
    """The drift windows of a gateway process: counted from its log, stored in the database.

    Args:
        settings: The metadata database and the bucket length.
        gateway: The process's gateway (once built): which inputs and outputs each
            deployment's prediction log redacts or hashes.

    Raises:
        ConfigError: The database URL is unsupported or the database cannot be reached.
    """
    from modelport.drift import Profile
    from modelport.monitoring.drift_counter import DriftCounter
    from modelport.monitoring.drift_recorder import DriftRecorder
    from modelport.monitoring.drift_store import DriftStore
    from modelport.registry import MetadataStore

    url = settings.resolved_database_url()
    registry = MetadataStore(url, SystemClock())

    def profile(model: str, version: str) -> Profile | None:
        if not version.isdecimal():
            return None
        try:
            stored = registry.get_profile(model, int(version))
        except NotFound:
            return None
        return None if stored is None else Profile.from_dict(stored.profile)

    def hidden(deployment: str) -> set[str]:
        try:
            route = gateway().route(deployment)
        except ModelportError:
            return set()  # gone since: nothing of it is known to hide
        return set(route.redact) | set(route.hashed)

    counter = DriftCounter(profile, hidden, settings.monitoring.drift_bucket_s)
    try:
        store = DriftStore(url)
    except BaseException:
        registry.close()
        raise
    return DriftRecorder(counter, store, on_close=registry.close)


def _last_evaluations(experiments: ExperimentService) -> list[tuple[str, str, float]]:
    """``(experiment, deployment, Unix time of its latest decision)`` of those not yet ended."""
    from modelport.experiments.experiment_store import ACTIVE

    found = []
    for stored in experiments.list():
        if stored.status in ACTIVE:
            at = experiments.store.last_decision_at(stored.name)
            if at is not None:
                found.append((stored.name, stored.deployment, at.timestamp()))
    return found


def _retention_jobs(settings: Settings, clock: Clock) -> list[Job]:
    """The prediction log's retention job, when retention is configured."""
    rules = settings.predictions
    max_age_s = rules.retention_days * 86_400 if rules.retention_days is not None else None
    if max_age_s is None and rules.max_bytes is None:
        return []  # everything is kept: nothing to do

    def prune() -> str:
        sink = open_prediction_sink(settings)
        try:
            pruned = sink.prune(clock.now(), max_age_s, rules.max_bytes)
        finally:
            sink.close()
        removed = pruned.removed
        if not removed:
            return f"deleted no {pruned.unit}"
        shown = ", ".join(removed[:10])
        more = f" and {len(removed) - 10} more" if len(removed) > 10 else ""
        n = pruned.records
        records = "" if n is None else f" ({n} record{'s' if n != 1 else ''})"
        return f"deleted {len(removed)} {pruned.unit}(s){records} of {pruned.where}: {shown}{more}"

    return [Job("prune-predictions", settings.controlplane.prune_interval_s, prune)]


def open_prediction_sink(settings: Settings) -> PredictionSink:
    """Open the prediction log's storage named by ``settings.predictions``, to write or read.

    ``parquet``: segments in ``predictions.folder`` (default ``HOME/predictions``);
    ``postgresql``: the ``prediction_log`` table in ``predictions.database_url`` (default: the
    metadata database, when that is PostgreSQL). Nothing is connected yet.

    Raises:
        ConfigError: ``postgresql`` without a PostgreSQL URL to use.
        DependencyMissing: The backend's library (pyarrow, psycopg) is not installed.
    """
    from modelport.monitoring.prediction_log import ParquetSink

    if settings.predictions.backend == "postgresql":
        # psycopg and the sink's module are imported only when chosen.
        from modelport.monitoring.prediction_postgres import PostgresSink

        return PostgresSink(_prediction_log_url(settings))
    return ParquetSink(settings.predictions_dir)


def open_prediction_log(
    settings: Settings, observer: Callable[[Sequence[PredictionRecord]], None] | None = None
) -> PredictionLog:
    """Start the prediction log of a gateway process (its writer thread), on the configured sink.

    Args:
        settings: The sink, its flush interval and queue.
        observer: Told each flush's records (the drift windows' counter).

    Raises:
        ConfigError: ``postgresql`` without a PostgreSQL URL to use.
        DependencyMissing: The backend's library (pyarrow, psycopg) is not installed.
    """
    from modelport.monitoring.prediction_log import PredictionLog

    rules = settings.predictions
    return PredictionLog(
        open_prediction_sink(settings),
        rules.flush_interval_s,
        rules.max_queue,
        secret=prediction_log_secret(settings),
        observer=observer,
    )


def _prediction_log_url(settings: Settings) -> str:
    """The PostgreSQL URL of the prediction log: its own, else the metadata database's."""
    if settings.predictions.database_url:
        return settings.predictions.database_url
    metadata = settings.database_url
    if metadata and metadata.partition(":")[0].partition("+")[0] == "postgresql":
        return metadata
    raise ConfigError(
        "the prediction log's postgresql backend needs a PostgreSQL database, and the metadata "
        "database is not one: set MODELPORT_PREDICTIONS__DATABASE_URL "
        "(postgresql+psycopg://USER@HOST:PORT/DB), or MODELPORT_PREDICTIONS__BACKEND=parquet"
    )


def open_deployment_store(settings: Settings, clock: Clock | None = None) -> DeploymentStore:
    """Open the deployments kept in the metadata database named by ``settings``."""
    from modelport.experiments.store import DeploymentStore

    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return DeploymentStore(settings.resolved_database_url(), clock or SystemClock())


def prediction_log_secret(settings: Settings) -> bytes:
    """This installation's key for the prediction log's hashed fields (``HOME/keys``).

    Made on first use: 32 random bytes in a file only its owner can read. Every process of
    the installation hashes with it, so hashed values join across gateways and days.
    """
    path = settings.keys_dir / "prediction-log.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    settings.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = os.urandom(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes()
    with os.fdopen(descriptor, "wb") as file:
        file.write(secret)
    return secret


def deployment_sources(
    store: DeploymentStore, registrar: Registrar, batching: BatchingSettings | None = None
) -> list[ModelSource]:
    """The versions ``modelport up`` loads before it serves.

    Every variant of every deployment without replicas, resolved to its version now (an alias
    is followed by the gateway afterwards).

    Raises:
        NotFound: A variant's model, version or alias is no longer registered.
        Conflict: A pinned version is archived.
    """
    wanted: dict[tuple[str, int], None] = {}
    for stored in store.list():
        deployment = stored.deployment
        if deployment.spec.replicas is not None:
            continue
        for variant in deployment.spec.variants:
            version = registrar.store.resolve(variant.ref).version
            wanted[variant.ref.name, version] = None
    return [
        replace(registered_source(registrar, ModelRef(name, version=version)), batching=batching)
        for name, version in wanted
    ]


class ServeTarget:
    """One thing ``modelport serve`` was asked to host.

    Args:
        spec: ``NAME``, ``NAME@VERSION``, ``NAME@ALIAS`` (registered), an artifact path or
            ``module:Class`` (direct; needs a name), or ``SERVED=SPEC`` to give either a served
            name.
        name: Served name (what ``--name`` sets); a ``SERVED=`` prefix in ``spec`` wins.
    """

    def __init__(self, spec: str, name: str | None = None) -> None:
        served, sep, rest = spec.partition("=")
        if sep and served and "/" not in served and ":" not in served:
            validate_model_name(served)
            spec, name = rest, served
        self.spec = spec
        self.name = name

    def is_direct(self) -> bool:
        """Whether the target is an artifact rather than a registered model.

        An artifact is an existing file, a path, a file name with an artifact's suffix
        (``model.onnx``, present or not) or ``module:Class``.
        """
        from modelport.runtimes.catalog import EXTENSIONS

        spec = self.spec
        return (
            ":" in spec
            or "/" in spec
            or Path(spec).suffix.lower() in EXTENSIONS
            or Path(spec).is_file()
        )


def resolve_sources(
    targets: Sequence[ServeTarget],
    registrar: Registrar | None,
    batching: Mapping[str, BatchingSettings] | None = None,
    default_batching: BatchingSettings | None = None,
    prefer_original: bool = False,
) -> list[ModelSource]:
    """Turn what ``modelport serve`` was given into loadable sources (nothing is loaded yet).

    Args:
        targets: Registered references and artifact files.
        registrar: The registry, needed when a target is a registered reference.
        batching: Batching settings by served model name.
        default_batching: Batching for models not in ``batching``.
        prefer_original: Serve registered versions' original artifacts, not the ONNX copy
            compiled at registration.

    Raises:
        ConfigError: A direct artifact has no name, or a registry reference has no registry.
        NotFound: A registry reference does not resolve.
        Conflict: A referenced version is archived.
    """
    sources = []
    for target in targets:
        source = _source(target, registrar, prefer_original)
        chosen = (batching or {}).get(source.name, default_batching)
        sources.append(replace(source, batching=chosen))
    unknown = set(batching or {}) - {s.name for s in sources}
    if unknown:
        raise ConfigError(f"batching settings for {sorted(unknown)} name no served model")
    return sources


def build_exposition(settings: Settings, worker: int = 0) -> Exposition:
    """The Prometheus metrics of one process, its latency histograms bucketed for the SLOs.

    Args:
        settings: ``monitoring.slo_latency_seconds`` are bucket edges of every latency histogram.
        worker: The worker's index among the server's workers (the process metrics' label).
    """
    from modelport.monitoring import Exposition

    return Exposition(slo_latency_seconds=settings.monitoring.slo_latency_seconds, worker=worker)


def build_dataplane(
    settings: Settings,
    sources: Sequence[ModelSource],
    registrar: Registrar | None,
    peers: Peers | None = None,
    exposition: Exposition | None = None,
) -> DataPlane:
    """Build a data plane hosting ``sources``; models are added but not yet loaded.

    Args:
        settings: Runtime settings for every model.
        sources: What to host.
        registrar: Resolves names loaded later through the repository extension; ``None``
            refuses names the server was not started with.
        peers: The other worker processes, when there are several.
        exposition: The process's metrics, which the data plane's join; ``None`` makes them
            (:func:`build_exposition`).
    """
    from modelport.monitoring import ServingMetrics
    from modelport.service.dataplane import DataPlane
    from modelport.service.models import ModelRepository

    if exposition is None:
        exposition = build_exposition(settings)
    resolver = None
    if registrar is not None:

        def resolver(name: str, parameters: dict[str, object]) -> list[ModelSource]:
            selector = parameters.get("version", parameters.get("alias"))
            ref = ModelRef.parse(name if selector is None else f"{name}@{selector}")
            return [registered_source(registrar, ref)]

    aliases = RegistryAliases(registrar) if registrar is not None else None
    repository = ModelRepository(
        settings.runtime,
        resolver,
        aliases=aliases,
        alias_poll_s=settings.server.alias_poll_s,
        latency_buckets=exposition.latency_buckets,
    )
    for source in sources:
        repository.add(source)
    return DataPlane(
        repository,
        "modelport",
        __version__,
        peers,
        ServingMetrics(exposition),
        settings.security.limits,
    )


def build_access(settings: Settings, clock: Clock | None = None) -> AccessControl:
    """Build the access control of a serving process from ``settings.security``.

    With authentication on, API keys are checked against the security store in the metadata
    database, which also receives the audit log; JWTs are checked when OIDC is configured.
    """
    from modelport.service.access import AccessControl, build_access_control

    auth = settings.security.auth
    if not auth.enabled:
        return AccessControl(None)
    clock = clock or SystemClock()
    store = open_security_store(settings, clock)
    return build_access_control(settings.security, store, store, clock)


def _source(target: ServeTarget, registrar: Registrar | None, prefer_original: bool) -> ModelSource:
    from modelport.service.models import ModelSource, unpickles
    from modelport.service.registration import split_artifact

    if target.is_direct():
        ref = split_artifact(target.spec)  # a missing file is reported first (not found)
        if not target.name:
            raise ConfigError(f"serving the artifact {target.spec!r} directly needs --name NAME")
        if unpickles(ref.framework):
            raise ConfigError(
                f"refusing to serve {target.spec!r} directly: it is a {ref.framework} pickle, and "
                "unpickling runs code stored in the file, so pickles are served only from a "
                f"signed registration; register it first with: modelport register {target.name} "
                f"{target.spec}, then serve {target.name}"
            )
        return ModelSource(
            name=target.name,
            version="1",
            framework=ref.framework,
            artifact=ref.path,
            entrypoint=ref.entrypoint,
        )
    if registrar is None:
        raise ConfigError(f"{target.spec!r} is a registry reference but no registry is open")
    return registered_source(registrar, ModelRef.parse(target.spec), target.name, prefer_original)


class RegistryAliases:
    """The registry as the alias watch reads it (see :mod:`modelport.service.alias_watch`).

    Args:
        registrar: The registry the server resolved its models from.
    """

    def __init__(self, registrar: Registrar) -> None:
        self._registrar = registrar

    def current(self, ref: ModelRef) -> int:
        """Return the version number ``ref`` (``NAME@ALIAS``) points at now.

        Raises:
            NotFound: The model or alias no longer exists.
        """
        return self._registrar.store.resolve(ref).version

    def source(self, followed: ModelSource, version: int) -> ModelSource:
        """Return the source of ``version``, served as ``followed`` is and following its alias.

        Raises:
            NotFound: The version does not exist.
            Conflict: The version is archived.
        """
        ref = followed.registered
        if ref is None:
            raise ConfigError(f"{followed.name!r} version {followed.version} follows no alias")
        pinned = ModelRef(ref.name, version=version)
        source = registered_source(self._registrar, pinned, followed.name, followed.original)
        return replace(source, registered=ref, batching=followed.batching)

    def archived(self, name: str, version: int) -> bool:
        """Return whether version ``version`` of the registered model ``name`` is archived.

        Raises:
            NotFound: The version does not exist.
        """
        return self._registrar.store.get_version(name, version).status == "archived"


def registered_source(
    registrar: Registrar,
    ref: ModelRef,
    served_name: str | None = None,
    prefer_original: bool = False,
) -> ModelSource:
    """Return the source of a registered version that is refused once the version is archived.

    The version's status is read again before every load, so a reload (repository ``load``, a
    replaced worker, an alias move) of a version archived while it was served fails with
    :class:`Conflict` instead of serving it again.

    Raises:
        NotFound: Unknown model, version or alias.
        Conflict: The version is archived.
    """
    source = registrar.source_for(ref, served_name, prefer_original)
    prepare = source.prepare
    registry_name, number = ref.name, int(source.version)

    @contextmanager
    def active_then_prepare() -> Iterator[Path]:
        version = registrar.store.get_version(registry_name, number)
        if version.status == "archived":
            raise Conflict(
                f"version {number} of {registry_name!r} was archived; archived versions cannot "
                "be served"
            )
        if prepare is None:  # pragma: no cover - registered sources always prepare
            raise ConfigError(f"{ref} has no artifact to load")
        with prepare() as path:
            yield path

    return replace(source, prepare=active_then_prepare, registered=ref, original=prefer_original)


def open_security_store(settings: Settings, clock: Clock | None = None) -> SecurityStore:
    """Open the API keys and audit log kept in the metadata database named by ``settings``.

    Raises:
        ConfigError: The database URL is unsupported or the database cannot be reached.
    """
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The audit log's signed checkpoints live in the data directory, outside the database,
    # whichever database holds the log (SQLite or PostgreSQL).
    checkpoints = CheckpointFile.in_home(
        settings.home,
        settings.security.artifacts.signing_key or settings.keys_dir / "signing.pem",
    )
    return SecurityStore(settings.resolved_database_url(), clock or SystemClock(), checkpoints)
