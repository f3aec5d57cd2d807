"""The scheduler: starts the due ticks of cron `schedule` triggers.

It runs inside `waymark worker timers` (and in-process in development) as a loop of its
own, so a slow batch of timers never delays a tick, nor a tick the timers. Any number of
replicas may run it: each tick is a keyed start (`application.schedules`), so a tick two
replicas both see starts one instance.
"""

from __future__ import annotations

import logging

from application.schedules import ScheduleService
from workers.runner import DEFAULT_SHUTDOWN_GRACE_SECONDS, WorkerRunner
from workers.wakeups import ALARM_SLACK_SECONDS

logger = logging.getLogger(__name__)


class ScheduleWorker:
    """Fires due ticks; sleeps until the next tick, re-reading definitions every poll."""

    def __init__(
        self,
        schedules: ScheduleService,
        *,
        poll_interval: float,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE_SECONDS,
    ):
        self.schedules = schedules
        self.runner = WorkerRunner(
            self.tick,
            name="scheduler",
            poll_interval=poll_interval,
            shutdown_grace=shutdown_grace,
        )

    def tick(self) -> int:
        self.schedules.fire_due()
        # Wake at the next tick (the poll interval still re-reads new definitions). Always
        # 0 handled: the ticks just started are behind the cursor, nothing to repeat at once.
        wait = self.schedules.seconds_until_next()
        if wait is not None:
            self.runner.wake_in(wait + ALARM_SLACK_SECONDS)
        return 0
