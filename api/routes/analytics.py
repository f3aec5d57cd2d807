"""`/v1/analytics`: per-definition volumes, durations, SLA compliance and open tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends

from api.auth import authorize, get_container
from infrastructure.container import Container, Principal

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])


@router.get("")
def get_analytics(
    definition: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    principal: Principal = Depends(authorize),
    container: Container = Depends(get_container),
) -> dict[str, Any]:
    """One item per definition with instances created in [created_after, created_before)."""
    return container.analytics.report(
        principal.tenant,
        definition=definition,
        created_after=created_after,
        created_before=created_before,
    )
