"""Training-serving skew: the features a gateway served, recomputed offline at the logged times.

An enriched prediction's log record carries, per row, the instant of the online read, the
entity keys and the values the online store gave (:data:`~modelport.service.enrichment.LOG_INPUT`,
see :mod:`modelport.service.enrichment`). :func:`feature_skew` reads those records back,
recomputes each value with :meth:`FeatureStore.get_historical_features` (one point-in-time join
per set of features and keys, entity rows at the logged instants) and counts, per feature, the
rows where the two disagree: exact equality for integers, strings, booleans, bytes and
timestamps, ``math.isclose`` with a relative tolerance for floats; a value present on one side
and missing on the other is a mismatch, missing on both is not. The online value is the one the
store gave, before the deployment's ``onMissing`` policy, so a default served in place of a
missing value does not hide a missing offline value.

Shadow copies are skipped (they were served the same features as the answer they copy); records
without the feature record (a deployment without ``spec.features``, a request refused before
its features were read) are counted as skipped. Everything here is pure but the one retrieval
per group; ``modelport features skew DEPLOYMENT`` prints the report.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson
import pyarrow as pa

from modelport.core.errors import InvalidInput
from modelport.features import FeatureStore
from modelport.service.enrichment import LOG_INPUT

__all__ = ["FeatureSkew", "Mismatch", "SkewReport", "feature_skew"]

_TIME: Final = "event_timestamp"
_EXAMPLES: Final = 5


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One served value the offline store disagrees with.

    Attributes:
        request_id: The logged request.
        row: The row within it.
        at: The instant the value was served.
        keys: The row's entity keys.
        online: The value served (``None``: missing).
        offline: The value recomputed offline (``None``: missing).
    """

    request_id: str
    row: int
    at: datetime
    keys: Mapping[str, Any]
    online: Any
    offline: Any


@dataclass(slots=True)
class FeatureSkew:
    """One feature's comparison.

    Attributes:
        feature: ``view:feature``.
        compared: Rows compared.
        mismatches: Rows whose values disagree.
        missing_online: Rows served without a value.
        missing_offline: Rows without a value offline.
        examples: The first mismatches (at most five).
    """

    feature: str
    compared: int = 0
    mismatches: int = 0
    missing_online: int = 0
    missing_offline: int = 0
    examples: list[Mismatch] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Share of compared rows that disagree (0 when none were compared)."""
        return self.mismatches / self.compared if self.compared else 0.0


@dataclass(frozen=True, slots=True)
class SkewReport:
    """A deployment's training-serving skew over some logged predictions.

    Attributes:
        deployment: The deployment.
        predictions: Logged predictions with a feature record.
        rows: Rows compared (a prediction holds one or more).
        skipped: Logged predictions without a feature record (or shadow copies).
        features: Per feature, in the order first met.
    """

    deployment: str
    predictions: int
    rows: int
    skipped: int
    features: Sequence[FeatureSkew]

    def document(self) -> dict[str, Any]:
        """The report as JSON-ready data (camelCase keys), for the CLI's ``--output json``."""
        return {
            "deployment": self.deployment,
            "predictions": self.predictions,
            "rows": self.rows,
            "skipped": self.skipped,
            "features": [
                {
                    "feature": f.feature,
                    "compared": f.compared,
                    "mismatches": f.mismatches,
                    "mismatchRate": f.rate,
                    "missingOnline": f.missing_online,
                    "missingOffline": f.missing_offline,
                    "examples": [
                        {
                            "requestId": m.request_id,
                            "row": m.row,
                            "at": m.at.isoformat(),
                            "keys": dict(m.keys),
                            "online": _plain(m.online),
                            "offline": _plain(m.offline),
                        }
                        for m in f.examples
                    ],
                }
                for f in self.features
            ],
        }


@dataclass(slots=True)
class _Served:
    request_id: str
    row: int
    at: datetime
    keys: dict[str, Any]
    values: dict[str, Any]


