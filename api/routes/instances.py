"""`/v1/instances`: start, list, read, history, cancel, resume a bookmark."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import JSONResponse

from api.auth import Admin, ContainerDep, Operator, Reader
from api.direct_route import DirectRoute
from api.problems import ProblemError
from api.responses import (
    AUTHENTICATED,
    LOCATION,
    REPLAYED,
    WITH_BODY,
    ErasureView,
    HistoryPage,
    InstancePage,
    InstanceView,
    ResumeResult,
    ok,
)
from api.schemas import (
    CancelRequest,
    EraseRequest,
    InstanceCondition,
    InstanceStatus,
    ResumeRequest,
    StartInstanceRequest,
)
from application.commands import CancelInstance, ResumeBookmark, StartInstance
from application.errors import InstanceNotFoundError
from application.read_models import InstanceFilter
from application.views import jsonable
from domain import origin

router = APIRouter(prefix="/v1/instances", tags=["instances"])

REPLAYED_HEADER = "Idempotent-Replayed"


def parse_instance_id(raw: str) -> UUID:
    """A malformed id names no instance: 404, like an unknown one."""
    try:
        return UUID(raw)
    except ValueError:
        raise InstanceNotFoundError(raw) from None


def replayable(result: dict[str, Any], replayed: bool) -> JSONResponse:
    """The result of an idempotent command, flagged when it is a repeat of the first one."""
    headers = {REPLAYED_HEADER: "true"} if replayed else {}
    return JSONResponse(jsonable(result), headers=headers)


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="the body's `idempotency_key` wins if both"),
]


def start_instance(
    body: StartInstanceRequest,
    principal: Operator,
    container: ContainerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Start an instance: 201, or 200 with the same instance when the key was seen before."""
    view, created = container.instances.start(
        StartInstance(
            principal.tenant,
            body.definition,
            version=body.version,
            input=body.input,
            idempotency_key=body.idempotency_key or idempotency_key,
            correlation_id=body.correlation_id,
            started_by=origin.by_api(principal.key_name, user=principal.user),
        )
    )
    return JSONResponse(
        view,
        status_code=201 if created else 200,
        headers={"Location": f"/v1/instances/{view['id']}"},
    )


router.add_api_route(
    "",
    start_instance,
    methods=["POST"],
    status_code=201,
    responses={
        **ok(InstanceView, status=201, description="Started", headers=LOCATION),
        **ok(
            InstanceView,
            *WITH_BODY,
            404,
            409,
            description="Same idempotency key: the instance it started",
            headers=LOCATION,
        ),
    },
    # Its arguments read from the request without FastAPI's per-request dependency
    # resolution (api/direct_route.py): with the callback, the busiest route.
    route_class_override=DirectRoute,
)


