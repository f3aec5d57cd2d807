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
        if not fired:
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
        wait = self.timers.seconds_until_next()
        if wait is None:
            return
        if wait <= 0:
            # Overdue yet nothing fired here (another replica is firing it): look again
            # soon, without spinning.
            self.runner.wake_in(min(OVERDUE_RECHECK_SECONDS, self.runner.poll_interval))
        else:
            self.runner.wake_in(wait + ALARM_SLACK_SECONDS)


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
