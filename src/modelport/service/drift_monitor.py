"""The drift job: each served version's latest windows, against its reference and the one before.

Gateways store what they count (:mod:`modelport.monitoring.drift_recorder`); a run of
:meth:`DriftMonitor.run` reads, for each deployment with recent buckets and each configured
window length ``W``, the window ``[end - W, end)`` ending at the latest bucket boundary, sums
its buckets per served version, and asks :func:`modelport.drift.detect` for a verdict against
the version's reference profile, and :func:`modelport.drift.compare_windows` against the window
``[end - 2W, end - W)`` (when that one has enough rows). The verdicts are stored
(:class:`~modelport.monitoring.drift_store.DriftStore`), handed to the metrics
(:class:`~modelport.monitoring.DriftScore`), and read by ``modelport drift report`` and the
alert rules. A run never rereads the prediction log.

A version without a reference profile, a window with fewer than ``monitoring.drift_min_rows``
rows, and counts made with a profile that has since been replaced are not scored (the counts
carry their profile's key).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from modelport.core.clock import Clock
from modelport.core.errors import NotFound
from modelport.core.settings import MonitoringSettings
from modelport.drift import DriftReport, Profile, compare_windows, detect
from modelport.monitoring import DriftScore
from modelport.monitoring.drift_store import DriftResult, DriftStore, WindowTotal
from modelport.registry import MetadataStore

__all__ = ["DriftMonitor", "drift_scores", "window_end"]


def window_end(now: datetime, bucket_s: float) -> datetime:
    """The latest bucket boundary at or before ``now``: where the latest scored window ends."""
    seconds = math.floor(now.timestamp() / bucket_s) * bucket_s
    return datetime.fromtimestamp(seconds, UTC)


class DriftMonitor:
    """Scores drift windows and keeps the verdicts.

    Args:
        store: The drift windows and verdicts.
        registry: The versions' reference profiles.
        settings: Bucket, window lengths, minimum rows and retention.
        clock: The time of a run.
    """

    def __init__(
        self,
        store: DriftStore,
        registry: MetadataStore,
        settings: MonitoringSettings,
        clock: Clock,
    ) -> None:
        self._store = store
        self._registry = registry
        self._settings = settings
        self._clock = clock

    def run(self) -> str:
        """Score every deployment's latest windows, store the verdicts, prune old rows.

        Returns:
            A one-line summary for the job's log.
        """
        settings = self._settings
        now = self._clock.now()
        end = window_end(now, settings.drift_bucket_s)
        longest = max(settings.drift_window_seconds)
        profiles = _Profiles(self._registry)
        results: list[DriftResult] = []
        names = self._store.deployments_with_windows(end - timedelta(seconds=2 * longest))
        for deployment in names:
            for seconds in settings.drift_window_seconds:
                results += self._score(deployment, end, seconds, profiles, now)
        self._store.add_results(results)
        keep_s = max(settings.drift_retention_days * 86_400, 2 * longest)
        pruned = self._store.prune(now - timedelta(seconds=keep_s))
        drifted = sum(len(r.drifted) for r in results if r.against == "reference")
        return (
            f"scored {len(results)} windows of {len(names)} deployments; {drifted} features "
            f"drifted from their reference; pruned {pruned[0]} buckets, {pruned[1]} verdicts"
        )

    def _score(
        self,
        deployment: str,
        end: datetime,
        seconds: float,
        profiles: _Profiles,
        now: datetime,
    ) -> list[DriftResult]:
        length = timedelta(seconds=seconds)
        start = end - length
        current = self._store.window_counts(deployment, start, end)
        before = {
            (t.variant, t.model, t.version, t.counts.profile_key): t
            for t in self._store.window_counts(deployment, start - length, start)
        }
        minimum = self._settings.drift_min_rows
        results = []
        for total in current:
            profile = profiles.get(total.model, total.version)
            if profile is None or profile.key != total.counts.profile_key:
                continue  # no profile, or counted with one since replaced
            if total.counts.rows < minimum:
                continue
            window = (start, end)
            report = detect(profile, total.counts)
            results.append(DriftResult.of(deployment, total, window, "reference", report, now))
            previous = before.get((total.variant, total.model, total.version, profile.key))
            if previous is not None and previous.counts.rows >= minimum:
                change = _against_previous(profile, previous, total)
                if change is not None:
                    results.append(
                        DriftResult.of(deployment, total, window, "previous", change, now)
                    )
        return results


def _against_previous(
    profile: Profile, previous: WindowTotal, current: WindowTotal
) -> DriftReport | None:
    try:
        return compare_windows(profile, previous.counts, current.counts)
    except ValueError:
        return None  # a feature without a value in the earlier window: nothing to compare


class _Profiles:
    """Reference profiles of one run, each read once."""

    def __init__(self, registry: MetadataStore) -> None:
        self._registry = registry
        self._found: dict[tuple[str, str], Profile | None] = {}

    def get(self, model: str, version: str) -> Profile | None:
        key = (model, version)
        if key not in self._found:
            self._found[key] = self._read(model, version)
        return self._found[key]

    def _read(self, model: str, version: str) -> Profile | None:
        if not version.isdecimal():
            return None
        try:
            stored = self._registry.get_profile(model, int(version))
        except NotFound:
            return None  # the model or version was deleted since
        return None if stored is None else Profile.from_dict(stored.profile)


def drift_scores(results: Sequence[DriftResult]) -> list[DriftScore]:
    """The metrics' view of verdicts against the reference: one score per feature."""
    return [
        DriftScore(
            r.deployment,
            r.variant,
            r.seconds,
            feature["name"],
            feature["method"],
            math.nan if feature["score"] is None else feature["score"],
            feature["threshold"],
            feature["drifted"],
        )  # fmt: skip
        for r in results
        if r.against == "reference"
        for feature in r.report["features"]
    ]
