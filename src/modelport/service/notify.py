"""Delivering the alert outbox: webhook POSTs, retried with backoff until accepted or given up.

The alert job writes notifications to the ``alert_notifications`` table in the same transaction
as the alert states that called for them; :meth:`Notifier.deliver_due` (the control plane's
``deliver-notifications`` job) sends the entries that are due, oldest first:

- ``POST`` of the JSON payload, :data:`TIMEOUT_S` seconds at most; any 2xx answer delivers it.
- A 4xx answer other than 408 and 429 will not get better by asking again: the entry is given
  up and logged (the receiver's URL or the payload is wrong).
- Anything else (5xx, 408, 429, a redirect, no answer) is retried after an exponential backoff
  with jitter (:func:`backoff`: 5 s doubling up to 5 min, each delay between half and all of
  that), until :data:`GIVE_UP_AFTER_S` (24 h) after the notification was made.

Receivers are served side by side (a thread each, at most :data:`MAX_PARALLEL`), each its own
entries in order; a receiver that fails is not tried again in the same run, and never holds up
another. Because the outbox is in the database, a control plane that stops loses nothing: the
next process sends what was not delivered. Logs name a receiver by its scheme and host only (a
Slack webhook's path is its secret).
"""

from __future__ import annotations

import logging
import random as random_module
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal
from urllib.parse import urlsplit

import httpx

from modelport.core.clock import Clock
from modelport.monitoring.alert_records import Notification
from modelport.monitoring.alert_state import AlertStateStore

__all__ = [
    "BASE_DELAY_S",
    "GIVE_UP_AFTER_S",
    "MAX_DELAY_S",
    "TIMEOUT_S",
    "Notifier",
    "backoff",
]

log = logging.getLogger("modelport.alerts")

TIMEOUT_S: Final = 5.0
"""Seconds a receiver has to answer one POST."""
BASE_DELAY_S: Final = 5.0
"""The delay before the first retry (before jitter)."""
MAX_DELAY_S: Final = 300.0
"""The longest delay between two attempts (before jitter)."""
GIVE_UP_AFTER_S: Final = 86400.0
"""A notification not delivered this long after it was made is given up."""
MAX_PARALLEL: Final = 8
"""Receivers served at once."""
_RETRYABLE_4XX: Final = frozenset({408, 429})

Outcome = Literal["delivered", "retry", "given_up"]


def backoff(attempts: int, draw: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt.

    ``BASE_DELAY_S`` doubling with each attempt, capped at ``MAX_DELAY_S``; of that, half is
    kept and the other half scaled by ``draw`` ("equal jitter"), so receivers that failed
    together do not retry together, and each delay is at least the one before.

    Args:
        attempts: Attempts made so far (1 after the first).
        draw: A uniform draw in ``[0, 1)``.
    """
    delay = min(BASE_DELAY_S * 2.0 ** max(attempts - 1, 0), MAX_DELAY_S)
    return delay / 2 + delay / 2 * draw


@dataclass(frozen=True, slots=True)
class _Attempt:
    outcome: Outcome
    error: str | None = None


class Notifier:
    """Sends the outbox's due entries to their receivers.

    Args:
        state: The outbox.
        clock: When attempts are made (and when the next is due).
        random: Uniform draws in ``[0, 1)`` for the jitter.
        timeout_s: Seconds a receiver has to answer.
        transport: An httpx transport (tests); ``None``: the network.
    """

    def __init__(
        self,
        state: AlertStateStore,
        clock: Clock,
        random: Callable[[], float] | None = None,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._state = state
        self._clock = clock
        self._random = random or random_module.random
        self._timeout = timeout_s
        self._transport = transport

    def deliver_due(self, limit: int = 500) -> str | None:
        """Send every due entry (at most ``limit``); a line of what happened, ``None``: nothing."""
        due = self._state.due(self._clock.now(), limit)
        if not due:
            return None
        by_receiver: dict[str, list[Notification]] = {}
        for entry in due:
            by_receiver.setdefault(entry.receiver, []).append(entry)
        groups = list(by_receiver.values())
        if len(groups) == 1:
            outcomes = [self._deliver_group(groups[0])]
        else:
            with ThreadPoolExecutor(min(len(groups), MAX_PARALLEL), "notify") as pool:
                outcomes = list(pool.map(self._deliver_group, groups))
        counts = {"delivered": 0, "retry": 0, "given_up": 0}
        for group in outcomes:
            for outcome in group:
                counts[outcome] += 1
        return (
            f"{counts['delivered']} notification(s) delivered, {counts['retry']} to retry, "
            f"{counts['given_up']} given up"
        )

    def _deliver_group(self, entries: Sequence[Notification]) -> list[Outcome]:
        """One receiver's entries in order, until one fails and will be retried."""
        outcomes: list[Outcome] = []
        with httpx.Client(timeout=self._timeout, transport=self._transport) as client:
            for entry in entries:
                outcome = self._deliver(client, entry)
                outcomes.append(outcome)
                if outcome == "retry":
                    break  # the receiver is failing: the rest wait for their next turn
        return outcomes

    def _deliver(self, client: httpx.Client, entry: Notification) -> Outcome:
        attempt = _post(client, entry)
        now = self._clock.now()
        attempts = entry.attempts + 1
        where = _where(entry.receiver)
        if attempt.outcome == "delivered":
            self._state.attempted(entry.id, attempts, delivered_at=now)
            return "delivered"
        too_old = (now - entry.created_at).total_seconds() >= GIVE_UP_AFTER_S
        if attempt.outcome == "given_up" or too_old:
            why = attempt.error if attempt.outcome == "given_up" else f"{attempt.error}; for 24 h"
            self._state.attempted(entry.id, attempts, error=attempt.error, given_up=True)
            log.error(
                "alert notification %d of rule %s to %s given up after %d attempt(s): %s",
                entry.id, entry.rule, where, attempts, why,
                extra={"fields": {"event": "notification_given_up", "id": entry.id,
                                  "rule": entry.rule, "receiver": where, "error": why}},
            )  # fmt: skip
            return "given_up"
        delay = backoff(attempts, self._random())
        next_at = now + timedelta(seconds=delay)
        self._state.attempted(entry.id, attempts, next_attempt_at=next_at, error=attempt.error)
        log.warning(
            "alert notification %d of rule %s to %s failed (%s); attempt %d in %.0f s",
            entry.id, entry.rule, where, attempt.error, attempts + 1, delay,
            extra={"fields": {"event": "notification_failed", "id": entry.id,
                              "rule": entry.rule, "receiver": where, "error": attempt.error}},
        )  # fmt: skip
        return "retry"


def _post(client: httpx.Client, entry: Notification) -> _Attempt:
    try:
        reply = client.post(entry.receiver, json=entry.payload)
    except httpx.HTTPError as exc:
        return _Attempt("retry", f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= reply.status_code < 300:
        return _Attempt("delivered")
    error = f"HTTP {reply.status_code}: {reply.text[:200]}"
    if 400 <= reply.status_code < 500 and reply.status_code not in _RETRYABLE_4XX:
        return _Attempt("given_up", error)
    return _Attempt("retry", error)


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
