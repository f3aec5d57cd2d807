"""The API process's job sweeper: a daemon thread that asks `JobRecovery.sweep()` every third
of the job lease whether a job's process died, and resumes that job here.

Jobs run in the API process that accepted them (a background task after the 202), so every
API process sweeps: another replica, or this one restarted, takes over a job within about
one lease (`WAYMARK_JOB_LEASE_SECONDS`) of its process dying.
"""

from __future__ import annotations

import logging
import threading

from application.job_recovery import JobRecovery

logger = logging.getLogger(__name__)


class JobSweeper:
    def __init__(self, recovery: JobRecovery, interval: float) -> None:
        self.recovery = recovery
        self.interval = max(interval, 0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-sweeper", daemon=True)

    def start(self) -> JobSweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sweeping; a job being resumed goes on until the process exits (its lease
        then ends, and another process resumes it)."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                while not self._stop.is_set() and self.recovery.sweep() is not None:
                    pass  # one resumed: look for another at once
            except Exception:
                logger.exception("job sweeper: a sweep failed; trying again later")
