"""The cleanup worker: prunes by retention every `WAYMARK_CLEANUP_INTERVAL` (2 h).

Any number of replicas may run: only the one holding the `cleanup` advisory lock works
(`infrastructure.postgres.leadership`), the others stand by and take over when it dies.
Even two runs at once would be safe (each batch locks its instances with SKIP LOCKED), but
would only compete for the same rows and double the VACUUMs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from infrastructure.container import CleanupWorkerContainer
from infrastructure.postgres.leadership import Leadership
from workers.probes import run_until_stopped
from workers.runner import DEFAULT_SHUTDOWN_GRACE_SECONDS, WorkerRunner

logger = logging.getLogger(__name__)

LEADERSHIP_NAME = "cleanup"
# A standby retries for leadership this often (not every 2 h), so a replacement for a dead
# leader starts within about a minute; the leader then runs once per interval.
STANDBY_RETRY_SECONDS = 60.0


class CleanupWorker:
    """Runs one cleanup when it leads and the interval has passed since the last run."""

    def __init__(self, container: CleanupWorkerContainer, *, leadership: Leadership | None = None):
        settings = container.settings
        self.container = container
        self.cleanup = container.cleanup
        self.interval = settings.cleanup_interval
        self.leadership = leadership or Leadership(container.database_url, LEADERSHIP_NAME)
        self.runner = WorkerRunner(
            self.tick,
            name="cleanup-worker",
            poll_interval=min(self.interval, STANDBY_RETRY_SECONDS),
            shutdown_grace=float(
                getattr(settings, "worker_shutdown_grace", DEFAULT_SHUTDOWN_GRACE_SECONDS)
            ),
        )
        self._next_run = 0.0  # monotonic time; 0: run as soon as this process leads
        self.runs = 0
        self._standing_by = False

    def tick(self) -> int:
        if not self.leadership.ensure():
            if not self._standing_by:
                logger.info("cleanup: another replica leads; standing by")
                self._standing_by = True
            return 0
        self._standing_by = False
        now = time.monotonic()
        if now < self._next_run:
            return 0
        self._next_run = now + self.interval
        report = self.cleanup.run(progress=_Progress(), should_stop=lambda: self.runner.stopping)
        self.runs += 1
        if report.error is None:
            logger.info("cleanup: deleted %s", report.deleted)
        # 0: the runner then sleeps a poll interval (the next run is an interval away).
        return 0

    def close(self) -> None:
        self.leadership.release()


PROGRESS_EVERY_SECONDS = 10.0


class _Progress:
    """Logs a long run's running totals at most every PROGRESS_EVERY_SECONDS (and each stage
    change), not once per batch."""

    def __init__(self) -> None:
        self.last = 0.0
        self.stage = ""

    def __call__(self, stage: str, counts: dict[str, Any]) -> None:
        now = time.monotonic()
        if stage != self.stage or now - self.last >= PROGRESS_EVERY_SECONDS:
            logger.info("cleanup progress (%s): %s", stage, counts)
            self.last, self.stage = now, stage


def main(container: CleanupWorkerContainer) -> None:
    """`waymark worker cleanup`: run until SIGTERM/SIGINT."""
    worker = CleanupWorker(container)
    run_until_stopped(container, worker)
