"""`/v1/tasks`: the task queue (approvals and user tasks) — list, read, claim, delegate,
complete, cancel (withdraw)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from api.auth import ContainerDep, Operator, Reader, actor_of
from api.responses import (
    AUTHENTICATED,
    REPLAYED,
    WITH_BODY,
    InstanceView,
    TaskPage,
    TaskView,
    ok,
)
from api.routes.instances import IdempotencyKeyHeader, replayable
from api.schemas import (
    CancelTaskRequest,
    ClaimRequest,
    CompleteTaskRequest,
    DelegateRequest,
    TaskStatus,
    Urgency,
)
from application.commands import CancelTask, ClaimTask, CompleteTask, DelegateTask
from application.read_models import TaskFilter

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.get("", responses=ok(TaskPage, *AUTHENTICATED, 400))
def list_tasks(
    principal: Reader,
    container: ContainerDep,
    assignee: str | None = None,
    role: str | None = None,
    status: TaskStatus | None = None,
    urgency: Urgency | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> dict[str, Any]:
    """Tasks sorted by due time."""
    criteria = TaskFilter(assignee=assignee, role=role, status=status, urgency=urgency)
    page = container.tasks.list(principal.tenant, criteria, limit=limit, cursor=cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/{task_id}", responses=ok(TaskView, *AUTHENTICATED, 404))
def get_task(task_id: str, principal: Reader, container: ContainerDep) -> dict[str, Any]:
    """One task, with its form and due time."""
    return container.tasks.get(principal.tenant, task_id)


# Claim, delegate and complete answer with the task's instance.
_ON_TASK = ok(InstanceView, *WITH_BODY, 404, 409, description="The task's instance")


@router.post("/{task_id}/claim", responses=_ON_TASK)
def claim_task(
    task_id: str,
    principal: Operator,
    container: ContainerDep,
    body: ClaimRequest | None = Body(None),
) -> dict[str, Any]:
    """Claim for `user` (the caller by default; for someone else: admins only, recorded as
    an override); only the assignee or a holder of a candidate role may claim. Returns the
    instance."""
    actor = actor_of(principal)
    user = (body.user if body else None) or actor.id
    return container.tasks.claim(ClaimTask(principal.tenant, task_id, user, actor=actor))


@router.post("/{task_id}/delegate", responses=_ON_TASK)
def delegate_task(
    task_id: str,
    body: DelegateRequest,
    principal: Operator,
    container: ContainerDep,
) -> dict[str, Any]:
    """Hand the task to another assignee (recorded: who, and the new assignee); for whoever
    may complete it, or an admin. Returns the instance."""
    actor = actor_of(principal)
    return container.tasks.delegate(
        DelegateTask(principal.tenant, task_id, body.assignee, by=actor.id, actor=actor)
    )


@router.post(
    "/{task_id}/complete",
    responses=ok(
        InstanceView, *WITH_BODY, 404, 409, headers=REPLAYED, description="The task's instance"
    ),
)
def complete_task(
    task_id: str,
    body: CompleteTaskRequest,
    principal: Operator,
    container: ContainerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Decide an approval (`approved`/`rejected`) or submit a user task's form data; a
    repeated idempotency key replays the first result. Only the task's assignee, claimer or
    a holder of a candidate role (an admin: recorded as an override); a node's
    `distinct_from` refuses its starter or earlier approvers (403 separation-of-duties)."""
    actor = actor_of(principal)
    result, replayed = container.tasks.complete(
        CompleteTask(
            principal.tenant,
            task_id,
            outcome=body.outcome,
            data=body.data,
            comment=body.comment,
            user=actor.id,
            idempotency_key=body.idempotency_key or idempotency_key,
            actor=actor,
        )
    )
    return replayable(result, replayed)


@router.post("/{task_id}/cancel", responses=_ON_TASK)
def cancel_task(
    task_id: str,
    principal: Operator,
    container: ContainerDep,
    body: CancelTaskRequest | None = Body(None),
) -> dict[str, Any]:
    """Withdraw an open task (a write: `admin` or `operator`): the instance follows the
    node's route with outcome `cancelled`, or the node fails (its `error` route, else the
    instance). A `for_each` item's task counts as that item finished, outcome `cancelled`.
    An unknown task answers 404, one already closed 409."""
    reason = body.reason if body else None
    return container.tasks.cancel(
        CancelTask(principal.tenant, task_id, reason=reason, by=principal.actor_id)
    )
