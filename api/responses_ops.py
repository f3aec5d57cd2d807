"""Response bodies of the operational routes (analytics, templates, connections, health,
the event feed, the outbox, operator recovery and signed task links), for the OpenAPI
document; the instance, task and definition bodies and the `responses=` helpers are in
`api/responses.py`, whose rules (declared only, `Open` objects) these follow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from api.responses import InstanceView, Open

# --- analytics -----------------------------------------------------------------------------


class SlaStats(Open):
    hours: float | None
    met: int
    breached: int
    compliance: float | None = Field(description="met / (met + breached); null when none")


class TaskStats(Open):
    open: int
    overdue: int


class DefinitionStats(Open):
    definition: str
    started: int
    completed: int
    failed: int
    cancelled: int
    running: int
    suspended: int
    avg_duration_seconds: float | None
    p95_duration_seconds: float | None
    sla: SlaStats
    tasks: TaskStats


class AnalyticsReport(Open):
    items: list[DefinitionStats]
    generated_at: datetime


# --- templates -----------------------------------------------------------------------------


class TemplateSummary(Open):
    id: str
    name: str
    description: str
    category: str
    parameters: list[dict[str, Any]]


class TemplatePage(Open):
    items: list[TemplateSummary]
    next_cursor: str | None


class TemplateView(TemplateSummary):
    """A template with its definition document."""

    definition: dict[str, Any]


# --- connections ---------------------------------------------------------------------------


class ConnectionSummary(Open):
    name: str
    type: str


class ConnectionPage(Open):
    items: list[ConnectionSummary]
    next_cursor: str | None


# --- health --------------------------------------------------------------------------------


class HealthReport(Open):
    """`ok`, `degraded` (a worker fails) or `unavailable` (503), with each component."""

    status: Literal["ok", "degraded", "unavailable"]
    components: dict[str, dict[str, Any]]


class Liveness(Open):
    status: Literal["ok"]


# --- the event feed and the event types ----------------------------------------------------


class FeedEvent(Open):
    """A stored event as a CloudEvent (structured JSON); `waymarkposition` is its global
    position, `id` (`<instance>:<version>`) is stable for de-duplication."""

    specversion: Literal["1.0"]
    id: str
    type: str = Field(examples=["waymark.instance.started"])
    source: str = Field(examples=["/waymark/tenants/acme"])
    subject: str = Field(description="the instance id")
    time: datetime
    datacontenttype: Literal["application/json"]
    waymarktenant: str
    waymarkposition: int
    data: dict[str, Any]


class FeedPage(Open):
    """Events after the requested position, oldest first."""

    items: list[FeedEvent]
    next_after: int = Field(
        description="read on with `after=` this: every event up to it has been read"
    )
    next_cursor: str | None = Field(
        description="set while more events may follow at once; null once caught up"
    )


class EventType(Open):
    """One event type: its CloudEvents `type`, when it happens, the schema of its `data`."""

    name: str = Field(examples=["Started"])
    type: str = Field(examples=["waymark.instance.started"])
    description: str
    data_schema: dict[str, Any] = Field(description="a JSON Schema (2020-12) of `data`")


class EventTypeCatalogue(Open):
    envelope: dict[str, Any] = Field(description="a JSON Schema of the CloudEvents envelope")
    items: list[EventType]


# --- the outbox ------------------------------------------------------------------------------


class DeadLetterView(Open):
    """An event the outbox publisher could never publish (status dead, retry or published)."""

    id: int
    position: int
    instance_id: str
    tenant: str
    event_type: str
    error: str
    status: Literal["dead", "retry", "published"]
    failed_at: str
    retry_requested_at: str | None
    published_at: str | None


class DeadLetterList(Open):
    items: list[DeadLetterView]


# --- operator recovery ---------------------------------------------------------------------


class IncidentStateView(Open):
    """An incident of an instance (time travel and recovery answers)."""

    id: str
    node_id: str
    node_type: str
    error: dict[str, Any]
    status: str
    raised_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    reason: str | None


class IncidentView(IncidentStateView):
    """A listed incident (`GET /v1/incidents`)."""

    instance_id: UUID
    definition: str
    version: int


class IncidentPage(Open):
    items: list[IncidentView]
    next_cursor: str | None


class RecoveryAction(Open):
    action: str  # retried | skipped
    node_id: str


class PastInstanceView(InstanceView):
    """The instance with its incidents (time travel: as it was after `aggregate_version`)."""

    incidents: list[IncidentStateView] = []


class RecoveredInstanceView(PastInstanceView):
    recovery: RecoveryAction


# --- signed task links --------------------------------------------------------------------


class TaskLinkTask(Open):
    id: str
    name: str | None = None
    status: str
    assignee: str | None = None
    role: str | None = None


class TaskLinkPreview(Open):
    """What a signed task link would do (GET /v1/task-links/{token} with JSON accepted)."""

    decision: str  # approve | reject
    outcome: str  # approved | rejected
    expires_at: str
    task: TaskLinkTask
