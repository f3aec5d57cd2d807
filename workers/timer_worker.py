"""The timer worker: fires due `timer` bookmarks and `wait` timeouts.

Several replicas may run at once: each firing is a command on its instance, so a timer
fired by two workers applies once (the other sees the bookmark consumed).
"""

from __future__ import annotations

import logging
import threading

from infrastructure.container import Container
from workers.runner import WorkerRunner

logger = logging.getLogger(__name__)


class TimerWorker:
    """Polls for due timers in batches."""

    def __init__(self, container: Container):
        settings = container.settings
        self.timers = container.timers
        self.batch_size = settings.timer_batch_size
        self.runner = WorkerRunner(
            self.tick, name="timer-worker", poll_interval=settings.timer_poll_interval
        )

        self._alarm: threading.Timer | None = None

    def tick(self) -> int:
        fired = self.timers.fire_due(self.batch_size)
        if not fired:
            self._arm_alarm()
        return fired

    def wake(self) -> None:
        """A timer may have been created in this process: look again now."""
        self.runner.wake()

    def close(self) -> None:
        if self._alarm is not None:
            self._alarm.cancel()

    def _arm_alarm(self) -> None:
        # Between polls, wake exactly when the earliest timer falls due, so a PT5S timer is
        # not held back by a 30 s poll interval.
        wait = self.timers.seconds_until_next()
        if wait is None or wait >= self.runner.poll_interval:
            return
        if self._alarm is not None:
            self._alarm.cancel()
        self._alarm = threading.Timer(wait + 0.01, self.runner.wake)
        self._alarm.daemon = True
        self._alarm.start()


def main(container: Container) -> None:
    """`waymark worker timers`: run until SIGTERM/SIGINT."""
    worker = TimerWorker(container)
    worker.runner.install_signal_handlers()
    try:
        worker.runner.run_forever()
    finally:
        worker.close()
        container.close()
