"""`/v1/callbacks/{token}` (HMAC-signed, no API key) and `/v1/events` (API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from api.auth import PUBLIC, ContainerDep, Operator
from api.direct_route import DirectRoute, run_on_thread
from api.responses import REPLAYED, WITH_BODY, EventResult, ResumeResult, ok
from api.routes.instances import IdempotencyKeyHeader, replayable
from api.schemas import EventRequest
from application.commands import DeliverCallback, DeliverEvent

router = APIRouter()

SIGNATURE = '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<path>.<raw body>">` (SPEC §4)'
SignatureHeader = Annotated[str | None, Header(alias="Waymark-Signature", description=SIGNATURE)]
# The body is read raw (the signature covers its bytes), so FastAPI sees no body parameter:
# declared here for the OpenAPI document, so a generated client can send one.
RAW_JSON_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {"description": "any JSON value"}}},
    }
}


async def deliver_callback(
    token: str,
    request: Request,
    container: ContainerDep,
    signature: SignatureHeader = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Resume the bookmark whose token this is. The signature over the raw body is the
    credential, so the body is read as bytes, exactly as signed."""
    body = await request.body()
    result, replayed = await run_on_thread(
        container.callbacks.callback,
        DeliverCallback(token, body, signature, idempotency_key, path=request.url.path),
    )
    return replayable(result, replayed)


router.add_api_route(
    "/v1/callbacks/{token}",
    deliver_callback,
    methods=["POST"],
    tags=["callbacks"],
    # No API key: the signature is the credential (401 when it is missing or wrong).
    responses=ok(ResumeResult, 400, 401, 404, 409, 413, 422, 500, 503, headers=REPLAYED),
    openapi_extra=RAW_JSON_BODY,
    dependencies=[PUBLIC],
    # Called with its plain-string arguments read from the request, without FastAPI's
    # per-request dependency resolution: the busiest keyless route (api/direct_route.py).
    route_class_override=DirectRoute,
)


@router.post(
    "/v1/events",
    tags=["events"],
    responses=ok(EventResult, *WITH_BODY, headers=REPLAYED),
)
def deliver_event(
    body: EventRequest,
    principal: Operator,
    container: ContainerDep,
    idempotency_key: IdempotencyKeyHeader = None,
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