@router.get("", responses=ok(InstancePage, *AUTHENTICATED, 400))
def list_instances(
    principal: Reader,
    container: ContainerDep,
    status: InstanceStatus | None = None,
    definition: str | None = None,
    correlation_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
    condition: Annotated[
        InstanceCondition | None,
        Query(
            description="`long_running`: suspended longer than WAYMARK_LONG_RUNNING_AFTER; "
            "`stuck`: not ended, no open bookmark, no scheduled activity. Oldest change "
            "first; the other filters do not apply."
        ),
    ] = None,
) -> dict[str, Any]:
    """Instances, newest first, filtered by status, definition, correlation id, creation;
    or those needing an operator (`condition`)."""
    if condition is not None and container.cleanup is not None:
        found = container.cleanup.list_condition(
            principal.tenant, condition, limit=limit, cursor=cursor
        )
        return {"items": jsonable(found.items), "next_cursor": found.next_cursor}
    criteria = InstanceFilter(
        status=status,
        definition=definition,
        correlation_id=correlation_id,
        created_after=created_after,
        created_before=created_before,
    )
    page = container.instances.list(principal.tenant, criteria, limit=limit, cursor=cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/{instance_id}", responses=ok(InstanceView, *AUTHENTICATED, 404))
def get_instance(
    instance_id: str,
    principal: Reader,
    container: ContainerDep,
    at_version: int | None = Query(None, ge=1, description="as it was after event N"),
    at: datetime | None = Query(None, description="as it was at this time"),
) -> dict[str, Any]:
    """State, variables, open bookmarks, output and error; with `at_version` or `at`, as
    it was then, rebuilt from its events (time travel, docs/operations-recovery.md)."""
    if (at_version is not None or at is not None) and container.recovery is not None:
        return container.recovery.instance_at(
            principal.tenant, parse_instance_id(instance_id), version=at_version, at=at
        )
    return container.instances.get(principal.tenant, parse_instance_id(instance_id))


@router.get(
    "/{instance_id}/history",
    responses=ok(HistoryPage, *AUTHENTICATED, 400, 404),
)
def get_history(
    instance_id: str,
    principal: Reader,
    container: ContainerDep,
    limit: int = Query(500, ge=1, le=500),
    cursor: str | None = None,
) -> dict[str, Any]:
    """The instance's events in order: the immutable audit trail."""
    entries, next_cursor = container.instances.history(
        principal.tenant, parse_instance_id(instance_id), limit=limit, cursor=cursor
    )
    items = [
        {
            "position": e.position,
            "version": e.version,
            "type": e.type,
            "timestamp": e.timestamp,
            "data": e.data,
        }
        for e in entries
    ]
    return {"items": jsonable(items), "next_cursor": next_cursor}


@router.post(
    "/{instance_id}/cancel",
    responses=ok(
        InstanceView, *WITH_BODY, 404, 409, headers=REPLAYED, description="The cancelled instance"
    ),
)
def cancel_instance(
    instance_id: str,
    principal: Operator,
    container: ContainerDep,
    body: CancelRequest | None = Body(None),
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Cancel a running or suspended instance (its open bookmarks and tasks too); a repeated
    idempotency key replays the first result."""
    body = body or CancelRequest()
    result, replayed = container.instances.cancel(
        CancelInstance(
            principal.tenant,
            parse_instance_id(instance_id),
            body.reason or f"cancelled by {principal.actor_id}",
            idempotency_key=body.idempotency_key or idempotency_key,
        )
    )
    return replayable(result, replayed)


@router.post(
    "/{instance_id}/bookmarks/{bookmark_id}/resume",
    responses=ok(ResumeResult, *WITH_BODY, 404, 409, headers=REPLAYED),
)
def resume_bookmark(
    instance_id: str,
    bookmark_id: str,
    principal: Operator,
    container: ContainerDep,
    body: ResumeRequest | None = Body(None),
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Resume a waiting step with a payload; a repeated idempotency key replays the result."""
    body = body or ResumeRequest()
    result, replayed = container.instances.resume(
        ResumeBookmark(
            principal.tenant,
            parse_instance_id(instance_id),
            bookmark_id,
            body.payload,
            idempotency_key=body.idempotency_key or idempotency_key,
            source=f"api:{principal.actor_id}",
        )
    )
    return replayable(result, replayed)


@router.post(
    "/{instance_id}/erase",
    responses=ok(ErasureView, *WITH_BODY, 404, 409, description="Erased; the audit entry"),
)
def erase_instance(
    instance_id: str,
    principal: Admin,
    container: ContainerDep,
    body: EraseRequest | None = Body(None),
) -> dict[str, Any]:
    """Erase an ended instance completely (GDPR): its events and read models go, an audit
    entry stays. Admin keys only; 409 while the instance is running or suspended."""
    if "admin" not in principal.roles or container.cleanup is None:
        raise ProblemError(403, "forbidden", "erasing an instance needs a key with role admin")
    body = body or EraseRequest()
    return jsonable(
        container.cleanup.erase(
            parse_instance_id(instance_id),
            tenant=principal.tenant,
            erased_by=principal.key_name,
            reason=body.reason,
        )
    )
