"""JobStore in memory (use-case tests), with the PostgreSQL store's leases."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from uuid import UUID

from application.jobs import RUNNING, Job, JobLeaseLostError


class InMemoryJobStore:
    def __init__(self, *, lease_seconds: float = 30.0, owner: str = "") -> None:
        self._jobs: dict[UUID, Job] = {}
        self._leases: dict[UUID, tuple[str, float]] = {}  # job → (owner, monotonic end)
        self._lock = threading.Lock()
        self.lease_seconds = lease_seconds
        self.owner = owner or uuid.uuid4().hex

    def sharing(self, owner: str) -> InMemoryJobStore:
        """Another process's view of the same jobs (a replica in a test)."""
        other = InMemoryJobStore(lease_seconds=self.lease_seconds, owner=owner)
        other._jobs, other._leases, other._lock = self._jobs, self._leases, self._lock
        return other

    def create(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = copy.deepcopy(job)
            self._lease(job.id)

    def save_progress(self, job: Job) -> None:
        with self._lock:
            self._check(job)
            self._jobs[job.id] = copy.deepcopy(job)
            self._lease(job.id)

    def save_items(self, job: Job) -> None:
        with self._lock:
            self._check(job)
            stored = self._jobs[job.id]
            stored.items, stored.total = list(job.items or []), job.total

    def renew(self, job: Job) -> None:
        with self._lock:
            self._check(job)
            self._lease(job.id)

    def claim_abandoned(self) -> Job | None:
        with self._lock:
            now = time.monotonic()
            for job in sorted(self._jobs.values(), key=lambda j: j.created_at):
                lease = self._leases.get(job.id)
                if job.status == RUNNING and (lease is None or lease[1] < now):
                    job.resumes += 1
                    self._lease(job.id)
                    return copy.deepcopy(job)
        return None

    def get(self, tenant: str, job_id: UUID) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return copy.deepcopy(job) if job is not None and job.tenant == tenant else None

    def _lease(self, job_id: UUID) -> None:
        self._leases[job_id] = (self.owner, time.monotonic() + self.lease_seconds)

    def _check(self, job: Job) -> None:
        lease = self._leases.get(job.id)
        if lease is not None and lease[0] != self.owner:
            raise JobLeaseLostError(f"job {job.id} is leased to another process")
