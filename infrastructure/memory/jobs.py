"""JobStore in memory (use-case tests)."""

from __future__ import annotations

import copy
import threading
from uuid import UUID

from application.jobs import Job


class InMemoryJobStore:
    def __init__(self) -> None:
        self._jobs: dict[UUID, Job] = {}
        self._lock = threading.Lock()

    def create(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = copy.deepcopy(job)

    def save_progress(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = copy.deepcopy(job)

    def get(self, tenant: str, job_id: UUID) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return copy.deepcopy(job) if job is not None and job.tenant == tenant else None