def feature_skew(
    rows: pa.Table | Iterable[Mapping[str, Any]],
    store: FeatureStore,
    deployment: str,
    *,
    rel_tol: float = 1e-6,
) -> SkewReport:
    """Recompute the features a deployment served and count the disagreements per feature.

    Args:
        rows: Prediction log records (``read_predictions`` or the log query's table, or its
            ``to_pylist()``); other deployments' records are ignored.
        store: The feature store, whose offline sources the values are recomputed from.
        deployment: The deployment's name.
        rel_tol: Relative tolerance for float features.

    Returns:
        The report.

    Raises:
        InvalidInput: A feature record is malformed, or its keys cannot form an entity frame.
        NotFound: A logged feature's view or feature no longer exists.
    """
    records = rows.to_pylist() if isinstance(rows, pa.Table) else rows
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[_Served]] = {}
    predictions = skipped = 0
    for record in records:
        if record.get("deployment") != deployment:
            continue
        served = None if record.get("shadow") else _served(record)
        if not served:
            skipped += 1
            continue
        predictions += 1
        for item in served:
            key = (tuple(item.values), tuple(sorted(item.keys)))
            groups.setdefault(key, []).append(item)
    skews: dict[str, FeatureSkew] = {}
    total = 0
    for (refs, keys), items in groups.items():
        offline = _offline(store, refs, keys, items)
        total += len(items)
        for ref in refs:
            skew = skews.setdefault(ref, FeatureSkew(ref))
            column = offline[_column(ref)]
            for item, recomputed in zip(items, column, strict=True):
                _compare(skew, item, item.values[ref], recomputed, rel_tol)
    return SkewReport(deployment, predictions, total, skipped, list(skews.values()))


def _served(record: Mapping[str, Any]) -> list[_Served]:
    """The rows of one log record's feature record; empty when it has none."""
    try:
        inputs = orjson.loads(record.get("inputs") or "{}")
    except orjson.JSONDecodeError:
        return []
    texts = inputs.get(LOG_INPUT) if isinstance(inputs, dict) else None
    if not isinstance(texts, list):
        return []
    request_id = str(record.get("request_id"))
    served = []
    for row, text in enumerate(texts):
        try:
            item = orjson.loads(text)
            at = datetime.fromisoformat(item["at"])
            keys, values = dict(item["keys"]), dict(item["values"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"request {request_id!r} row {row}: the feature record is malformed ({exc})"
            ) from None
        served.append(_Served(request_id, row, at, keys, values))
    return served


def _offline(
    store: FeatureStore, refs: tuple[str, ...], keys: tuple[str, ...], items: list[_Served]
) -> dict[str, list[Any]]:
    """The point-in-time values of ``refs`` for each served row, by ``view__feature``."""
    columns: dict[str, Any] = {}
    try:
        for key in keys:
            columns[key] = pa.array([item.keys[key] for item in items])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidInput(f"the logged keys cannot form an entity frame: {exc}") from None
    columns[_TIME] = pa.array([item.at for item in items], pa.timestamp("us", "UTC"))
    table = store.get_historical_features(pa.table(columns), list(refs), True).to_arrow()
    return {_column(ref): table.column(_column(ref)).to_pylist() for ref in refs}


def _column(ref: str) -> str:
    view, feature = ref.split(":", 1)
    return f"{view}__{feature}"


def _compare(skew: FeatureSkew, item: _Served, online: Any, offline: Any, rel_tol: float) -> None:
    skew.compared += 1
    online_missing = online is None or (isinstance(online, float) and math.isnan(online))
    offline_missing = offline is None or (isinstance(offline, float) and math.isnan(offline))
    skew.missing_online += online_missing
    skew.missing_offline += offline_missing
    if online_missing and offline_missing:
        return
    if not online_missing and not offline_missing and _equal(online, offline, rel_tol):
        return
    skew.mismatches += 1
    if len(skew.examples) < _EXAMPLES:
        skew.examples.append(
            Mismatch(item.request_id, item.row, item.at, item.keys, online, offline)
        )


def _equal(online: Any, offline: Any, rel_tol: float) -> bool:
    """Whether a logged value equals a recomputed one (as the log writes it: see enrichment)."""
    if isinstance(offline, bytes):
        offline = base64.b64encode(offline).decode()
    elif isinstance(offline, datetime):
        return isinstance(online, str) and datetime.fromisoformat(online) == offline
    if isinstance(offline, float) and isinstance(online, int | float):
        return not isinstance(online, bool) and math.isclose(online, offline, rel_tol=rel_tol)
    return bool(type(online) is type(offline) and online == offline)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.isoformat()
    return value
