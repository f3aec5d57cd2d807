"""Health probes for Kubernetes: liveness (the process answers) and readiness (it can
reach its database, whose schema is at the revision this code expects). No authentication:
probes carry no credentials. Each probe also answers HEAD."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import PUBLIC, ContainerDep
from api.responses import ok
from api.responses_ops import HealthReport, Liveness
from infrastructure.container import Container
from infrastructure.health import (
    breaker_component,
    database_component,
    instance_counts,
    outbox_component,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/health", tags=["health"], dependencies=[PUBLIC])


async def components(container: Container) -> dict[str, dict[str, Any]]:
    started = time.perf_counter()
    database = await _database(container)
    database["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return {"database": database}


async def _database(container: Container) -> dict[str, Any]:
    return await run_in_threadpool(database_component, container.check_database)


def worker_status(runners: list[Any]) -> dict[str, dict[str, Any]]:
    """The in-process workers' heartbeat: failing ticks in a row, seconds since the last one."""
    status = {}
    for runner in runners:
        since = runner.seconds_since_tick()
        status[runner.name] = {
            "status": "up" if runner.consecutive_failures == 0 else "failing",
            "consecutive_failures": runner.consecutive_failures,
            "seconds_since_tick": None if since is None else round(since, 3),
        }
    return status


async def outbox_status(container: Container) -> dict[str, Any] | None:
    """The Kafka outbox from its stored position: pending events, lag, breaker state.

    Absent without KAFKA_BOOTSTRAP_SERVERS (no publisher); `degraded` while the publisher's circuit
    breaker is not closed (the broker is failing: events wait in the database, none is
    lost); never a reason for 503, since the API itself still serves."""
    if container.outbox is None or not container.settings.kafka_bootstrap_servers:
        return None
    try:
        status = await run_in_threadpool(container.outbox.status)
    except Exception as exc:  # the database component reports the outage itself
        logger.warning("health: reading the outbox position failed: %s", exc)
        return None
    return outbox_component(status, container.settings.ready_max_outbox_lag)


async def report(
    container: Container,
    workers: dict[str, Any] | None = None,
    timers: dict[str, Any] | None = None,
    cleanup: dict[str, Any] | None = None,
    breakers: dict[str, Any] | None = None,
    instances: dict[str, Any] | None = None,
) -> JSONResponse:
    parts = await components(container)
    healthy = all(c["status"] == "up" for c in parts.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "unavailable", "components": parts}
    if timers is not None:
        parts["timers"] = timers
    if cleanup is not None:
        parts["cleanup"] = cleanup
    outbox = await _timed(outbox_status(container)) if healthy else None
    if outbox is not None:
        parts["outbox"] = outbox
        if outbox["status"] == "down":  # lag past WAYMARK_READY_MAX_OUTBOX_LAG
            healthy = False
            body["status"] = "unavailable"
        elif outbox["status"] == "degraded":
            body["status"] = "degraded"
    if breakers is not None:
        parts["breakers"] = breakers
        if healthy and breakers["status"] != "up":
            body["status"] = "degraded"  # one target's outage: still ready for traffic
    if instances is not None:
        parts["instances"] = instances
    if workers:
        # A failing worker degrades the process but must not take it out of the load
        # balancer: the API still serves, and readiness asks only about the database.
        parts["workers"] = {"status": "up", "workers": workers}
        if healthy and any(w["status"] != "up" for w in workers.values()):
            body["status"] = "degraded"
            parts["workers"]["status"] = "degraded"
    return JSONResponse(body, status_code=200 if healthy else 503)


# 503 carries the same report, with the failing component marked `down`.
_REPORT = {
    **ok(HealthReport, description="Every component is up (or only a worker is failing)"),
    503: {"model": HealthReport, "description": "The database is down"},
}


@router.get("", responses=_REPORT)
@router.head("", include_in_schema=False)
async def health(request: Request, container: ContainerDep) -> JSONResponse:
    """Every component's status (database; in-process workers, breakers); 503 when the
    database is down."""
    runners = getattr(request.app.state, "worker_runners", [])
    return await report(
        container,
        worker_status(runners),
        await timer_status(container),
        cleanup=await cleanup_status(container),
        breakers=breaker_status(container),
        instances=await run_in_threadpool(instance_counts),
    )


async def cleanup_status(container: Container) -> dict[str, Any] | None:
    """The last cleanup run (when, what it deleted) and the instances needing an operator:
    suspended longer than WAYMARK_LONG_RUNNING_AFTER, and stuck ones (counted here until
    metrics exist). Informational: the component stays `up`."""
    if container.cleanup is None:
        return None
    service = container.cleanup
    try:
        last_run = await run_in_threadpool(service.last_run)
        counts = await run_in_threadpool(service.condition_counts)
    except Exception as exc:  # the database component reports the outage itself
        logger.warning("health: reading the cleanup state failed: %s", exc)
        return None
    return {"status": "up", "last_run": last_run, "instances": counts}


def breaker_status(container: Container) -> dict[str, Any]:
    """The circuit breakers of this process's task workers, per action target.

    An open breaker is a target's outage, not this process's: the component stays `up`
    and the activities bound for it wait (docs/actions.md). Standalone workers' breakers
    are not shown here (they log each state change)."""
    return breaker_component(container.core.breakers.states())


async def timer_status(container: Container) -> dict[str, Any] | None:
    """Timers set aside after a failed firing (they wait for an operator, docs/api.md).

    They are one tenant's bad data, not an outage: the component stays `up` and shows the
    count (the worker logs each one with its error)."""
    try:
        count = await run_in_threadpool(container.timers.set_aside_count)
    except Exception as exc:  # the database component reports the outage itself
        logger.warning("health: counting set-aside timers failed: %s", exc)
        return None
    return {"status": "up", "set_aside": count}


@router.get("/live", responses=ok(Liveness))
@router.head("/live", include_in_schema=False)
async def live() -> dict[str, str]:
    """The process is up and serving requests."""
    return {"status": "ok"}


@router.get("/ready", responses=_REPORT)
@router.head("/ready", include_in_schema=False)
async def ready(container: ContainerDep) -> JSONResponse:
    """Ready for traffic: the database answers (and the outbox lag is within
    WAYMARK_READY_MAX_OUTBOX_LAG when set); breakers are reported, an open one degrades but
    keeps the process in traffic. 503 (with each component's status) if not ready."""
    return await report(container, breakers=breaker_status(container))


async def _timed(check: Awaitable[dict[str, Any] | None]) -> dict[str, Any] | None:
    started = time.perf_counter()
    component = await check
    if component is not None:
        component["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return component
