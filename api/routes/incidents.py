"""Operator recovery: `GET /v1/incidents`, `POST /v1/instances/{id}/retry` and `/skip`
(application.recovery). Time travel is a query of `GET /v1/instances/{id}`."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from api.auth import ContainerDep, Operator, Reader
from api.problems import ProblemError
from api.responses import AUTHENTICATED, REPLAYED, WITH_BODY, ok
from api.responses_ops import IncidentPage, RecoveredInstanceView
from api.routes.instances import IdempotencyKeyHeader, parse_instance_id, replayable
from api.schemas import IncidentStatus, RetryRequest, SkipRequest
from application.commands import RetryNode, SkipNode
from application.read_models import IncidentFilter
from application.recovery import RecoveryService

router = APIRouter(tags=["instances"])


def recovery_of(container: Any) -> RecoveryService:
    if container.recovery is None:  # pragma: no cover - every API container builds one
        raise ProblemError(503, "Recovery unavailable", "recovery is not configured")
    return container.recovery


@router.get("/v1/incidents", responses=ok(IncidentPage, *AUTHENTICATED, 400))
def list_incidents(
    principal: Reader,
    container: ContainerDep,
    definition: str | None = None,
    node_id: str | None = None,
    instance_id: UUID | None = None,
    status: IncidentStatus = "open",
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> dict[str, Any]:
    """Incidents of the tenant, oldest first (open ones unless `status` says otherwise):
    the failed node, its error and the instance."""
    criteria = IncidentFilter(
        definition=definition, node_id=node_id, instance_id=instance_id, status=status
    )
    page = recovery_of(container).list_incidents(
        principal.tenant, criteria, limit=limit, cursor=cursor
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.post(
    "/v1/instances/{instance_id}/retry",
    responses=ok(RecoveredInstanceView, *WITH_BODY, 404, 409, 422, headers=REPLAYED),
)
def retry_instance(
    instance_id: str,
    principal: Operator,
    container: ContainerDep,
    body: RetryRequest | None = Body(None),
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Retry the failed node of an instance held as an incident, or of a FAILED instance
    (reopened); `variables` are merged first. Recorded as `IncidentRetried` with the API
    key's name and the `reason`. A repeat with the same idempotency key and body replays
    the first answer (`Idempotent-Replayed: true`); the key with another body: 422."""
    body = body or RetryRequest()
    result, replayed = recovery_of(container).retry(
        RetryNode(
            principal.tenant,
            parse_instance_id(instance_id),
            variables=body.variables,
            incident_id=body.incident_id,
            actor=principal.actor_id,
            reason=body.reason,
            idempotency_key=body.idempotency_key or idempotency_key,
        )
    )
    return replayable(result, replayed)


@router.post(
    "/v1/instances/{instance_id}/skip",
    responses=ok(RecoveredInstanceView, *WITH_BODY, 404, 409, 422, headers=REPLAYED),
)
def skip_node(
    instance_id: str,
    principal: Operator,
    container: ContainerDep,
    body: SkipRequest | None = Body(None),
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Complete the failed node with `result` (and `outcome`) instead of running it, and
    go on from it. Recorded as `IncidentSkipped` with the API key's name and the `reason`.
    A repeat with the same idempotency key and body replays the first answer; the key with
    another body: 422."""
    body = body or SkipRequest()
    result, replayed = recovery_of(container).skip(
        SkipNode(
            principal.tenant,
            parse_instance_id(instance_id),
            result=body.result,
            outcome=body.outcome,
            incident_id=body.incident_id,
            actor=principal.actor_id,
            reason=body.reason,
            idempotency_key=body.idempotency_key or idempotency_key,
        )
    )
    return replayable(result, replayed)
