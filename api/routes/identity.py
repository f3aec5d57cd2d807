"""`GET /v1/whoami`: who the API takes the caller for (the console shows it after sign-in)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from api.auth import Reader
from api.responses import AUTHENTICATED, Open, ok

router = APIRouter(prefix="/v1", tags=["identity"])


class WhoAmIView(Open):
    """Who the API takes the caller for."""

    tenant: str
    roles: list[str]
    kind: Literal["key", "user"]
    name: str
    user: str | None


@router.get("/whoami", responses=ok(WhoAmIView, *AUTHENTICATED))
async def whoami(principal: Reader) -> dict[str, Any]:
    """The caller's tenant, roles and name (a key's non-secret name, or the token's user);
    reads nothing but the credentials."""
    return {
        "tenant": principal.tenant,
        "roles": sorted(principal.roles),
        "kind": principal.kind,
        "name": principal.actor_id,
        "user": principal.user,
    }
