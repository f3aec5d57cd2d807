"""Tracked jobs: bulk operations (a version migration today) whose progress the API shows.

A job row counts what it did (`total`, `done`, `refused`, `failed`) and keeps the refused
instances with their reasons (at most `MAX_ERRORS`). `GET /v1/jobs/{id}` reads it. The port
is implemented on PostgreSQL (`infrastructure/postgres/jobs.py`, the `jobs` table of
migration 0019) and in memory (`infrastructure/memory/jobs.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from application.errors import WaymarkError

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
