"""Tracked jobs: bulk operations (version migrations, bulk cancel/retry) whose progress the
API shows.

A job row counts what it did (`total`, `done`, `refused`, `failed`) and keeps the refused
instances with their reasons (at most `MAX_ERRORS`). `GET /v1/jobs/{id}` reads it. The port
is implemented on PostgreSQL (`infrastructure/postgres/jobs.py`, the `jobs` table of
migration 0019) and in memory (`infrastructure/memory/jobs.py`).
"""

from __future__ import annotations

import logging
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
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


class JobStore(Protocol):
    def create(self, job: Job) -> None: ...

    def save_progress(self, job: Job) -> None:
        """Store the counts, errors, status and times of `job` (one row update)."""
        ...

    def get(self, tenant: str, job_id: UUID) -> Job | None: ...


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
    """Run a job: `plan()` gives the instance ids and the step for one; each instance is
    handled by its own command, a batch at a time, the counts stored after every batch.
    An error of `plan` (or of storing progress) stops the job as `failed`; what it did
    stays done."""
    try:
        ids, step = plan()
        job.total = max(job.total, len(ids))
        for batch in _batches(ids, batch_size):
            for instance_id in batch:
                _one(job, instance_id, step, refusals)
            job.updated_at = now()
            jobs.save_progress(job)
        job.status = SUCCEEDED
    except Exception as e:
        logger.exception("%s job %s stopped", job.kind, job.id)
        job.status = FAILED
        note(job, {"error": f"{type(e).__name__}: {e}"})
    job.updated_at = job.finished_at = now()
    jobs.save_progress(job)
    return job


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
