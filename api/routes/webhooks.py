"""`/v1/webhooks/{definition}`: HMAC-signed starts; the tenant from an API key or a header."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from api.auth import BEARER_SCHEME, CHALLENGE, bearer_key, find_principal, get_container
from api.problems import ProblemError
from api.routes.instances import REPLAYED_HEADER
from application.commands import TriggerWebhook
from infrastructure.container import Container

router = APIRouter(tags=["webhooks"])


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


@router.post(
    "/v1/webhooks/{definition}",
    status_code=201,
    responses={200: {"description": "a redelivery with the same Idempotency-Key"}},
)
async def webhook(
    definition: str,
    request: Request,
    signature: str | None = Header(None, alias="Waymark-Signature"),
    tenant: str | None = Header(None, alias="Waymark-Tenant"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    container: Container = Depends(get_container),
    _: HTTPAuthorizationCredentials | None = Security(BEARER_SCHEME),
) -> JSONResponse:
    """Start the definition with the body as input: 201, or 200 for a redelivery."""
    body = await request.body()  # the signature covers the raw bytes, exactly as sent
    view, created = await run_in_threadpool(
        container.webhooks.trigger,
        TriggerWebhook(
            webhook_tenant(request, container, tenant), definition, body, signature, idempotency_key
        ),
    )
    headers = {"Location": f"/v1/instances/{view['id']}"}
    if not created:
        headers[REPLAYED_HEADER] = "true"
    return JSONResponse(view, status_code=201 if created else 200, headers=headers)
