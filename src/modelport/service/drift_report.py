"""A deployment's drift over a window of its prediction log, per variant, against its reference.

:func:`drift_report` reads the window's answered requests of a deployment (not the shadows'
copies, not the failures), turns each served version's inputs and predictions into features
(:func:`~modelport.service.reference.feature_columns`, the naming of its reference profile),
counts them into that version's profile and asks :func:`modelport.drift.detect` for a verdict
per feature. A version without a profile is reported as such (``modelport drift profile``
makes one).

Two sources: :func:`drift_report` reads the window's newest ``limit`` logged records at most
(any window, any deployment, the prediction log as it is); :func:`windows_report` sums the drift
buckets gateways stored as they logged (:mod:`modelport.monitoring.drift_recorder`): the whole
window, whatever its traffic, without reading a logged row (the buckets that started in the
window; the running bucket is not stored yet).

Values the deployment's prediction log redacts or hashes are not in the log: those features
are reported as missing (every value), never as drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from modelport.core.deployment import Deployment
from modelport.core.errors import InvalidInput, NotFound
from modelport.monitoring.drift_counter import logged_columns
from modelport.monitoring.drift_store import DriftStore
from modelport.monitoring.prediction_log import PredictionSink
from modelport.registry import MetadataStore

__all__ = ["DEFAULT_LIMIT", "VariantDrift", "drift_report", "windows_report"]

DEFAULT_LIMIT: Final = 200_000
"""Newest requests of a window a report reads at most."""


@dataclass(frozen=True, slots=True)
class VariantDrift:
    """One served version's drift in the window.

    Attributes:
        variant: The deployment's variant.
        model: The registered model.
        version: The version that answered.
        requests: Answered requests of the window read; ``None`` from stored drift windows
            (which count rows, not requests).
        report: The drift verdicts (``modelport.drift.DriftReport``); ``None`` without a
            reference profile.
        profile: The version's reference profile (``modelport.drift.Profile``), or ``None``.
        counts: The window's counts in the profile's bins (``modelport.drift.WindowCounts``).
    """

    variant: str
    model: str
    version: str
    requests: int | None
    report: Any | None
    profile: Any | None
    counts: Any | None


def drift_report(
    sink: PredictionSink,
    registry: MetadataStore,
    deployment: Deployment,
    since: datetime,
    until: datetime,
    limit: int = DEFAULT_LIMIT,
) -> list[VariantDrift]:
    """Every answering version's drift in ``[since, until)``, by variant and version.

    Raises:
        InvalidInput: The window is empty or reversed, or ``limit`` is below 1.
    """
    if until <= since:
        raise InvalidInput(f"the window must end after it starts: {since} to {until}")
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, got {limit}")
    # The newest ``limit`` records bound what is read (shadow copies and failures among them
    # are then left out), so a busy window does not load every row it logged.
    table = sink.read(deployment.name, since=since, limit=limit)
    rows = _answered(table, until)
    served: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for variant, model, version, inputs, outputs in rows:
        served.setdefault((variant, model, version), []).append((inputs, outputs))
    hidden = set(deployment.spec.prediction_log.redact) | set(deployment.spec.prediction_log.hash)
    return [
        _variant_drift(registry, key, records, hidden) for key, records in sorted(served.items())
    ]


def windows_report(
    store: DriftStore,
    registry: MetadataStore,
    deployment: Deployment,
    since: datetime,
    until: datetime,
) -> list[VariantDrift]:
    """Every answering version's drift over the stored buckets that start in ``[since, until)``.

    Counts made with a profile the version no longer has are left out.

    Raises:
        InvalidInput: The window is empty or reversed.
    """
    from modelport.drift import Profile, detect

    if until <= since:
        raise InvalidInput(f"the window must end after it starts: {since} to {until}")
    found = []
    for total in store.window_counts(deployment.name, since, until):
        stored = _stored_profile(registry, total.model, total.version)
        profile = None if stored is None else Profile.from_dict(stored.profile)
        if profile is None or profile.key != total.counts.profile_key:
            continue
        report = detect(profile, total.counts) if total.counts.rows else None
        found.append(VariantDrift(total.variant, total.model, total.version,
                                  None, report, profile, total.counts))  # fmt: skip
    return found


def _stored_profile(registry: MetadataStore, model: str, version: str) -> Any:
    if not version.isdecimal():
        return None
    try:
        return registry.get_profile(model, int(version))
    except NotFound:
        return None


def _answered(table: Any, until: datetime) -> list[tuple[str, str, str, str, str]]:
    """The window's answered, non-shadow records: variant, model, version, inputs, outputs."""
    import pyarrow.compute as pc

    keep = pc.and_(pc.invert(table["shadow"]), pc.less(table["time"], until))
    if "error" in table.column_names:
        keep = pc.and_(keep, pc.is_null(table["error"]))
    chosen = table.filter(keep)
    columns = [chosen[name].to_pylist() for name in
               ("variant", "model", "model_version", "inputs", "outputs")]  # fmt: skip
    return list(zip(*columns, strict=True))


def _variant_drift(
    registry: MetadataStore,
    key: tuple[str, str, str],
    records: Sequence[tuple[str, str]],
    hidden: set[str],
) -> VariantDrift:
    from modelport.drift import Profile, detect

    variant, model, version = key
    stored = _stored_profile(registry, model, version)
    if stored is None:
        return VariantDrift(variant, model, version, len(records), None, None, None)
    profile = Profile.from_dict(stored.profile)
    columns = logged_columns(records, hidden, profile)
    counts = profile.count(columns)
    return VariantDrift(
        variant, model, version, len(records), detect(profile, counts), profile, counts
    )
