"""Analytics: per definition, how many instances started and how they ended, how long they
took, whether they kept the definition's SLA, and how many of their tasks are still open.

The port lives here rather than in `application.ports`: only this use case needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from application.ports import Clock
from application.views import jsonable


@dataclass(frozen=True)
class AnalyticsFilter:
    """Which instances a report covers: the tenant's, optionally one definition's, created in
    [created_after, created_before)."""

    tenant: str
    definition: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class DefinitionStats:
    """One definition's figures, aggregated by the database."""

    definition: str
    started: int
    completed: int
    failed: int
    cancelled: int
    running: int  # running or suspended: not ended yet
    suspended: int
    avg_duration_seconds: float | None  # of ended instances; None when none ended
    p95_duration_seconds: float | None
    sla_hours: float | None  # the definition's top-level sla_hours (latest version with one)
    sla_met: int  # completed within the SLA
    sla_breached: int  # ended after it, or still open past it
    open_tasks: int = 0
    overdue_tasks: int = 0


class AnalyticsQueries(Protocol):
    def definition_stats(self, where: AnalyticsFilter, now: datetime) -> list[DefinitionStats]:
        """One row per definition with instances matching `where`, sorted by name; `now`
        decides which open instances are past their SLA and which open tasks are overdue."""


class AnalyticsService:
    """The `GET /v1/analytics` report."""

    def __init__(self, queries: AnalyticsQueries, clock: Clock) -> None:
        self.queries = queries
        self.clock = clock

    def report(
        self,
        tenant: str,
        *,
        definition: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> dict[str, Any]:
        now = self.clock.now()
        where = AnalyticsFilter(tenant, definition, created_after, created_before)
        items = [stats_view(s) for s in self.queries.definition_stats(where, now)]
        return jsonable({"items": items, "generated_at": now})


def stats_view(s: DefinitionStats) -> dict[str, Any]:
    judged = s.sla_met + s.sla_breached
    return {
        "definition": s.definition,
        "started": s.started,
        "completed": s.completed,
        "failed": s.failed,
        "cancelled": s.cancelled,
        "running": s.running,
        "suspended": s.suspended,
        "avg_duration_seconds": s.avg_duration_seconds,
        "p95_duration_seconds": s.p95_duration_seconds,
        "sla": {
            "hours": s.sla_hours,
            "met": s.sla_met,
            "breached": s.sla_breached,
            "compliance": s.sla_met / judged if judged else None,
        },
        "tasks": {"open": s.open_tasks, "overdue": s.overdue_tasks},
    }
