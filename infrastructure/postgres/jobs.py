"""JobStore on PostgreSQL: the `jobs` table (migrations 0019 and 0023: leases).

Lease times are the database's (`now()`), so the processes' clocks do not matter. The
lease owner is this store's process (one store per process, shared by its job services).
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg.types.json import Jsonb

from application.jobs import Job, JobLeaseLostError

# Lease ends are `now() + make_interval(secs => %(lease)s)`: the database's clock.
_INSERT = """
    INSERT INTO jobs (id, tenant, kind, status, params, created_by, total, done, refused,
                      failed, errors, created_at, updated_at, finished_at, items,
                      item_position, lease_owner, lease_until)
    VALUES (%(id)s, %(tenant)s, %(kind)s, %(status)s, %(params)s, %(created_by)s, %(total)s,
            %(done)s, %(refused)s, %(failed)s, %(errors)s, %(created_at)s, %(updated_at)s,
            %(finished_at)s, %(items)s, %(position)s, %(owner)s,
            now() + make_interval(secs => %(lease)s))
"""
_SELECT = """
    SELECT id, tenant, kind, status, params, created_by, total, done, refused, failed, errors,
           created_at, updated_at, finished_at, items, item_position AS position, resumes
    FROM jobs WHERE id = %s AND tenant = %s
"""
_SAVE_PROGRESS = """
    UPDATE jobs SET status = %(status)s, total = %(total)s, done = %(done)s,
        refused = %(refused)s, failed = %(failed)s, errors = %(errors)s,
        updated_at = %(updated_at)s, finished_at = %(finished_at)s,
        item_position = %(position)s, lease_until = now() + make_interval(secs => %(lease)s)
    WHERE id = %(id)s AND lease_owner = %(owner)s
"""
_SAVE_ITEMS = """
    UPDATE jobs SET items = %(items)s, total = %(total)s
    WHERE id = %(id)s AND lease_owner = %(owner)s
"""
_RENEW = """
    UPDATE jobs SET lease_until = now() + make_interval(secs => %(lease)s)
    WHERE id = %(id)s AND lease_owner = %(owner)s
"""
# A running job without a live lease (its process died, or it predates leases), oldest
# first; SKIP LOCKED: two processes claiming at once take different jobs.
_CLAIM = """
    UPDATE jobs SET lease_owner = %(owner)s, resumes = resumes + 1,
        lease_until = now() + make_interval(secs => %(lease)s)
    WHERE id = (
        SELECT id FROM jobs
        WHERE status = 'running' AND (lease_until IS NULL OR lease_until < now())
        ORDER BY created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, tenant, kind, status, params, created_by, total, done, refused, failed,
              errors, created_at, updated_at, finished_at, items,
              item_position AS position, resumes
"""


def process_owner() -> str:
    """This process, as a lease owner: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class PostgresJobStore:
    def __init__(
        self, datastore: PostgresDatastore, *, lease_seconds: float = 30.0, owner: str = ""
    ) -> None:
        self.datastore = datastore
        self.lease_seconds = lease_seconds
        self.owner = owner or process_owner()

    def create(self, job: Job) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_INSERT, self._params(job))

    def save_progress(self, job: Job) -> None:
        self._owned_update(_SAVE_PROGRESS, job)

    def save_items(self, job: Job) -> None:
        self._owned_update(_SAVE_ITEMS, job)

    def renew(self, job: Job) -> None:
        self._owned_update(_RENEW, job)

    def claim_abandoned(self) -> Job | None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_CLAIM, {"owner": self.owner, "lease": self.lease_seconds})
            row: dict[str, Any] | None = curs.fetchone()
        return Job(**row) if row else None

    def get(self, tenant: str, job_id: UUID) -> Job | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT, (job_id, tenant))
            row: dict[str, Any] | None = curs.fetchone()
        return Job(**row) if row else None

    def _owned_update(self, statement: str, job: Job) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(statement, self._params(job))
            if curs.rowcount == 0:
                raise JobLeaseLostError(f"job {job.id} is leased to another process")

    def _params(self, job: Job) -> dict[str, Any]:
        return {
            "id": job.id, "tenant": job.tenant, "kind": job.kind, "status": job.status,
            "params": Jsonb(job.params), "created_by": job.created_by, "total": job.total,
            "done": job.done, "refused": job.refused, "failed": job.failed,
            "errors": Jsonb(job.errors), "created_at": job.created_at,
            "updated_at": job.updated_at, "finished_at": job.finished_at,
            "items": None if job.items is None else Jsonb(job.items),
            "position": job.position, "owner": self.owner, "lease": self.lease_seconds,
        }  # fmt: skip
