"""`GET /metrics` (Prometheus text format) and the HTTP request metrics middleware.

The `route` label is the path template (`/v1/instances/{instance_id}`), never the raw path:
ids and callback tokens stay out of the metrics (and their cardinality bounded).
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import PUBLIC
from infrastructure import metrics
from infrastructure.telemetry import begin_log_context, end_log_context

router = APIRouter(tags=["health"])


# Public like the health probes (Prometheus scrapes without a key): it exposes counts, never
# ids or tokens; restrict it at the network (k8s/base NetworkPolicy) where that matters.
@router.get("/metrics", include_in_schema=False, dependencies=[PUBLIC])
async def prometheus_metrics() -> Response:
    """Every metric of this process, and the database-derived gauges (cached)."""
    body, content_type = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=content_type)


class RequestMetrics:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        token = begin_log_context()  # the request's tenant and instance (api/auth.py binds)
        try:
            await self.app(scope, receive, sending)
        finally:
            end_log_context(token)
            metrics.HTTP_IN_FLIGHT.dec()
            route = _route_of(scope)
            method = scope.get("method", "GET")
            metrics.child(metrics.HTTP_REQUESTS, method, route, str(status["code"])).inc()
            metrics.child(metrics.HTTP_DURATION, method, route).observe(
                time.perf_counter() - started
            )


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
