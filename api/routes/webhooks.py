"""`/v1/webhooks/{definition}`: HMAC-signed starts; the tenant from an API key or a header."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import CHALLENGE, PUBLIC, ContainerDep, bearer_key, find_principal
from api.problems import ProblemError
from api.responses import LOCATION, REPLAYED, InstanceView, ok
from api.routes.callbacks import RAW_JSON_BODY, SignatureHeader
from api.routes.instances import REPLAYED_HEADER, IdempotencyKeyHeader
from application.commands import TriggerWebhook
from infrastructure.container import Container

# No role: the signature is the credential (a key, when sent, only names the tenant).
router = APIRouter(tags=["webhooks"], dependencies=[PUBLIC])


def webhook_tenant(request: Request, container: Container, named: str | None) -> str | None:
    """The tenant of a valid API key when one is sent, else the `Waymark-Tenant` header."""
    key = bearer_key(request.headers.get("authorization"))
    if key is None:
        return named
    principal = find_principal(container.api_keys, key)
    if principal is None:
        raise ProblemError(
            401, "unauthorized", "the API key is not valid", headers={"WWW-Authenticate": CHALLENGE}
        )
    return principal.tenant


TenantHeader = Annotated[
    str | None,
    Header(alias="Waymark-Tenant", description="the tenant, when no API key is sent"),
]


@router.post(
    "/v1/webhooks/{definition}",
    status_code=201,
    responses={
        **ok(InstanceView, status=201, description="Started", headers=LOCATION),
        **ok(
            InstanceView,
            400,
            401,
            404,
            409,
            413,
            422,
            500,
            503,
            description="A redelivery with the same Idempotency-Key: the instance it started",
            headers={**LOCATION, **REPLAYED},
        ),
    },
    # Signed, not authenticated: no security requirement. An API key may still be sent (it
    # names the tenant instead of Waymark-Tenant), but `[{}, bearer]` makes generated
    # clients demand one.
    openapi_extra={**RAW_JSON_BODY, "security": []},
)
async def trigger_webhook(
    definition: str,
    request: Request,
    container: ContainerDep,
    signature: SignatureHeader = None,
    tenant: TenantHeader = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Start the definition with the body as input: 201, or 200 for a redelivery."""
    body = await request.body()  # the signature covers the raw bytes, exactly as sent
    view, created = await run_in_threadpool(
        container.webhooks.trigger,
        TriggerWebhook(
            webhook_tenant(request, container, tenant),
            definition,
            body,
            signature,
            idempotency_key,
            path=request.url.path,
        ),
    )
    headers = {"Location": f"/v1/instances/{view['id']}"}
    if not created:
        headers[REPLAYED_HEADER] = "true"
    return JSONResponse(view, status_code=201 if created else 200, headers=headers)
