"""The timer worker: fires due `timer` bookmarks and `wait` timeouts.

Several replicas may run at once: each firing is a command on its instance, so a timer
fired by two workers applies once (the other sees the bookmark consumed).
"""

from __future__ import annotations

import logging

from infrastructure import metrics
from infrastructure.container import TimerWorkerContainer
from infrastructure.postgres.listener import TIMERS_CHANNEL, PostgresListener
from workers.probes import serve_probes
from workers.runner import DEFAULT_SHUTDOWN_GRACE_SECONDS, WorkerRunner
from workers.schedule_worker import ScheduleWorker
from workers.wakeups import ALARM_SLACK_SECONDS, wake_on_notify

logger = logging.getLogger(__name__)

OVERDUE_RECHECK_SECONDS = 1.0
# The first recheck of a due timer another transaction holds (another replica's claim in
# flight, a command on its instance); doubled per recheck up to OVERDUE_RECHECK_SECONDS.
HELD_RECHECK_SECONDS = 0.02


class TimerWorker:
    """Polls for due timers in batches; wakes when the earliest one falls due.

    With `listen`, a LISTEN/NOTIFY listener also sets the alarm for timers that other
    processes create (their commits notify `waymark_timers` with the due time).
    """

    def __init__(self, container: TimerWorkerContainer, *, listen: bool = False):
        settings = container.settings
        self.container = container
        self.timers = container.timers
        self.batch_size = settings.timer_batch_size
        self.runner = WorkerRunner(
            self.tick,
            name="timer-worker",
            poll_interval=settings.timer_poll_interval,
            shutdown_grace=float(
                getattr(settings, "worker_shutdown_grace", DEFAULT_SHUTDOWN_GRACE_SECONDS)
            ),
        )
        self.held_rechecks = 0  # in a row: a due timer held elsewhere, rechecked
        self.listener: PostgresListener | None = None
        if listen:
            self.listener = wake_on_notify(self.runner, container, TIMERS_CHANNEL)

    def tick(self) -> int:
        handled_before = self.timers.already_handled_total
        fired = self.timers.fire_due(self.batch_size)
        already = self.timers.already_handled_total - handled_before
        if fired or already:
            # One line per batch that did something (the replica tests read these counts).
            logger.info(
                "timer-worker: fired %d due timer(s), %d already handled elsewhere",
                fired,
                already,
            )
        metrics.TIMERS_FIRED.inc(fired)
        if fired:
            self.held_rechecks = 0
        else:
            self._arm_alarm()
        return fired

    def wake(self) -> None:
        """A timer may have been created in this process: look again now."""
        self.runner.wake()

    def close(self) -> None:
        """Nothing to release: alarms live in the runner and end with it."""

    def _arm_alarm(self) -> None:
        # Between polls, wake exactly when the earliest timer falls due, so a PT5S timer is
        # not held back by a 30 s poll interval.
        found = self.timers.next_claim()
        if found is None:
            return
        due, now = found
        claimed_at = self.timers.claimed_at
        if due > now:
            self.held_rechecks = 0
            self.runner.wake_in((due - now).total_seconds() + ALARM_SLACK_SECONDS)
        elif claimed_at is None or due > claimed_at:
            # It fell due after this tick's claim looked (timers due every few ms do, all
            # the time): nobody may hold it, claim it now. Sleeping the overdue recheck
            # here made such timers up to a second late (bench/timers.py, quick run).
            self.held_rechecks = 0
            self.runner.wake()
        else:
            # Due when the claim looked, yet not claimed: another transaction holds the row
            # (another replica's claim, about to lease it; a command on its instance). Look
            # again soon, backing off to OVERDUE_RECHECK_SECONDS, without spinning.
            self.held_rechecks += 1
            backoff = HELD_RECHECK_SECONDS * 2 ** (self.held_rechecks - 1)
            self.runner.wake_in(min(backoff, OVERDUE_RECHECK_SECONDS, self.runner.poll_interval))


def main(container: TimerWorkerContainer) -> None:
    """`waymark worker timers`: run until SIGTERM/SIGINT."""
    worker = TimerWorker(container, listen=bool(getattr(container.settings, "worker_listen", True)))
    scheduler = schedule_worker_of(container)
    worker.runner.install_signal_handlers()
    if scheduler is not None:
        scheduler.runner.start_in_thread()
    runners = [worker.runner] + ([scheduler.runner] if scheduler is not None else [])
    close_probes = serve_probes(container, runners)
    try:
        worker.runner.run_forever()
    finally:
        close_probes()
        if scheduler is not None:
            scheduler.runner.stop(worker.runner.shutdown_grace)
        worker.close()
        container.close()


def schedule_worker_of(container: TimerWorkerContainer) -> ScheduleWorker | None:
    """The cron scheduler that runs beside the timer loop (None if not built)."""
    if container.schedules is None:
        return None
    settings = container.settings
    return ScheduleWorker(
        container.schedules,
        poll_interval=settings.schedule_poll_interval,
        shutdown_grace=settings.worker_shutdown_grace,
    )
