"""Operator recovery: modify an instance, migrate instances to another version (a tracked
job), and simulate a definition in memory. docs/operations-recovery.md has worked examples.

Modification and migration need the `admin` or `operator` role; a simulation writes nothing
and is open to any key that may POST.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Body, Path
from fastapi.responses import JSONResponse
from pydantic import Field

from api.auth import Admin, ContainerDep, Designer, Operator, Reader
from api.problems import ProblemError
from api.responses import AUTHENTICATED, REPLAYED, WITH_BODY, InstanceView, Open, ok
from api.routes.instances import IdempotencyKeyHeader, parse_instance_id, replayable
from application.jobs import JobNotFoundError
from application.modification import ModificationService
from application.requests import Strict
from application.simulation import SimulationService
from infrastructure.container import Container, Principal

router = APIRouter(tags=["recovery"])


# --- bodies and answers ---------------------------------------------------------------------


class ModifyRequest(Strict):
    """`operations`, applied in order: `{"cancel": "<node id>"}` cancels the node's open work,
    `{"start_before": "<node id>"}` starts the graph at that node."""

    operations: list[dict[str, str]] = Field(min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=1000)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class MigrationRequest(Strict):
    from_version: int = Field(ge=1)
    to_version: int = Field(ge=1)
    # old node id → new node id; an unmapped node keeps its id
    mapping: dict[str, str] = Field(default_factory=dict, max_length=1000)
    dry_run: bool = True
    reason: str | None = Field(default=None, max_length=1000)


class SimulationCase(Strict):
    name: str | None = Field(default=None, max_length=200)
    input: dict[str, Any] = Field(default_factory=dict)  # noqa: A003 - the API's field name
    # node id → one step, or a list of steps used in turn (docs/operations-recovery.md)
    script: dict[str, Any] = Field(default_factory=dict)


class SimulationRequest(Strict):
    """A published definition (`name`, optional `version`) or an inline `document`, and the
    cases to run (`input` and `script` by node id, see docs/operations-recovery.md)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    version: int | None = Field(default=None, ge=1)
    document: dict[str, Any] | None = None
    cases: list[SimulationCase] = Field(min_length=1, max_length=100)


class MigrationPlanView(Open):
    """The dry run: per instance, whether it can move and why not."""

    dry_run: bool
    total: int
    can_migrate: int
    cannot_migrate: int
    instances: list[dict[str, Any]]


class JobView(Open):
    """A tracked job and its progress."""

    id: UUID
    kind: str
    status: str
    total: int
    done: int
    refused: int
    failed: int
    remaining: int
    errors: list[dict[str, Any]]


class SimulationView(Open):
    """Per case the path, routes taken and final state; `never_taken` over all cases."""

    cases: list[dict[str, Any]]
    never_taken: list[dict[str, Any]]
    stored: bool


# --- routes ---------------------------------------------------------------------------------


def _recovery(container: Container, principal: Principal) -> ModificationService:
    # The role each route needs is declared on the route (api/roles.py).
    if container.modification is None:
        raise ProblemError(404, "not-found", "this process has no modification service")
    return container.modification


@router.post(
    "/v1/instances/{instance_id}/modify",
    responses=ok(
        InstanceView,
        *WITH_BODY,
        404,
        409,
        headers=REPLAYED,
        description="The modified instance",
    ),
)
def modify_instance(
    instance_id: str,
    body: ModifyRequest,
    principal: Operator,
    container: ContainerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Cancel active nodes and/or start nodes, in one command recorded as `InstanceModified`
    (who and why). An unknown node: 422 with its JSON path; cancelling a node that is not
    active: 409. Nothing changes when the request is refused. A repeat with the same
    idempotency key and body replays the first answer; the key with another body: 422."""
    result, replayed = _recovery(container, principal).modify(
        principal.tenant,
        parse_instance_id(instance_id),
        [dict(op) for op in body.operations],
        by=principal.actor_id,
        reason=body.reason,
        idempotency_key=body.idempotency_key or idempotency_key,
    )
    return replayable(result, replayed)


@router.post(
    "/v1/definitions/{name}/migrations",
    responses={
        **ok(MigrationPlanView, *WITH_BODY, 404, description="The dry run's report"),
        **ok(JobView, status=202, description="The migration job, started"),
    },
)
def migrate_instances(
    name: str,
    body: MigrationRequest,
    principal: Admin,
    container: ContainerDep,
    background: BackgroundTasks,
) -> Any:
    """Move the running instances of `from_version` to `to_version` under a node mapping.
    `dry_run` (the default) reports per instance whether it can move and why not, and
    changes nothing; otherwise a job migrates them in batches (202; `GET /v1/jobs/{id}`),
    each instance by one `InstanceMigrated` event, a refused one left as it was."""
    service = _recovery(container, principal)
    args = (principal.tenant, name, body.from_version, body.to_version, body.mapping)
    if body.dry_run:
        return service.plan_migration(*args)
    job = service.start_migration(*args, by=principal.actor_id, reason=body.reason)
    background.add_task(service.run_migration, job)
    return JSONResponse(job.view(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/v1/jobs/{job_id}", responses=ok(JobView, *AUTHENTICATED, 404))
def get_job(
    job_id: Annotated[str, Path(max_length=100)],
    principal: Reader,
    container: ContainerDep,
) -> dict[str, Any]:
    """A tracked job's progress: counts, refused instances with reasons, status."""
    service = _recovery(container, principal)
    try:
        parsed = UUID(job_id)
    except ValueError:
        raise JobNotFoundError(job_id) from None
    return service.job(principal.tenant, parsed).view()


@router.post("/v1/definitions/simulate", responses=ok(SimulationView, *WITH_BODY, 404))
def simulate_definition(
    body: Annotated[SimulationRequest, Body()],
    principal: Designer,
    container: ContainerDep,
) -> dict[str, Any]:
    """Run a definition in memory with stubbed actions and scripted tasks, waits, timers and
    children over `cases`: the path, final state and the routes no case took. Nothing is
    stored and no action runs."""
    if container.simulation is None:
        raise ProblemError(404, "not-found", "this process has no simulation service")
    if (body.name is None) == (body.document is None):
        raise ProblemError(422, "invalid-request", "give either name (and version) or document")
    service: SimulationService = container.simulation
    return service.simulate(
        principal.tenant,
        name=body.name,
        version=body.version,
        document=body.document,
        cases=[case.model_dump() for case in body.cases],
    )
