"""`/v1/audit`: the tenant's audit log, newest first (admin only; docs/security.md).

The response models live here, not in api/responses.py (which is at its size budget).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import Admin, ContainerDep
from api.problems import ProblemError
from api.responses import AUTHENTICATED, Open, ok

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditEntryView(Open):
    """One administrative act: who, when, what, from where."""

    id: int
    tenant: str
    recorded_at: datetime
    actor: str
    action: str
    target: str
    client_ip: str | None
    user_agent: str | None
    details: dict[str, Any]


class AuditPage(Open):
    items: list[AuditEntryView]
    next_cursor: str | None


@router.get("", responses=ok(AuditPage, *AUTHENTICATED, 400))
def list_audit(
    principal: Admin,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    target: Annotated[str | None, Query(max_length=300)] = None,
) -> dict[str, Any]:
    """The tenant's administrative acts, newest first; filter by `action` (e.g.
    `definition.published`) and/or `target` (e.g. `definition:invoice`). Admin only."""
    if container.audit is None:
        raise ProblemError(404, "not-found", "this process has no audit log")
    page = container.audit.list(principal.tenant, limit, cursor, action=action, target=target)
    return {"items": [e.as_dict() for e in page.items], "next_cursor": page.next_cursor}
