"""Firing due timers: a `timer` node continues, a `wait` past its timeout takes `timeout`."""

from __future__ import annotations

import logging

from application.errors import InstanceNotFoundError
from application.ports import Clock, DueTimers
from application.read_models import BookmarkRow
from application.session import CommandAttempt, CommandRunner
from domain import engine
from domain.errors import BookmarkNotOpenError, InstanceNotActiveError

log = logging.getLogger(__name__)


class TimerService:
    """Fires the timers whose due time has passed."""

    def __init__(self, runner: CommandRunner, timers: DueTimers, clock: Clock):
        self.runner = runner
        self.timers = timers
        self.clock = clock

    def fire_due(self, limit: int) -> int:
        """Fire up to `limit` due timers; the number that fired here."""
        fired = 0
        for row in self.timers.due(self.clock.now(), limit):
            if self._fire(row):
                fired += 1
        return fired

    def seconds_until_next(self) -> float | None:
        """Seconds until the earliest open timer falls due (0 when overdue); None if none."""
        due = self.timers.next_due()
        if due is None:
            return None
        return max(0.0, (due - self.clock.now()).total_seconds())

    def _fire(self, row: BookmarkRow) -> bool:
        def command(session: CommandAttempt) -> None:
            instance = session.load(row.instance_id)
            engine.fire_timer(instance, session.definition_of(instance), row.id, session.env)

        try:
            self.runner.run(command, row.instance_id)
        except (BookmarkNotOpenError, InstanceNotActiveError, InstanceNotFoundError):
            # Resumed, cancelled or fired by another worker since we read it: nothing to do.
            log.debug("timer %s of instance %s was already handled", row.id, row.instance_id)
            return False
        return True
