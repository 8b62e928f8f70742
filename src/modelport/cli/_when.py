"""Times given on the command line: a duration (``30d``, ``12h``) or an ISO-8601 time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

from modelport.core.errors import ConfigError

__all__ = ["expiry", "instant", "parse_duration", "since", "time_range"]

_DURATION: Final = re.compile(r"(\d+)\s*([smhdw])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_FORMS: Final = (
    "a duration such as 30d, 12h, 15m or 2w, or an ISO-8601 time such as 2026-01-31T12:00:00Z"
)


def parse_duration(text: str) -> timedelta | None:
    """Return ``text`` as a positive duration (``90s``, ``15m``, ``12h``, ``30d``, ``2w``).

    Returns:
        The duration, or ``None`` when ``text`` is not written as one.

    Raises:
        ConfigError: It is written as a duration but is zero.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        return None
    amount = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if amount <= timedelta(0):
        raise ConfigError(f"duration {text!r} must be longer than zero")
    return amount


def instant(text: str, option: str) -> datetime:
    """Return an ISO-8601 time given to ``option`` as UTC (a time without a zone is UTC).

    Raises:
        ConfigError: ``text`` is not an ISO-8601 time.
    """
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected {_FORMS}") from None
    # A time without a zone is read as UTC, the zone every stored time is in.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def expiry(text: str, now: datetime) -> datetime:
    """Return when a key given ``--expires TEXT`` at ``now`` expires.

    Raises:
        ConfigError: ``text`` is neither form, or names a time not after ``now``.
    """
    duration = parse_duration(text)
    at = now + duration if duration is not None else instant(text, "--expires")
    if at <= now:
        raise ConfigError(f"--expires {text!r} is in the past; give a later time or a duration")
    return at


def since(text: str, now: datetime, option: str = "--since") -> datetime:
    """Return the start of ``--since TEXT``: a duration back from ``now``, or a time.

    Args:
        text: What was given.
        now: The time a duration counts back from.
        option: The option's name, for the message.

    Raises:
        ConfigError: ``text`` is neither form.
    """
    duration = parse_duration(text)
    return now - duration if duration is not None else instant(text, option)


def time_range(
    start: str | None, end: str | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """Return ``--since START`` and ``--until END`` (each a duration back from ``now``, or a time).

    Raises:
        ConfigError: Either is neither form, ``--since`` is in the future, or ``--until`` is
            not after ``--since``.
    """
    begins = since(start, now) if start is not None else None
    ends = since(end, now, "--until") if end is not None else None
    if begins is not None and begins > now:
        raise ConfigError(
            f"--since {start!r} is in the future ({begins:%Y-%m-%dT%H:%M:%SZ}); give an earlier "
            "time or a duration"
        )
    if begins is not None and ends is not None and ends <= begins:
        raise ConfigError(
            f"--until {end!r} ({ends:%Y-%m-%dT%H:%M:%SZ}) must be after --since {start!r} "
            f"({begins:%Y-%m-%dT%H:%M:%SZ})"
        )
    return begins, ends
