"""`/v1/analytics`: per-definition volumes, durations, SLA compliance and open tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from api.auth import ContainerDep, Reader
from api.responses import AUTHENTICATED, ok
from api.responses_ops import AnalyticsReport

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])


@router.get("", responses=ok(AnalyticsReport, *AUTHENTICATED))
def get_analytics(
    principal: Reader,
    container: ContainerDep,
    definition: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> dict[str, Any]:
    """One item per definition with instances created in [created_after, created_before)."""
    return container.analytics.report(
        principal.tenant,
        definition=definition,
        created_after=created_after,
        created_before=created_before,
    )
