"""Feedback on logged predictions: parsed, checked, matched to the prediction log, stored.

A client that learns what really happened to a prediction (the transaction was fraud, the house
sold for 412,000) sends it with the prediction's request id, possibly hours later::

    {"deployment": "fraud", "request_id": "7f9c...", "label": 1}
    {"deployment": "fraud", "feedback": [{"request_id": "7f9c...", "label": 1}, ...]}

and in bulk as JSON lines or CSV: :mod:`modelport.service.feedback_forms` reads those forms
into :class:`~modelport.service.feedback_forms.Entry` objects.

:class:`FeedbackService` then takes a submission all or nothing: every item is checked first
(the kind the deployment's running experiment needs, one feedback per request), then every
request id is looked up in the prediction log; ids not found are looked up once more after
``wait_s`` (a prediction answered a moment ago may still wait in some gateway worker's queue),
and any id still unknown refuses the whole submission (:class:`NotFound`, naming how many and
the first ten) before anything is written. Accepted, replaced and unknown ids are counted
(:meth:`FeedbackService.stats`, for the gateway's metrics).

:meth:`FeedbackService.import_entries` is the bulk form (``modelport feedback import``): a file
of any size in chunks of 50,000 rows, all or nothing too, or writing the known ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final

from modelport.core.clock import Clock
from modelport.core.errors import InvalidInput, NotFound
from modelport.experiments.feedback import Feedback, FeedbackKind, FeedbackStore
from modelport.service.feedback_forms import (
    Entry,
    deployment_name,
    feedback_item,
    json_type,
)

__all__ = [
    "CHUNK_ROWS",
    "ExpectedKind",
    "FeedbackReceipt",
    "FeedbackService",
    "FeedbackStats",
    "KnownIds",
    "Rejects",
    "lookup_wait_s",
]

log = logging.getLogger("modelport.feedback")

KnownIds = Callable[[str, Sequence[str]], set[str]]
"""Which of the given request ids the prediction log holds for a deployment."""
ExpectedKind = Callable[[str], FeedbackKind | None]
"""What a deployment's running experiment needs: ``label``, ``value``, or ``None`` (either)."""
Rejects = Callable[[Sequence[tuple[str, Feedback]]], None]
"""Takes the feedback an import skipped, as ``(deployment, feedback)`` pairs."""

CHUNK_ROWS: Final = 50_000
"""Rows an import checks, looks up and writes at a time."""
_SHOWN: Final = 10
"""Unknown request ids a refusal names."""
_METRIC: Final[dict[str, str]] = {"label": "classification", "value": "regression"}


@dataclass(frozen=True, slots=True)
class FeedbackReceipt:
    """What a submission did.

    Attributes:
        accepted: Feedback written (new and replacing).
        replaced: Of those, how many replaced an earlier feedback for the same request.
        unknown: Request ids not in the prediction log (skipped; only when told to skip them).
        unknown_ids: The first ten of them.
    """

    accepted: int
    replaced: int
    unknown: int = 0
    unknown_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedbackStats:
    """Feedback a service took since it started.

    Attributes:
        accepted: Feedback written.
        replaced: Of those, how many replaced an earlier one.
        unknown: Request ids sent that the prediction log did not hold (refused or skipped).
    """

    accepted: int
    replaced: int
    unknown: int


