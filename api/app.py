"""The FastAPI application. Nothing is built at import time: the container (database pool,
embedded PostgreSQL in development, ...) is built in the lifespan and closed on shutdown."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from api import problems
from api.limits import BodySizeLimit
from api.request_guard import RequestGuard
from api.routes import (
    analytics,
    callbacks,
    definitions,
    health,
    instances,
    tasks,
    templates,
    webhooks,
)
from infrastructure.container import Container

logger = logging.getLogger(__name__)

# How long shutdown waits for the in-process task worker to finish its batch.
WORKER_STOP_TIMEOUT_SECONDS = 30.0


def create_app(container_factory: Callable[[], Container]) -> FastAPI:
    """The API; `container_factory` runs once, at startup (e.g. `lambda: bootstrap(settings)`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Blocking work (may start PostgreSQL and migrate): keep it off the event loop.
        container = await run_in_threadpool(container_factory)
        settings = container.settings
        configure_logging(getattr(settings, "log_level", "INFO"))
        app.state.container = container
        workers: list[Any] = []
        try:
            if settings.workers_in_process:
                workers = _start_workers(container)
                app.state.worker_runners = [worker.runner for worker in workers]
            yield
        finally:
            for worker in workers:
                await run_in_threadpool(_stop_worker, worker)
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
    )
    problems.install(app)
    # Added last = outermost: unhandled errors are caught around everything else; the
    # input guard reads bodies the size limit has already bounded.
    app.add_middleware(RequestGuard)
    app.add_middleware(BodySizeLimit, max_bytes=lambda: _max_body_bytes(app))
    app.add_middleware(problems.UnhandledErrors)
    for module in (health, definitions, instances, tasks, callbacks, webhooks, analytics):
        app.include_router(module.router)
    app.include_router(templates.router)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def root() -> RedirectResponse:
        """A person opening the server's address finds the API's interactive docs."""
        return RedirectResponse("/docs", status_code=307)

    return app


OPENAPI_TAGS = [
    {"name": "definitions", "description": "Publish, validate, list and toggle definitions"},
    {"name": "instances", "description": "Start, read, cancel instances; resume bookmarks"},
    {"name": "tasks", "description": "The task queue: claim, delegate, complete"},
    {"name": "callbacks", "description": "Signed callbacks from external systems (no API key)"},
    {"name": "webhooks", "description": "Signed webhook triggers (no API key required)"},
    {"name": "events", "description": "Events that resume waits and start definitions"},
    {"name": "analytics", "description": "Per-definition volumes, durations, SLA compliance"},
    {"name": "templates", "description": "The built-in template library"},
    {"name": "health", "description": "Probes (no API key)"},
]


def configure_logging(level: str) -> None:
    """Plain-text logs at the configured level (uvicorn keeps its own handlers)."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger().setLevel(level.upper())
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCallbackTokens) for f in access.filters):
        access.addFilter(RedactCallbackTokens())


class RedactCallbackTokens(logging.Filter):
    """Callback tokens are bearer capabilities: keep them out of the access log."""

    PATTERN = re.compile(r"(/v1/callbacks/)[^/?\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub(r"\1<redacted>", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def _max_body_bytes(app: FastAPI) -> int:
    return int(getattr(app.state.container.settings, "max_body_bytes", 1_048_576))


def _start_workers(container: Container) -> list[Any]:
    """Development mode runs the task and timer workers inside `waymark serve`."""
    from domain.instance import WorkflowInstance
    from workers.task_worker import TaskWorker
    from workers.timer_worker import TimerWorker

    tasks, timers = TaskWorker(container), TimerWorker(container)

    def wake(events: list[WorkflowInstance.Event]) -> None:
        # A commit that scheduled work wakes its worker instead of leaving it to the poll.
        if any(isinstance(e, WorkflowInstance.ActivityScheduled) for e in events):
            tasks.wake()
        if any(isinstance(e, WorkflowInstance.BookmarkCreated) for e in events):
            timers.wake()

    container.runner.on_commit.append(wake)
    for worker in (tasks, timers):
        worker.runner.start_in_thread()
    logger.info("task and timer workers running in-process (%s)", tasks.worker_id)
    return [tasks, timers]


def _stop_worker(worker: Any) -> None:
    if not worker.runner.stop(WORKER_STOP_TIMEOUT_SECONDS):
        logger.warning(
            "%s did not stop within %g s", worker.runner.name, WORKER_STOP_TIMEOUT_SECONDS
        )
    worker.close()
