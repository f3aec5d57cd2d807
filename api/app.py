"""The FastAPI application. Nothing is built at import time: the container (database pool,
embedded PostgreSQL in development, ...) is built in the lifespan and closed on shutdown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from api import problems
from api.limits import BodySizeLimit
from api.routes import callbacks, definitions, health, instances, tasks
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
        worker = None
        try:
            if settings.workers_in_process:
                worker = _start_task_worker(container)
            yield
        finally:
            if worker is not None:
                await run_in_threadpool(_stop_task_worker, worker)
            await run_in_threadpool(container.close)

    app = FastAPI(
        title="Waymark",
        version="0.1.0",
        description="Event-sourced workflow engine (HTTP API v1).",
        lifespan=lifespan,
    )
    problems.install(app)
    # Added last = outermost: unhandled errors are caught around everything else.
    app.add_middleware(BodySizeLimit, max_bytes=lambda: _max_body_bytes(app))
    app.add_middleware(problems.UnhandledErrors)
    for module in (health, definitions, instances, tasks, callbacks):
        app.include_router(module.router)
    return app


def configure_logging(level: str) -> None:
    """Plain-text logs at the configured level (uvicorn keeps its own handlers)."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger().setLevel(level.upper())


def _max_body_bytes(app: FastAPI) -> int:
    return int(getattr(app.state.container.settings, "max_body_bytes", 1_048_576))


def _start_task_worker(container: Container) -> Any:
    # Development mode runs the task worker inside `waymark serve`.
    from workers.task_worker import TaskWorker

    worker = TaskWorker(container)
    # A commit that schedules a service task wakes the worker instead of waiting a poll.
    container.runner.on_activities_scheduled.append(worker.wake)
    worker.runner.start_in_thread()
    logger.info("task worker running in-process (%s)", worker.worker_id)
    return worker


def _stop_task_worker(worker: Any) -> None:
    if not worker.runner.stop(WORKER_STOP_TIMEOUT_SECONDS):
        logger.warning("task worker did not stop within %g s", WORKER_STOP_TIMEOUT_SECONDS)
    worker.close()
