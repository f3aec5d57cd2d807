"""Bulk operations: cancel or retry the instances a filter selects, as a tracked job.

- `plan` (the dry run): the ids of the instances the filter selects now; nothing is written.
- `start` / `run`: a job (`application.jobs`, the `jobs` table; kind `bulk-cancel` or
  `bulk-retry`) run by `run_in_batches`, like a version migration. Each instance is cancelled
  or retried by its OWN command, through the same use case as the single-instance route
  (`InstanceService.cancel`, `RecoveryService.retry`: the same events, the same audit entry
  with who and why), judged on its state at that moment: an instance that cannot be
  cancelled (it ended meanwhile) or retried (no open incident, not a retryable failure) is
  counted as refused with the reason, and nothing of it changes.

The filter: `definition` (required: a bulk operation never spans every definition of a
tenant), optional `version` and `status`. Without `status`, cancel selects the `running`
and `suspended` instances, retry the `incident` and `failed` ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from application.commands import CancelInstance, RetryNode
from application.instances import InstanceService
from application.jobs import RUNNING, Job, JobStore, Step, item_key, run_in_batches
from application.ports import ReadModelQueries
from application.read_models import InstanceFilter
from application.recovery import RecoveryService
from application.runner import CommandRunner
from domain.errors import ForEachTooLargeError, InstanceNotActiveError, NotRecoverableError
from domain.values import clean_value

CANCEL, RETRY = "cancel", "retry"
ACTIONS = (CANCEL, RETRY)
DEFAULT_STATUSES = {CANCEL: ("running", "suspended"), RETRY: ("incident", "failed")}
# A retry re-entering a for_each whose items are over the bound is refused, nothing changed.
REFUSALS: tuple[type[Exception], ...] = (
    InstanceNotActiveError,
    NotRecoverableError,
    ForEachTooLargeError,
)
PAGE = 500


@dataclass(frozen=True)
class BulkFilter:
    definition: str
    version: int | None = None
    status: str | None = None

    def view(self) -> dict[str, Any]:
        return {"definition": self.definition, "version": self.version, "status": self.status}


class BulkService:
    def __init__(
        self,
        runner: CommandRunner,
        queries: ReadModelQueries,
        jobs: JobStore,
        instances: InstanceService,
        recovery: RecoveryService,
        *,
        batch_size: int = 50,
    ) -> None:
        self.runner = runner
        self.queries = queries
        self.jobs = jobs
        self.instances = instances
        self.recovery = recovery
        self.batch_size = batch_size

    def plan(self, tenant: str, action: str, selection: BulkFilter) -> dict[str, Any]:
        """The dry run: which instances the job would take now. Writes nothing."""
        ids = self.matching(tenant, action, selection)
        return {
            "dry_run": True,
            "action": action,
            "filter": selection.view(),
            "total": len(ids),
            "instance_ids": [str(i) for i in ids],
        }

    def start(
        self, tenant: str, action: str, selection: BulkFilter, *, by: str | None, reason: str | None
    ) -> Job:
        """Store the job (status `running`) with the count matching now; `run` does it."""
        reason = clean_value(reason, "the reason of the bulk operation")
        now = self.runner.clock.now()
        params = {"action": action, "filter": selection.view(), "reason": reason}
        job = Job(
            id=uuid.uuid4(), tenant=tenant, kind=f"bulk-{action}", status=RUNNING, params=params,
            created_at=now, updated_at=now, created_by=by,
        )  # fmt: skip
        job.total = len(self.matching(tenant, action, selection))
        self.jobs.create(job)
        return job

    def run(self, job: Job) -> Job:
        """Cancel or retry the instances the job's filter selects, a batch at a time."""
        action = job.params["action"]
        selection = BulkFilter(**job.params["filter"])

        def plan() -> tuple[list[UUID], Step]:
            step = self._cancel_step(job) if action == CANCEL else self._retry_step(job)
            return self.matching(job.tenant, action, selection), step

        return run_in_batches(
            job,
            self.jobs,
            self.runner.clock.now,
            plan,
            batch_size=self.batch_size,
            refusals=REFUSALS,
        )

    def matching(self, tenant: str, action: str, selection: BulkFilter) -> list[UUID]:
        """The instances `selection` picks for `action`, oldest first per status."""
        if action not in ACTIONS:
            raise ValueError(f"unknown bulk action {action!r}")
        statuses = (selection.status,) if selection.status else DEFAULT_STATUSES[action]
        found: list[UUID] = []
        for status in statuses:
            criteria = InstanceFilter(status=status, definition=selection.definition)
            cursor: str | None = None
            while True:
                page = self.queries.list_instances(tenant, criteria, limit=PAGE, cursor=cursor)
                found += [
                    row.id
                    for row in page.items
                    if selection.version is None or row.version == selection.version
                ]
                cursor = page.next_cursor
                if not cursor:
                    break
        return found

    def _cancel_step(self, job: Job) -> Step:
        reason = job.params.get("reason") or f"bulk cancel (job {job.id})"
        if job.created_by:
            reason = f"{reason} (by {job.created_by})"

        def step(instance_id: UUID) -> None:
            key = item_key(job, instance_id)  # a resumed job replays what was done
            self.instances.cancel(
                CancelInstance(job.tenant, instance_id, reason, idempotency_key=key)
            )

        return step

    def _retry_step(self, job: Job) -> Step:
        reason = job.params.get("reason") or f"bulk retry (job {job.id})"

        def step(instance_id: UUID) -> None:
            key = item_key(job, instance_id)  # a resumed job replays what was done
            self.recovery.retry(
                RetryNode(
                    job.tenant, instance_id, actor=job.created_by, reason=reason,
                    idempotency_key=key,
                )
            )  # fmt: skip

        return step
