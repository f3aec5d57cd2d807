"""`/v1/callbacks/{token}` (HMAC-signed, no API key) and `/v1/events` (API key)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import authorize, get_container
from api.routes.instances import replayable
from api.schemas import EventRequest
from application.commands import DeliverCallback, DeliverEvent
from infrastructure.container import Container, Principal

router = APIRouter(tags=["callbacks"])


@router.post("/v1/callbacks/{token}")
async def callback(
    token: str,
    request: Request,
    signature: str | None = Header(None, alias="Waymark-Signature"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    container: Container = Depends(get_container),
) -> JSONResponse:
    """Resume the bookmark whose token this is. The signature over the raw body is the
    credential, so the body is read as bytes, exactly as signed."""
    body = await request.body()
    result, replayed = await run_in_threadpool(
        container.callbacks.callback, DeliverCallback(token, body, signature, idempotency_key)
    )
    return replayable(result, replayed)


@router.post("/v1/events")
def deliver_event(
    body: EventRequest,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    principal: Principal = Depends(authorize),
    container: Container = Depends(get_container),
) -> JSONResponse:
    """Resume matching `wait` nodes and start definitions triggered by the event type."""
    result, replayed = container.instances.deliver_event(
        DeliverEvent(
            principal.tenant,
            body.type,
            correlation=body.correlation,
            payload=body.payload,
            idempotency_key=body.idempotency_key or idempotency_key,
        )
    )
    return replayable(result, replayed)
