"""Health probes for Kubernetes: liveness (the process answers) and readiness (it can
reach its database). No authentication: probes carry no credentials."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import get_container
from infrastructure.container import Container

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/health", tags=["health"])


async def components(container: Container) -> dict[str, dict[str, Any]]:
    try:
        await run_in_threadpool(container.check_database)
    except Exception as exc:
        logger.warning("health: database check failed: %s", exc)
        # The reason stays in the log: it may name hosts or users.
        database = {"status": "down", "error": type(exc).__name__}
    else:
        database = {"status": "up"}
    return {"database": database}


async def report(container: Container) -> JSONResponse:
    parts = await components(container)
    healthy = all(c["status"] == "up" for c in parts.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "components": parts},
        status_code=200 if healthy else 503,
    )


@router.get("")
async def health(container: Container = Depends(get_container)) -> JSONResponse:
    """Every component's status; 503 when one is down."""
    return await report(container)


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up and serving requests."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(container: Container = Depends(get_container)) -> JSONResponse:
    """Ready for traffic: the database answers. 503 (with each component's status) if not."""
    return await report(container)
