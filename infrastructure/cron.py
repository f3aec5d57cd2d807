"""Cron ticks with croniter, in a time zone, across daylight-saving changes.

The expression is matched against the local wall clock (croniter iterates naive local
times); each matching wall time is then placed on the UTC time line:

- a wall time that does not exist (the hour skipped when clocks go forward: 02:30 on the
  last Sunday of March in Europe/Berlin) fires at the instant the clocks jump (03:00 local),
  once, however many ticks the expression has inside the gap;
- a wall time that occurs twice (the hour repeated when clocks go back) fires at its first
  occurrence only (the summer-time one), as cron does.

Ticks that land on the same instant are one tick.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

# croniter gives up on an expression that never matches (`0 0 31 2 *`) after searching;
# bounds how far back or forward one lookup walks, so the scheduler's tick stays cheap.
_MAX_STEPS = 10_000
_PROBE_FROM = datetime(2001, 1, 1)


def zone(timezone: str) -> ZoneInfo:
    return ZoneInfo(timezone)


def to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a naive local wall time `wall` fires at (see the module docstring)."""
    first = wall.replace(tzinfo=tz, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant  # exists (fold=0: the first of two occurrences)
    # In the gap: the jump lies between the gap time read with the later offset (fold=1:
    # before the jump) and with the earlier offset; find the first minute past it.
    probe = wall.replace(tzinfo=tz, fold=1).astimezone(UTC).replace(second=0, microsecond=0)
    while probe.astimezone(tz).replace(tzinfo=None) < wall:
        probe += timedelta(minutes=1)
    return probe


class CroniterCalendar:
    """`CronCalendar` on croniter and zoneinfo."""

    def problem(self, cron: str, timezone: str) -> str | None:
        try:
            zone(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return f"unknown time zone {timezone!r}"
        try:
            if not croniter.is_valid(cron) or len(cron.split()) > 5:
                return "not a valid 5-field cron expression"
            croniter(cron, _PROBE_FROM).get_next(datetime)
        except (CroniterBadCronError, CroniterBadDateError, ValueError, KeyError) as e:
            return f"never matches or cannot be parsed: {e}"
        return None

    def ticks_back(
        self, cron: str, timezone: str, *, after: datetime, until: datetime, limit: int
    ) -> list[datetime]:
        tz = zone(timezone)
        # Start one hour past `until` in wall time: a gap tick maps forward to the jump, so a
        # wall time later than until's may still fire at or before it.
        start = until.astimezone(tz).replace(tzinfo=None) + timedelta(hours=1, seconds=1)
        it = croniter(cron, start)
        ticks: list[datetime] = []
        for _ in range(_MAX_STEPS):
            if len(ticks) >= limit:
                break
            try:
                wall = it.get_prev(datetime)
            except CroniterBadDateError:
                break
            instant = to_utc(wall, tz)
            if instant <= after:
                # Wall times map monotonically (non-decreasing) onto instants: done.
                break
            if instant <= until and (not ticks or instant < ticks[-1]):
                ticks.append(instant)
        return ticks

    def next_after(self, cron: str, timezone: str, after: datetime) -> datetime | None:
        tz = zone(timezone)
        # An hour back in wall time, for the same reason as in ticks_back.
        start = after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=1)
        it = croniter(cron, start)
        for _ in range(_MAX_STEPS):
            try:
                instant = to_utc(it.get_next(datetime), tz)
            except CroniterBadDateError:
                return None
            if instant > after:
                return instant
        return None
