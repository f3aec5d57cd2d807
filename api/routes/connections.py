"""`/v1/connections`: the caller's tenant's connection names and types (never settings)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import Admin, ContainerDep
from api.responses import AUTHENTICATED, ok
from api.responses_ops import ConnectionPage

router = APIRouter(prefix="/v1/connections", tags=["connections"])


@router.get("", responses=ok(ConnectionPage, *AUTHENTICATED))
def list_connections(principal: Admin, container: ContainerDep) -> dict[str, Any]:
    """The tenant's connections (WAYMARK_CONNECTIONS_FILE) by name, with their type: what a
    definition's `"connection"` may name. Settings and secrets are never shown. Admin only."""
    return {"items": container.connections.list(principal.tenant), "next_cursor": None}
