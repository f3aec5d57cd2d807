"""JobStore on PostgreSQL: the `jobs` table (migration 0019)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg.types.json import Jsonb

from application.jobs import Job

_INSERT = """
    INSERT INTO jobs (id, tenant, kind, status, params, created_by, total, done, refused,
                      failed, errors, created_at, updated_at, finished_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_SELECT = """
    SELECT id, tenant, kind, status, params, created_by, total, done, refused, failed, errors,
           created_at, updated_at, finished_at
    FROM jobs WHERE id = %s AND tenant = %s
"""


class PostgresJobStore:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore

    def create(self, job: Job) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                _INSERT,
                (
                    job.id, job.tenant, job.kind, job.status, Jsonb(job.params), job.created_by,
                    job.total, job.done, job.refused, job.failed, Jsonb(job.errors),
                    job.created_at, job.updated_at, job.finished_at,
                ),
            )  # fmt: skip

    def save_progress(self, job: Job) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE jobs SET status = %s, total = %s, done = %s, refused = %s, failed = %s, "
                "errors = %s, updated_at = %s, finished_at = %s WHERE id = %s",
                (
                    job.status, job.total, job.done, job.refused, job.failed, Jsonb(job.errors),
                    job.updated_at, job.finished_at, job.id,
                ),
            )  # fmt: skip

    def get(self, tenant: str, job_id: UUID) -> Job | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT, (job_id, tenant))
            row: dict[str, Any] | None = curs.fetchone()
        return Job(**row) if row else None
