"""Health checks shared by every process: each component's status, description and the time
its check took; which of them decide readiness.

Statuses: `up`, `degraded` (works, but an operator should look: a breaker is open, the
outbox lags), `down` (this process cannot do its job: the database is unreachable). The
report is `ok`, `degraded` or `unavailable`; readiness fails (503) only on a `down`
component whose check is `critical` (the database; the outbox lag past
`WAYMARK_READY_MAX_OUTBOX_LAG` when that is set). An open breaker is one target's outage,
not this process's, so it degrades the report without taking the process out of traffic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infrastructure import metrics
from infrastructure.postgres.migrate import SchemaNotCurrentError

if TYPE_CHECKING:
    from infrastructure.container import Core

logger = logging.getLogger(__name__)

Component = dict[str, Any]


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], Component | None]  # None: nothing to report (component absent)
    critical: bool = False


@dataclass(frozen=True)
class Report:
    status: str  # ok | degraded | unavailable
    ready: bool
    components: dict[str, Component]

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "components": self.components}


def evaluate(checks: Iterable[Check]) -> Report:
    components: dict[str, Component] = {}
    ready = True
    degraded = False
    for check in checks:
        started = time.perf_counter()
        try:
            component = check.run()
        except Exception as exc:  # a check that raises reports its component down
            logger.warning("health: %s check failed: %s", check.name, exc)
            component = {"status": "down", "error": type(exc).__name__}
        if component is None:
            continue
        component.setdefault("description", _default_description(check.name, component))
        component["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        components[check.name] = component
        if component["status"] == "down" and check.critical:
            ready = False
        elif component["status"] != "up":
            degraded = True
    status = "unavailable" if not ready else "degraded" if degraded else "ok"
    return Report(status, ready, components)


def _default_description(name: str, component: Component) -> str:
    return f"{name} is {component['status']}"


def database_component(check_database: Callable[[], None]) -> Component:
    """The database's component of a health report (the API's and every worker's)."""
    try:
        check_database()
    except SchemaNotCurrentError as exc:
        logger.warning("health: %s", exc)
        return {
            "status": "down",
            "description": "the database schema is not the one this code expects",
            "error": type(exc).__name__,
            "schema_revision": sorted(exc.found),
            "expected_revision": sorted(exc.expected),
        }
    except Exception as exc:
        logger.warning("health: database check failed: %s", exc)
        # The reason stays in the log: it may name hosts or users.
        return {
            "status": "down",
            "description": "the database does not answer",
            "error": type(exc).__name__,
        }
    return {"status": "up", "description": "the database answers"}


def database_check(core: Core) -> Check:
    def run() -> Component:
        return database_component(core.check_database)

    return Check("database", run, critical=True)


def breaker_component(states: dict[str, dict[str, Any]]) -> Component:
    """Every circuit breaker of this process, each with a sentence an operator can act on."""
    targets = {}
    for target, item in states.items():
        state = item["state"]
        description = f"circuit breaker is {state}"
        if state == "open" and item.get("half_open_at"):
            description += f" until {item['half_open_at']}"
        targets[target] = {**item, "description": description}
    not_closed = [t for t, item in targets.items() if item["state"] != "closed"]
    if not not_closed:
        return {
            "status": "up",
            "description": "every circuit breaker is closed",
            "open": 0,
            "targets": targets,
        }
    described = "; ".join(f"{t}: {targets[t]['description']}" for t in not_closed)
    return {
        "status": "degraded",
        "description": described,
        "open": len(not_closed),
        "targets": targets,
    }


def breakers_check(core: Core) -> Check:
    return Check("breakers", lambda: breaker_component(core.breakers.states()))


def outbox_component(status: Any, max_lag: float) -> Component:
    lagging = max_lag > 0 and status.lag_seconds > max_lag
    state = "up"
    description = f"{status.pending} event(s) pending, lag {status.lag_seconds:.1f} s"
    if status.breaker_state != "closed":
        state = "degraded"
        description = f"the publisher's circuit breaker is {status.breaker_state}; " + description
    if lagging:
        state = "down"
        description += f" (more than WAYMARK_READY_MAX_OUTBOX_LAG = {max_lag:g} s)"
    return {"status": state, "description": description, **status.as_dict()}


def instance_counts() -> Component | None:
    """Instances by status, from the cached system gauges (None before any were read)."""
    values = metrics.SYSTEM_GAUGES.values()
    if values is None:
        return None
    counts: dict[str, int] = {}
    for labels, value in values.get("workflow_instances_active", []):
        status = labels.get("status", "")
        counts[status] = counts.get(status, 0) + int(value)
    for name in ("stuck", "long_running"):
        for _labels, value in values.get(f"workflow_instances_{name}", []):
            counts[name] = int(value)
    return {
        "status": "up",
        "description": "instances not ended, by status (cached for the metrics)",
        "running": counts.get("running", 0),
        "suspended": counts.get("suspended", 0),
        "stuck": counts.get("stuck", 0),
        "long_running": counts.get("long_running", 0),
    }


def runner_component(runner: Any, stall_seconds: float) -> Component:
    since = runner.seconds_since_tick()
    stalled = runner.stalled(stall_seconds)
    failing = runner.consecutive_failures > 0 or not all(t.up for t in runner.side_tasks)
    if stalled:
        status, description = "down", f"the loop has not come round for {stall_seconds:g} s"
    elif failing:
        status = "degraded"
        description = f"{runner.consecutive_failures} tick(s) failed in a row"
    else:
        status, description = "up", "ticking"
    return {
        "status": status,
        "description": description,
        "consecutive_failures": runner.consecutive_failures,
        "seconds_since_tick": None if since is None else round(since, 3),
        "stopping": runner.stopping,
    }
