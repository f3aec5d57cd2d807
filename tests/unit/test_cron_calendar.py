"""Cron ticks in a time zone (infrastructure/cron.py): weekdays, both daylight-saving changes
in Europe/Berlin, expressions that can never be scheduled."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from infrastructure.cron import CroniterCalendar

BERLIN = "Europe/Berlin"
calendar = CroniterCalendar()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def ticks(cron: str, after: datetime, until: datetime, tz: str = BERLIN) -> list[datetime]:
    """Oldest first."""
    return sorted(calendar.ticks_back(cron, tz, after=after, until=until, limit=1000))


def test_weekday_mornings_are_local_time_in_winter_and_summer() -> None:
    # Mon 2027-01-04 .. Sun 2027-01-10: five ticks at 09:00 CET = 08:00 UTC
    winter = ticks("0 9 * * MON-FRI", utc(2027, 1, 4), utc(2027, 1, 11))
    assert winter == [utc(2027, 1, d, 8) for d in range(4, 9)]
    # In summer 09:00 CEST = 07:00 UTC
    summer = ticks("0 9 * * MON-FRI", utc(2027, 7, 5), utc(2027, 7, 10))
    assert summer == [utc(2027, 7, d, 7) for d in range(5, 10)]


def test_spring_forward_a_skipped_wall_time_fires_once_when_the_clocks_jump() -> None:
    # 2027-03-28: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist that day.
    assert ticks("30 2 * * *", utc(2027, 3, 26, 12), utc(2027, 3, 29, 12)) == [
        utc(2027, 3, 27, 1, 30),  # 02:30 CET
        utc(2027, 3, 28, 1, 0),  # the jump: 03:00 CEST
        utc(2027, 3, 29, 0, 30),  # 02:30 CEST
    ]
    # Every quarter hour: the four wall times in the gap become one tick at the jump.
    assert ticks("*/15 * * * *", utc(2027, 3, 28, 0, 30), utc(2027, 3, 28, 1, 30)) == [
        utc(2027, 3, 28, 0, 45),  # 01:45 CET
        utc(2027, 3, 28, 1, 0),  # 02:00-02:45 do not exist: 03:00 CEST
        utc(2027, 3, 28, 1, 15),
        utc(2027, 3, 28, 1, 30),
    ]


def test_fall_back_a_repeated_wall_time_fires_at_its_first_occurrence_only() -> None:
    # 2027-10-31: 03:00 CEST goes back to 02:00 CET (01:00 UTC); 02:30 happens twice.
    assert ticks("30 2 * * *", utc(2027, 10, 29, 12), utc(2027, 11, 1, 12)) == [
        utc(2027, 10, 30, 0, 30),  # 02:30 CEST
        utc(2027, 10, 31, 0, 30),  # the first 02:30 (CEST); not again at 01:30 UTC
        utc(2027, 11, 1, 1, 30),  # 02:30 CET
    ]
    hourly = ticks("0 * * * *", utc(2027, 10, 30, 22, 30), utc(2027, 10, 31, 3, 30))
    assert hourly == [
        utc(2027, 10, 30, 23),  # 01:00 CEST
        utc(2027, 10, 31, 0),  # 02:00 CEST
        utc(2027, 10, 31, 2),  # 03:00 CET (02:00 CET, the repeat, is skipped)
        utc(2027, 10, 31, 3),
    ]


def test_ticks_back_is_newest_first_bounded_and_excludes_after() -> None:
    got = calendar.ticks_back(
        "0 * * * *", "UTC", after=utc(2027, 1, 1), until=utc(2027, 1, 2), limit=3
    )
    assert got == [utc(2027, 1, 2, 0), utc(2027, 1, 1, 23), utc(2027, 1, 1, 22)]
    assert (
        calendar.ticks_back(
            "0 * * * *", "UTC", after=utc(2027, 1, 1), until=utc(2027, 1, 1), limit=3
        )
        == []
    )


def test_next_after_crosses_weekends_and_the_spring_gap() -> None:
    # Friday 09:00 CET → Monday 09:00 CET
    assert calendar.next_after("0 9 * * MON-FRI", BERLIN, utc(2027, 1, 8, 8)) == utc(2027, 1, 11, 8)
    assert calendar.next_after("30 2 * * *", BERLIN, utc(2027, 3, 27, 12)) == utc(2027, 3, 28, 1)


@pytest.mark.parametrize(
    ("cron", "tz", "why"),
    [
        ("61 * * * *", BERLIN, "not a valid"),
        ("* * * * * *", BERLIN, "not a valid"),
        ("0 0 31 2 *", BERLIN, "never matches"),
        ("0 9 * * MON-FRI", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_expressions_that_cannot_be_scheduled_are_named(cron: str, tz: str, why: str) -> None:
    problem = calendar.problem(cron, tz)
    assert problem is not None and why in problem


@pytest.mark.parametrize("cron", ["0 9 * * MON-FRI", "@daily", "*/5 * * * *", "0 0 29 2 *"])
def test_good_expressions_have_no_problem(cron: str) -> None:
    assert calendar.problem(cron, BERLIN) is None
