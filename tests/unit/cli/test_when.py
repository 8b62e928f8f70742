"""Times on the command line: ``--expires`` and ``--since``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelport.cli._when import expiry, parse_duration, since, time_range
from modelport.core.errors import ConfigError

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_durations(text: str, amount: timedelta) -> None:
    assert parse_duration(text) == amount
    assert expiry(text, NOW) == NOW + amount
    assert since(text, NOW) == NOW - amount


@pytest.mark.parametrize("text", ["", "d", "30", "1.5h", "-1d", "3x", "soon"])
def test_what_is_not_a_duration(text: str) -> None:
    assert parse_duration(text) is None


def test_a_zero_duration_is_refused() -> None:
    with pytest.raises(ConfigError, match="longer than zero"):
        parse_duration("0h")


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T13:00:00+01:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=UTC)),
    ],
)
def test_iso_times_are_read_as_utc(text: str, at: datetime) -> None:
    assert expiry(text, NOW) == at
    assert since(text, NOW) == at
    assert expiry(text, NOW).tzinfo is UTC


def test_an_expiry_in_the_past_is_refused() -> None:
    with pytest.raises(ConfigError, match="in the past"):
        expiry("2025-03-01T12:00:00Z", NOW)


@pytest.mark.parametrize(("option", "parse"), [("--expires", expiry), ("--since", since)])
def test_unreadable_times_say_what_was_expected(option: str, parse: object) -> None:
    assert callable(parse)
    with pytest.raises(ConfigError) as err:
        parse("next tuesday", NOW)
    assert err.value.message.startswith(f"{option} 'next tuesday': expected a duration such as")


def test_a_time_range_from_durations_and_times() -> None:
    assert time_range(None, None, NOW) == (None, None)
    assert time_range("2h", "1h", NOW) == (NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    assert time_range("2025-01-31", None, NOW)[0] == datetime(2025, 1, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("1h", "2h", "--until '2h' .* must be after --since '1h'"),
        ("2025-02-01", "2025-02-01", "must be after --since"),
        ("2099-01-01", None, "--since '2099-01-01' is in the future"),
        ("1h", "soon", "--until 'soon': expected a duration"),
    ],
)
def test_a_bad_time_range_says_what_was_expected(start: str, end: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        time_range(start, end, NOW)
