"""The FastAPI application. Nothing is built at import time: the container (database pool,
embedded PostgreSQL in development, ...) is built in the lifespan and closed on shutdown."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from api import observability, problems, security
from api.auth import PUBLIC, build_token_verifier
from api.job_sweeper import JobSweeper
from api.limits import BodySizeLimit
from api.observability import RequestMetrics
from api.request_guard import RequestGuard
from api.routes import (
    analytics,
    audit,
    bulk,
    callbacks,
    connections,
    console,
    definitions,
    feed,
    health,
    identity,
    incidents,
    instances,
    outbox,
    recovery,
    task_links,
    tasks,
    templates,
    webhooks,
)
from infrastructure import tracing
from infrastructure.container import Container
from infrastructure.gc_tuning import settle
from infrastructure.telemetry import configure_logging


class HostedWorkers(Protocol):
    """Workers running inside this process (`workers.in_process`, handed in by `api.cli`)."""

    @property
    def runners(self) -> Sequence[Any]: ...

    def stop(self) -> None: ...


def create_app(
    container_factory: Callable[[], Container],
    start_workers: Callable[[Container], HostedWorkers] | None = None,
    *,
    settle_heap: bool = False,
) -> FastAPI:
    """The API; `container_factory` runs once, at startup (e.g. `lambda: build_api(settings)`).

    `start_workers`, when given, starts workers beside the API once the container is built
    (on its core) and is stopped before the container closes; this module never imports
    `workers` itself. `settle_heap` (a `waymark serve` process, which serves this one app
    until it stops): once started, its start-up heap is frozen out of the garbage
    collector's scans (infrastructure/gc_tuning.py).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Blocking work (may start PostgreSQL and migrate): keep it off the event loop.
        container = await run_in_threadpool(container_factory)
        settings = container.settings
        configure_logging(
            getattr(settings, "log_level", "INFO"),
            fmt=getattr(settings, "log_format", "text"),
            levels=getattr(settings, "log_levels", ""),
        )
        app.state.container = container
        hosted: HostedWorkers | None = None
        sweeper: JobSweeper | None = None
        try:
            app.state.token_verifier = build_token_verifier(container.settings)  # None: off
            job_recovery = getattr(container, "job_recovery", None)
            if job_recovery is not None:  # the jobs of API processes that died
                lease = float(getattr(settings, "job_lease_seconds", 30.0))
                sweeper = JobSweeper(job_recovery, lease / 3).start()
            if start_workers is not None:
                hosted = await run_in_threadpool(start_workers, container)
                app.state.worker_runners = hosted.runners
            if settle_heap:
                settle(int(getattr(settings, "gc_gen0_threshold", 0)))
            yield
        finally:
            if sweeper is not None:
                sweeper.stop()
            if hosted is not None:
                await run_in_threadpool(hosted.stop)
            await run_in_threadpool(container.close)

    app = FastAPI(
        title="Waymark",
        version="0.1.0",
        description="Event-sourced workflow engine (HTTP API v1).",
        lifespan=lifespan,
        # operationIds are the route functions' names (`resume_bookmark`), which is what a
        # generated client calls its methods; FastAPI's default appends path and method.
        generate_unique_id_function=lambda route: route.name,
        openapi_tags=OPENAPI_TAGS,
        # FastAPI's own OpenTelemetry bridge asks, on every request, whether a provider is
        # configured (environment look-ups): off unless this process traces, where
        # FastAPIInstrumentor (below) makes the server spans as before.
        **({} if tracing.enabled() else _NO_NATIVE_TELEMETRY),
    )
    problems.install(app)
    # Added last = outermost: unhandled errors are caught around everything else; the
    # input guard reads bodies the size limit has already bounded.
    app.add_middleware(RequestGuard)
    app.add_middleware(BodySizeLimit, max_bytes=lambda: _max_body_bytes(app))
    app.add_middleware(problems.UnhandledErrors)
    # Tenant scope, timeout, rate limit, CORS, security headers (api/security.py).
    security.install(app)
    app.add_middleware(RequestMetrics)  # outermost: every answer counts, 429s and 500s too
    # The busiest routes first: a request is matched against the routes in this order, at
    # a cost per route passed (a callback behind four routers' 30-odd routes spent ~90 µs
    # of CPU matching, ~11 µs first). No route of one router matches a path of another's
    # (tests/unit/test_route_order.py), so the order changes only the cost.
    for module in (callbacks, instances, health, definitions, tasks, webhooks, analytics):
        app.include_router(module.router)
    app.include_router(outbox.router)
    app.include_router(templates.router)
    app.include_router(connections.router)
    app.include_router(feed.router)
    app.include_router(observability.router)
    app.include_router(audit.router)
    app.include_router(incidents.router)
    app.include_router(recovery.router)
    app.include_router(bulk.router)
    app.include_router(task_links.router)
    app.include_router(identity.router)
    app.include_router(console.router)

    if tracing.enabled():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # Server spans for every request but the probes and scrapes.
        FastAPIInstrumentor.instrument_app(app, excluded_urls="health,metrics")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False, dependencies=[PUBLIC])
    async def root() -> RedirectResponse:
        """A person opening the server's address finds the API's interactive docs."""
        return RedirectResponse("/docs", status_code=307)

    return app


# (FastAPI versions before that bridge have no `telemetry` argument: nothing to turn off.)
_NO_NATIVE_TELEMETRY: dict[str, Any] = (
    {
        "telemetry": {
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
        }
    }
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)

OPENAPI_TAGS = [
    {"name": "definitions", "description": "Publish, validate, list and toggle definitions"},
    {"name": "instances", "description": "Start, read, cancel instances; resume bookmarks"},
    {"name": "tasks", "description": "The task queue: claim, delegate, complete"},
    {"name": "task-links", "description": "Signed approve/reject links (no API key)"},
    {"name": "callbacks", "description": "Signed callbacks from external systems (no API key)"},
    {"name": "webhooks", "description": "Signed webhook triggers (no API key required)"},
    {"name": "events", "description": "Events that resume waits and start definitions"},
    {"name": "feed", "description": "Every stored event as CloudEvents, paged or streamed"},
    {"name": "analytics", "description": "Per-definition volumes, durations, SLA compliance"},
    {"name": "templates", "description": "The built-in template library"},
    {"name": "connections", "description": "Named per-tenant connections (admin; no secrets)"},
    {"name": "health", "description": "Probes (no API key)"},
    {"name": "identity", "description": "Who the API takes the caller for (tenant, roles)"},
    {"name": "audit", "description": "Who did which administrative act, when, from where"},
    {"name": "outbox", "description": "Events the Kafka publisher could not publish (operators)"},
    {
        "name": "recovery",
        "description": "Operator recovery: instance modification, version migration jobs, "
        "dry-run simulation",
    },
]


def end_event_streams(app: FastAPI) -> None:
    """Shutdown has begun: end the open feed streams now (uvicorn waits for open responses
    before it runs the lifespan's exit, and a stream would not end by itself)."""
    container = getattr(app.state, "container", None)
    if container is not None:
        container.feed_wakeups.end_streams()


def _max_body_bytes(app: FastAPI) -> int:
    return int(getattr(app.state.container.settings, "max_body_bytes", 1_048_576))
