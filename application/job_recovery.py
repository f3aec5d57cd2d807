"""Jobs whose process died: claimed after their lease ends and resumed, or failed.

`JobRecovery.sweep()` claims one `running` job whose lease has run out (any tenant:
`JobStore.claim_abandoned`), and runs it on from its stored position with the use case of
its kind, acting for the job's tenant; `run_in_batches` skips what the dead process did
(application/jobs.py). A job claimed more than `max_resumes` times (a job that kills its
process every time) is failed instead, with a note. The API process calls `sweep` every
third of the lease (api/job_sweeper.py), so another replica, or the restarted process,
takes the job over within about one lease of the crash.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from application import tenant_scope
from application.jobs import FAILED, Job, JobLeaseLostError, JobStore, note

logger = logging.getLogger(__name__)

MAX_RESUMES = 5


class JobRecovery:
    def __init__(
        self,
        jobs: JobStore,
        runners: Mapping[str, Callable[[Job], Job]],
        now: Callable[[], datetime],
        *,
        max_resumes: int = MAX_RESUMES,
    ) -> None:
        self.jobs = jobs
        self.runners = dict(runners)  # job kind → the use case that runs it
        self.now = now
        self.max_resumes = max_resumes

    def sweep(self) -> Job | None:
        """Claim and resume (or fail) one abandoned job; None when there was none."""
        job = self.jobs.claim_abandoned()
        if job is None:
            return None
        run = self.runners.get(job.kind)
        if run is None or job.resumes > self.max_resumes:
            why = (
                f"abandoned by its process {job.resumes} times"
                if run is not None
                else f"no process here runs jobs of kind {job.kind!r}"
            )
            logger.error("job %s (%s) failed: %s", job.id, job.kind, why)
            return self._fail(job, why)
        logger.warning(
            "job %s (%s) resumed at %d of %d (its process stopped renewing the lease)",
            job.id,
            job.kind,
            job.position,
            len(job.items or []),
        )
        with tenant_scope.acting_for(job.tenant):
            return run(job)

    def _fail(self, job: Job, why: str) -> Job:
        job.status = FAILED
        note(job, {"error": why})
        job.updated_at = job.finished_at = self.now()
        with contextlib.suppress(JobLeaseLostError):  # another process failed or runs it
            self.jobs.save_progress(job)
        return job
