"""`POST /v1/instances/bulk`: cancel or retry the instances a filter selects, as a tracked job
(application.bulk; progress at `GET /v1/jobs/{id}`). docs/operations-recovery.md has a worked
example. Needs the `admin` or `operator` role."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, BackgroundTasks
from fastapi.responses import JSONResponse
from pydantic import Field

from api.auth import ContainerDep, Operator
from api.problems import ProblemError
from api.responses import WITH_BODY, Open, ok
from api.routes.recovery import JobView
from application.bulk import BulkFilter, BulkService
from application.requests import Strict

router = APIRouter(tags=["recovery"])


class BulkSelection(Strict):
    """Which instances: those of `definition` (required), at `version` if given, in
    `status` if given (default: cancel takes running and suspended, retry incident and
    failed)."""

    definition: str = Field(min_length=1, max_length=200)
    version: int | None = Field(default=None, ge=1)
    status: Literal["running", "suspended", "incident", "failed"] | None = None


class BulkRequest(Strict):
    action: Literal["cancel", "retry"]
    filter: BulkSelection  # noqa: A003 - the API's field name
    reason: str | None = Field(default=None, max_length=1000)
    dry_run: bool = False


class BulkPlanView(Open):
    """The dry run: the instances the job would take now."""

    dry_run: bool
    action: str
    total: int
    instance_ids: list[str]


@router.post(
    "/v1/instances/bulk",
    responses={
        **ok(BulkPlanView, *WITH_BODY, description="The dry run: the matching instances"),
        **ok(JobView, status=202, description="The bulk job, started"),
    },
)
def bulk_instances(
    body: BulkRequest,
    principal: Operator,
    container: ContainerDep,
    background: BackgroundTasks,
) -> Any:
    """Cancel or retry every instance the filter selects. `dry_run` answers 200 with the
    matching instance ids and changes nothing; otherwise a job (202, `Location:
    /v1/jobs/{id}`) handles them in batches, each instance by its own command (the same
    events and audit entry as the single-instance route); one that cannot be cancelled or
    retried is counted as refused with the reason."""
    if container.bulk is None:
        raise ProblemError(404, "not-found", "this process has no bulk service")
    service: BulkService = container.bulk
    selection = BulkFilter(**body.filter.model_dump())
    if body.dry_run:
        return service.plan(principal.tenant, body.action, selection)
    job = service.start(
        principal.tenant, body.action, selection, by=principal.actor_id, reason=body.reason
    )
    background.add_task(service.run, job)
    return JSONResponse(job.view(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})
