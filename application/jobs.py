"""Tracked jobs: bulk operations (version migrations, bulk cancel/retry) whose progress the
API shows.

A job row counts what it did (`total`, `done`, `refused`, `failed`) and keeps the refused
instances with their reasons (at most `MAX_ERRORS`). `GET /v1/jobs/{id}` reads it. The port
is implemented on PostgreSQL (`infrastructure/postgres/jobs.py`, the `jobs` table of
migrations 0019 and 0023) and in memory (`infrastructure/memory/jobs.py`).

A running job is leased to the process running it (migration 0023): the store renews the
lease with every progress update and at least every third of the lease while a batch runs,
and refuses an update from a process that lost it (`JobLeaseLostError`). A job whose
process died keeps `running` only until its lease ends: another process (or the restarted
one) claims it (`application.job_recovery`) and goes on from the stored `position` in the
job's frozen `items`. Each instance is handled by a command that stores an idempotency
record under `item_key(job, instance)` in its own transaction, so the instances the dead
process handled after its last progress update are found handled (counted, not redone):
every instance exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from application.errors import InstanceNotFoundError, WaymarkError

logger = logging.getLogger(__name__)

MAX_ERRORS = 200

RUNNING = "running"
SUCCEEDED = "succeeded"  # every instance handled (some may have been refused)
FAILED = "failed"  # the job itself stopped on an unexpected error


@dataclass
class Job:
    id: UUID
    tenant: str
    kind: str
    status: str
    params: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
    total: int = 0
    done: int = 0
    refused: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    finished_at: datetime | None = None
    # The instances to handle, fixed by the first plan (None until then), and how many of
    # them the stored counts cover; a resumed job goes on from there.
    items: list[str] | None = None
    position: int = 0
    # How many times the job was claimed after its process stopped renewing the lease.
    resumes: int = 0

    def view(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "kind": self.kind,
            "status": self.status,
            "params": self.params,
            "created_by": self.created_by,
            "total": self.total,
            "done": self.done,
            "refused": self.refused,
            "failed": self.failed,
            "remaining": max(self.total - self.done - self.refused - self.failed, 0),
            "errors": self.errors,
            "resumes": self.resumes,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


class JobStore(Protocol):
    lease_seconds: float

    def create(self, job: Job) -> None:
        """Store a new job, leased to this store's process."""
        ...

    def save_progress(self, job: Job) -> None:
        """Store the counts, errors, position, status and times of `job` (one row update)
        and renew its lease; JobLeaseLostError if another process holds it now."""
        ...

    def save_items(self, job: Job) -> None:
        """Store the job's frozen `items` and `total` (once, after the first plan)."""
        ...

    def renew(self, job: Job) -> None:
        """Extend the lease (the heartbeat between progress updates); JobLeaseLostError
        if another process holds it now."""
        ...

    def claim_abandoned(self) -> Job | None:
        """Lease to this process one `running` job of any tenant whose lease has ended
        (its `resumes` counted), oldest first; None if there is none."""
        ...

    def get(self, tenant: str, job_id: UUID) -> Job | None: ...


class JobLeaseLostError(Exception):
    """Another process claimed the job (this one stopped renewing in time): stop quietly,
    the other goes on from the stored position."""


def item_key(job: Job, instance_id: UUID) -> str:
    """The idempotency key of the command a job runs on one instance."""
    return f"job:{job.id}:{instance_id}"


class JobNotFoundError(WaymarkError):
    code = "not-found"

    def __init__(self, job_id: Any):
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


# What a job does to each instance, given its id; raising one of the job's refusal errors
# counts the instance as refused (nothing of it changed), any other error as failed.
Step = Callable[[UUID], None]


def run_in_batches(
    job: Job,
    jobs: JobStore,
    now: Callable[[], datetime],
    plan: Callable[[], tuple[list[UUID], Step]],
    *,
    batch_size: int,
    refusals: tuple[type[Exception], ...],
) -> Job:
    """Run (or resume) a job: `plan()` gives the instance ids and the step for one; each
    instance is handled by its own command (keyed by `item_key`, so a step repeated after a
    crash replays instead of acting twice), a batch at a time, the counts and position
    stored after every batch. The ids of the first plan are kept (`items`): a resumed job
    goes on from `position` in them. An error of `plan` (or of storing progress) stops the
    job as `failed`; what it did stays done. A lost lease stops it without a word."""
    try:
        ids, step = plan()
        if job.items is None:
            job.items = [str(i) for i in ids]
            job.total = max(job.total, len(ids))
            jobs.save_items(job)
        heartbeat = _Heartbeat(job, jobs)
        todo = [UUID(i) for i in job.items[job.position :]]
        for batch in _batches(todo, batch_size):
            for instance_id in batch:
                heartbeat.beat()
                _one(job, instance_id, step, refusals)
            job.position += len(batch)
            job.updated_at = now()
            jobs.save_progress(job)
            heartbeat.renewed()
        job.status = SUCCEEDED
    except JobLeaseLostError:
        logger.warning("%s job %s: lease lost, another process goes on with it", job.kind, job.id)
        return job
    except Exception as e:
        logger.exception("%s job %s stopped", job.kind, job.id)
        job.status = FAILED
        note(job, {"error": f"{type(e).__name__}: {e}"})
    job.updated_at = job.finished_at = now()
    try:
        jobs.save_progress(job)
    except JobLeaseLostError:
        logger.warning("%s job %s: lease lost before its end was stored", job.kind, job.id)
    return job


class _Heartbeat:
    """Renews the job's lease between progress updates, every third of the lease."""

    def __init__(self, job: Job, jobs: JobStore) -> None:
        self.job, self.jobs = job, jobs
        self.every = max(jobs.lease_seconds / 3, 0.05)
        self.last = time.monotonic()

    def beat(self) -> None:
        if time.monotonic() - self.last >= self.every:
            self.jobs.renew(self.job)
            self.renewed()

    def renewed(self) -> None:
        self.last = time.monotonic()


def _one(job: Job, instance_id: UUID, step: Step, refusals: tuple[type[Exception], ...]) -> None:
    try:
        step(instance_id)
    except InstanceNotFoundError:
        job.refused += 1
        note(job, {"instance_id": str(instance_id), "reasons": ["the instance is gone"]})
    except refusals as refused:
        job.refused += 1
        reasons = getattr(refused, "reasons", None) or [getattr(refused, "why", str(refused))]
        note(job, {"instance_id": str(instance_id), "reasons": list(reasons)})
    except Exception as e:
        logger.exception("%s job %s: instance %s failed", job.kind, job.id, instance_id)
        job.failed += 1
        note(job, {"instance_id": str(instance_id), "error": f"{type(e).__name__}: {e}"})
    else:
        job.done += 1


def _batches(items: list[UUID], size: int) -> Iterator[list[UUID]]:
    size = max(size, 1)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def note(job: Job, entry: dict[str, Any]) -> None:
    """Keep `entry` among the job's notes (at most MAX_ERRORS)."""
    if len(job.errors) < MAX_ERRORS:
        job.errors.append(entry)