class FeedbackService:
    """Checks feedback, matches it to the prediction log and stores it, all or nothing.

    Args:
        store: The feedback table.
        known: Which request ids the prediction log holds for a deployment.
        expected_kind: What a deployment's running experiment needs (``None``: either kind).
        clock: Time source of the wait for ids not found at first.
        wait_s: How long to wait before looking up unknown ids again: the prediction log's
            flush interval and a margin.
        sleep: How to wait (tests pass one that moves a fake clock).
    """

    def __init__(
        self,
        store: FeedbackStore,
        known: KnownIds,
        expected_kind: ExpectedKind,
        clock: Clock,
        wait_s: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._known = known
        self._expected_kind = expected_kind
        self._clock = clock
        self._wait_s = wait_s
        self._sleep = sleep
        self._lock = threading.Lock()
        self._accepted = self._replaced = self._unknown = 0

    def submit(
        self,
        deployment: str,
        items: Sequence[Mapping[str, Any]],
        actor: str,
        request_id: str | None = None,
    ) -> FeedbackReceipt:
        """Check and store feedback for requests of one deployment, all or nothing.

        Args:
            deployment: The deployment the requests were made to.
            items: ``{"request_id": ..., "label": ...}`` or ``{..., "value": ...}`` each.
            actor: Who sends it (recorded with each row).
            request_id: The id of the call that sends it, for the log.

        Raises:
            InvalidInput: An item is malformed, of the wrong kind for the deployment's
                experiment, or names a request id a second time.
            NotFound: Some request ids are not in the prediction log; nothing was written.
        """
        name = deployment_name(deployment, "deployment")
        entries = []
        for number, item in enumerate(items, start=1):
            where = f"item {number}"
            if not isinstance(item, Mapping):
                raise InvalidInput(f"{where}: expected an object, got {json_type(item)}")
            entries.append(Entry(name, feedback_item(item, where), where))
        return self.submit_entries(entries, actor, request_id)

    def submit_entries(
        self,
        entries: Sequence[Entry],
        actor: str,
        request_id: str | None = None,
        *,
        skip_unknown: bool = False,
    ) -> FeedbackReceipt:
        """Store parsed feedback (of one or several deployments), all or nothing.

        Args:
            entries: What the parsers returned.
            actor: Who sends it.
            request_id: The id of the call that sends it, for the log.
            skip_unknown: Write the feedback whose request ids are known and count the others,
                instead of refusing them all.

        Raises:
            InvalidInput: As :meth:`submit`.
            NotFound: Some request ids are not in the prediction log (unless ``skip_unknown``);
                nothing was written.
        """
        groups = self.check(entries)
        unknown = self.unknown(groups)
        missing = sum(len(ids) for ids in unknown.values())
        if missing and not skip_unknown:
            self._count(unknown=missing)
            log.info(
                "feedback refused: %d unknown request id(s)",
                missing,
                extra={"fields": {"event": "feedback_refused", "request_id": request_id}},
            )
            raise NotFound(_unknown_message(missing, unknown) + "; nothing was written")
        receipt = self.write(_without(groups, unknown), actor)
        self._count(unknown=missing)
        return FeedbackReceipt(
            receipt.accepted, receipt.replaced, missing, _first_ids(unknown, _SHOWN)
        )

    def check(self, entries: Sequence[Entry]) -> dict[str, Sequence[Feedback]]:
        """Group checked entries by deployment, refusing the wrong kind and repeated ids.

        Raises:
            InvalidInput: An entry's kind is not what its deployment's experiment needs, or a
                request id of a deployment appears twice.
        """
        groups: dict[str, list[Feedback]] = {}
        expected: dict[str, FeedbackKind | None] = {}
        seen: dict[tuple[str, str], str] = {}
        for entry in entries:
            name = entry.deployment
            if name not in expected:
                expected[name] = self._expected_kind(name)
            need = expected[name]
            item = entry.feedback
            if need is not None and item.kind != need:
                raise InvalidInput(
                    f"{entry.where}: deployment {name!r} runs an experiment on a "
                    f"{_METRIC[need]} metric: send {need}, not {item.kind}"
                )
            key = (name, item.request_id)
            if key in seen:
                raise InvalidInput(
                    f"{entry.where}: request id {item.request_id!r} of deployment {name!r} was "
                    f"already given ({seen[key]}); send one feedback per request"
                )
            seen[key] = entry.where
            groups.setdefault(name, []).append(item)
        return dict(groups)

    def unknown(
        self, groups: Mapping[str, Sequence[Feedback]], settled_at: float | None = None
    ) -> dict[str, list[str]]:
        """The request ids of each deployment that the prediction log does not hold.

        Ids not found are looked up once more when the log has surely written what was queued
        when the lookup began (``wait_s`` later, or at ``settled_at``).

        Args:
            groups: Checked feedback by deployment.
            settled_at: The monotonic time after which a second lookup needs no wait (an
                import passes the same one for every chunk, so it waits at most once).

        Returns:
            Only the deployments with unknown ids.
        """
        if settled_at is None:
            settled_at = self._clock.monotonic() + self._wait_s
        missing: dict[str, list[str]] = {}
        for name, items in groups.items():
            ids = [item.request_id for item in items]
            found = self._known(name, ids)
            if len(found) < len(ids):
                missing[name] = [i for i in ids if i not in found]
        if not missing:
            return missing
        wait = settled_at - self._clock.monotonic()
        if wait > 0:
            self._sleep(wait)
        still: dict[str, list[str]] = {}
        for name, ids in missing.items():
            found = self._known(name, ids)
            left = [i for i in ids if i not in found]
            if left:
                still[name] = left
        return still

    def write(self, groups: Mapping[str, Sequence[Feedback]], actor: str) -> FeedbackReceipt:
        """Store checked feedback whose request ids are known (one transaction a deployment)."""
        accepted = replaced = 0
        for name, items in groups.items():
            written = self._store.put(name, items, actor)
            accepted += written.inserted + written.replaced
            replaced += written.replaced
        self._count(accepted=accepted, replaced=replaced)
        return FeedbackReceipt(accepted, replaced)

    def import_entries(
        self,
        read: Callable[[], Iterable[Entry]],
        actor: str,
        *,
        skip_unknown: bool = False,
        rejects: Rejects | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> FeedbackReceipt:
        """Import feedback of any size in chunks: all or nothing, or skipping unknown ids.

        The entries are read twice, a chunk at a time, so memory stays bounded by a chunk (and
        8 bytes a row, to find a request id given twice). All or nothing: the first pass checks
        every row and looks every request id up, any unknown id refuses the import, and the
        second pass writes. With ``skip_unknown`` the first pass only checks, and the second
        looks up and writes the known ones. Either way the lookups wait at most once for the
        prediction log (``wait_s`` from the start).

        Args:
            read: Returns a fresh iterator over the entries (the file read again).
            actor: Who imports.
            skip_unknown: Write the known ones and count the unknown ones.
            rejects: Given each chunk's unknown feedback as ``(deployment, feedback)`` pairs.
            chunk_rows: Rows checked, looked up and written at a time.

        Raises:
            InvalidInput: A row is malformed, of the wrong kind, or repeats a request id.
            NotFound: Unless ``skip_unknown``: some request ids are unknown; nothing was
                written.
        """
        import numpy as np

        settled_at = self._clock.monotonic() + self._wait_s
        hashes = []
        unknown = _Unknown(rejects)
        for chunk in _chunks(read(), chunk_rows):
            groups = self.check(chunk)
            keys = (hash((e.deployment, e.feedback.request_id)) for e in chunk)
            hashes.append(np.fromiter(keys, np.int64, len(chunk)))
            if not skip_unknown:
                unknown.note(self.unknown(groups, settled_at), groups)
        if hashes:
            _refuse_repeats(np.concatenate(hashes), read)
        if unknown.count:
            self._count(unknown=unknown.count)
            raise NotFound(_unknown_message(unknown.count, unknown.shown) + "; nothing was written")
        accepted = replaced = 0
        for chunk in _chunks(read(), chunk_rows):
            groups = self.check(chunk)
            if skip_unknown:
                missing = self.unknown(groups, settled_at)
                before = unknown.count
                unknown.note(missing, groups)
                self._count(unknown=unknown.count - before)
                groups = _without(groups, missing)
            written = self.write(groups, actor)
            accepted += written.accepted
            replaced += written.replaced
        return FeedbackReceipt(accepted, replaced, unknown.count, unknown.first())

    def stats(self) -> FeedbackStats:
        """Feedback taken since the service started."""
        with self._lock:
            return FeedbackStats(self._accepted, self._replaced, self._unknown)

    def _count(self, accepted: int = 0, replaced: int = 0, unknown: int = 0) -> None:
        with self._lock:
            self._accepted += accepted
            self._replaced += replaced
            self._unknown += unknown


def lookup_wait_s(flush_interval_s: float) -> float:
    """How long feedback waits before looking an unknown request id up again.

    A prediction answered a moment ago may still be queued in some gateway worker's prediction
    log for up to its flush interval; half a second more covers the write itself.
    """
    return flush_interval_s + 0.5


def _without(
    groups: Mapping[str, Sequence[Feedback]], unknown: Mapping[str, Sequence[str]]
) -> dict[str, Sequence[Feedback]]:
    """``groups`` less the feedback whose request ids are ``unknown``."""
    kept: dict[str, Sequence[Feedback]] = {}
    for name, items in groups.items():
        if name in unknown:
            dropped = set(unknown[name])
            items = [item for item in items if item.request_id not in dropped]
        kept[name] = items
    return kept


def _unknown_message(count: int, unknown: Mapping[str, Sequence[str]]) -> str:
    """``3 request ids are not in the prediction log: fraud: 'a', 'b'; churn: 'c'``."""
    shown = []
    left = _SHOWN
    for name, ids in unknown.items():
        if left <= 0:
            break
        shown.append(f"{name}: " + ", ".join(repr(i) for i in ids[:left]))
        left -= len(ids[:left])
    more = " ..." if count > _SHOWN else ""
    noun = "request id is" if count == 1 else "request ids are"
    return f"{count} {noun} not in the prediction log ({'; '.join(shown)}{more})"


def _first_ids(unknown: Mapping[str, Sequence[str]], n: int) -> tuple[str, ...]:
    return tuple(islice((i for ids in unknown.values() for i in ids), n))


# -- checking one item --------------------------------------------------------------------------


def _chunks(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    iterator = iter(entries)
    while chunk := list(islice(iterator, size)):
        yield chunk


class _Unknown:
    """The unknown request ids an import met: counted, the first ten kept, handed on."""

    def __init__(self, rejects: Rejects | None) -> None:
        self.count = 0
        self.shown: dict[str, list[str]] = {}
        self._rejects = rejects

    def note(
        self, unknown: Mapping[str, Sequence[str]], groups: Mapping[str, Sequence[Feedback]]
    ) -> None:
        room = _SHOWN - sum(len(ids) for ids in self.shown.values())
        rejected: list[tuple[str, Feedback]] = []
        for name, ids in unknown.items():
            self.count += len(ids)
            if room > 0:
                self.shown.setdefault(name, []).extend(ids[:room])
                room -= len(ids[:room])
            if self._rejects is not None:
                wanted = set(ids)
                rejected += [(name, f) for f in groups[name] if f.request_id in wanted]
        if rejected and self._rejects is not None:
            self._rejects(rejected)

    def first(self) -> tuple[str, ...]:
        return _first_ids(self.shown, _SHOWN)


def _refuse_repeats(hashes: Any, read: Callable[[], Iterable[Entry]]) -> None:
    """Refuse a request id given twice anywhere in an import, naming both places.

    ``hashes`` holds each row's hash of (deployment, request id); equal hashes are checked on
    the rows themselves, so a collision refuses nothing.
    """
    import numpy as np

    ordered = np.sort(hashes)
    repeated = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if not repeated:
        return
    first: dict[tuple[str, str], str] = {}
    for entry in read():
        key = (entry.deployment, entry.feedback.request_id)
        if hash(key) not in repeated:
            continue
        if key in first:
            raise InvalidInput(
                f"{entry.where}: request id {key[1]!r} of deployment {key[0]!r} was already "
                f"given ({first[key]}); send one feedback per request"
            )
        first[key] = entry.where
