"""The batch loop every tracked job runs (application.jobs.run_in_batches): counts per
instance, refusals with reasons, progress stored after each batch, a stopped job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

from application.jobs import FAILED, SUCCEEDED, Job, Step, run_in_batches
from domain.errors import NotRecoverableError
from infrastructure.memory.jobs import InMemoryJobStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Progress(InMemoryJobStore):
    def __init__(self) -> None:
        super().__init__()
        self.saved: list[tuple[int, int, int]] = []

    def save_progress(self, job: Job) -> None:
        self.saved.append((job.done, job.refused, job.failed))
        super().save_progress(job)


def new_job(store: Progress) -> Job:
    job = Job(uuid.uuid4(), "acme", "bulk-retry", "running", {}, NOW, NOW)
    store.create(job)
    return job


def test_each_instance_is_done_refused_or_failed_and_progress_is_stored_per_batch() -> None:
    ids = [uuid.uuid4() for _ in range(5)]
    refuse, fail = ids[1], ids[3]
    handled: list[UUID] = []

    def step(instance_id: UUID) -> None:
        handled.append(instance_id)
        if instance_id == refuse:
            raise NotRecoverableError(instance_id, "suspended", "no open incident")
        if instance_id == fail:
            raise RuntimeError("boom")

    def plan() -> tuple[list[UUID], Step]:
        return ids, step

    store = Progress()
    job = run_in_batches(
        new_job(store), store, lambda: NOW, plan, batch_size=2, refusals=(NotRecoverableError,)
    )
    assert handled == ids  # every instance, in order, one step each
    assert (job.status, job.total, job.done, job.refused, job.failed) == (SUCCEEDED, 5, 3, 1, 1)
    assert job.errors[0] == {"instance_id": str(refuse), "reasons": ["no open incident"]}
    assert job.errors[1]["instance_id"] == str(fail) and "boom" in job.errors[1]["error"]
    # After batches of 2, 2 and 1, then the final save.
    assert store.saved == [(1, 1, 0), (2, 1, 1), (3, 1, 1), (3, 1, 1)]
    assert store.get("acme", job.id).status == SUCCEEDED  # type: ignore[union-attr]


def test_a_refusal_not_declared_by_the_job_counts_as_failed() -> None:
    def step(instance_id: UUID) -> None:
        raise NotRecoverableError(instance_id, "running", "no failed node")

    store = Progress()
    job = run_in_batches(
        new_job(store), store, lambda: NOW, lambda: ([uuid.uuid4()], step), batch_size=10,
        refusals=(),
    )  # fmt: skip
    assert (job.done, job.refused, job.failed) == (0, 0, 1)


def test_a_plan_that_raises_stops_the_job_as_failed_with_the_error() -> None:
    def plan() -> tuple[list[UUID], Step]:
        raise LookupError("definition gone")

    store = Progress()
    job = run_in_batches(new_job(store), store, lambda: NOW, plan, batch_size=10, refusals=())
    assert job.status == FAILED and job.finished_at == NOW
    assert "definition gone" in job.errors[0]["error"]
