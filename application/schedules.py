"""Cron `schedule` triggers: start one instance per due tick, exactly once per tick.

Exactly once across any number of scheduler replicas comes from the keyed start: the tick
(its UTC instant, ISO 8601) is the idempotency key of scope `schedule:<definition>`, so it
derives the instance id, and two replicas that compute the same tick collide on that
instance's first event (the loser finds the winner's instance). The cursor
(`ScheduleCursors`: up to which instant the ticks are handled) only says where to look
next; one lost or behind makes the scheduler look again, never start twice.

Ticks missed while the scheduler was down (or late by more than `grace`) follow the
catch-up policy (`WAYMARK_SCHEDULE_CATCHUP`):

- `latest` (default): the latest due tick fires once; older missed ticks are skipped;
- `none`: only a tick at most `grace` late fires; missed ones are skipped;
- `all`: every missed tick fires, oldest first, at most `MAX_CATCHUP` (the newest ones).

A disabled definition fires nothing, and its cursor moves on: enabling it again does not
fire the ticks that passed while it was disabled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from application.errors import CommandConflictError, WaymarkError
from application.instances import InstanceService
from application.ports import (
    Clock,
    CronCalendar,
    DefinitionStore,
    PublishedDefinition,
    ScheduleCursors,
)
from domain import origin

log = logging.getLogger(__name__)

MAX_CATCHUP = 100
DEFAULT_TIMEZONE = "UTC"


class CatchUp(StrEnum):
    """What to do with ticks missed while the scheduler was down."""

    LATEST = "latest"
    NONE = "none"
    ALL = "all"


@dataclass(frozen=True)
class ScheduleTrigger:
    """One `{"type": "schedule", "cron": ..., "timezone": ...}` of a definition."""

    cron: str
    timezone: str

    @classmethod
    def of(cls, triggers: Iterable[Any]) -> list[ScheduleTrigger]:
        return [
            cls(str(t["cron"]), str(t.get("timezone") or DEFAULT_TIMEZONE))
            for t in triggers
            if isinstance(t, dict) and t.get("type") == "schedule" and "cron" in t
        ]


def schedule_scope(definition: str) -> str:
    """The keyed-start scope of a definition's ticks: apart from API, event, webhook keys."""
    return f"schedule:{definition}"


def tick_key(tick: datetime) -> str:
    """The idempotency key of a tick: its UTC instant, ISO 8601 (same on every replica)."""
    return tick.astimezone(UTC).isoformat()


class ScheduleService:
    """Finds the due ticks of every scheduled definition and starts them."""

    def __init__(
        self,
        instances: InstanceService,
        definitions: DefinitionStore,
        cursors: ScheduleCursors,
        calendar: CronCalendar,
        clock: Clock,
        *,
        catchup: CatchUp = CatchUp.LATEST,
        grace: timedelta = timedelta(seconds=60),
    ):
        self.instances = instances
        self.definitions = definitions
        self.cursors = cursors
        self.calendar = calendar
        self.clock = clock
        self.catchup = catchup
        self.grace = grace
        self.skipped_total = 0  # missed ticks not fired (policy), since this process started

    def fire_due(self) -> int:
        """Start the due ticks of every enabled scheduled definition; how many started here."""
        now = self.clock.now()
        cursors = self.cursors.all()
        started = 0
        for published in self.definitions.schedule_triggered():
            key = (published.tenant, published.name)
            since = cursors.get(key, published.created_at)
            try:
                if published.enabled:
                    started += self._fire(published, since, now)
            except Exception:  # noqa: BLE001 - one definition never stops the others
                # Cursor not moved: the next tick tries again (a repeat finds its instance).
                log.exception("schedule of %s (tenant %s) failed", published.name, key[0])
                continue
            self.cursors.advance(published.tenant, published.name, now)
        return started

    def seconds_until_next(self) -> float | None:
        """Seconds until the earliest next tick of any enabled definition; None if none."""
        now = self.clock.now()
        upcoming = [
            self.calendar.next_after(trigger.cron, trigger.timezone, now)
            for published in self.definitions.schedule_triggered()
            if published.enabled
            for trigger in ScheduleTrigger.of(published.document.get("triggers") or ())
        ]
        due = [t for t in upcoming if t is not None]
        return max(0.0, (min(due) - now).total_seconds()) if due else None

    def _fire(self, published: PublishedDefinition, since: datetime, now: datetime) -> int:
        ticks = self._due_ticks(published, since, now)
        started = 0
        for tick, trigger in ticks:
            if self._start(published, tick, trigger):
                started += 1
        return started

    def _due_ticks(
        self, published: PublishedDefinition, since: datetime, now: datetime
    ) -> list[tuple[datetime, ScheduleTrigger]]:
        limit = MAX_CATCHUP if self.catchup is CatchUp.ALL else 1
        found: dict[datetime, ScheduleTrigger] = {}
        for trigger in ScheduleTrigger.of(published.document.get("triggers") or ()):
            for tick in self.calendar.ticks_back(
                trigger.cron, trigger.timezone, after=since, until=now, limit=limit
            ):
                found.setdefault(tick, trigger)  # two triggers on one instant: one tick
        newest = sorted(found, reverse=True)
        due = newest[:limit]
        if self.catchup is CatchUp.NONE:
            due = [t for t in due if now - t <= self.grace]
        if len(newest) > len(due):
            # ticks_back stops at `limit` per trigger: at least this many were skipped.
            self.skipped_total += len(newest) - len(due)
            log.info(
                "schedule of %s (tenant %s): missed ticks skipped (catch-up %s)",
                published.name,
                published.tenant,
                self.catchup,
            )
        return [(t, found[t]) for t in sorted(due)]

    def _start(
        self, published: PublishedDefinition, tick: datetime, trigger: ScheduleTrigger
    ) -> bool:
        tenant, name = published.tenant, published.name
        key = tick_key(tick)

        def admit(data: dict[str, Any]) -> Any:
            # The latest version, checked enabled again at the start itself.
            return self.instances.admission.admit(tenant, name, None, data)

        try:
            _, created = self.instances.start_keyed(
                tenant,
                admit,
                {},
                scope=schedule_scope(name),
                idempotency_key=key,
                correlation_id=None,
                started_by=origin.by_schedule(key, trigger.cron, trigger.timezone),
                caller_waits=False,  # no one to refuse: a too-long for_each fails its node
                latest=True,
            )
        except CommandConflictError:
            raise  # transient: the cursor stays, the next tick tries again
        except WaymarkError as e:
            # Disabled meanwhile, or its input schema refuses {}: this tick cannot start,
            # and retrying it would fail the same way.
            log.warning("schedule of %s (tenant %s) tick %s not started: %s", name, tenant, key, e)
            return False
        if created:
            log.info("schedule of %s (tenant %s): started tick %s", name, tenant, key)
        return created
