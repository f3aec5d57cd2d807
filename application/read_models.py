"""Read-model rows: what the instance list, bookmark/token lookup, task queue and activity
queue tables hold. They are projected from an instance's state by `application.projection`
and written by the infrastructure in the same transaction as the instance's events, so a
callback or task completion sent right after a command's response always finds its row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from application.audit import AuditEntry


@dataclass(frozen=True)
class InstanceRow:
    id: UUID
    tenant: str
    definition: str
    version: int
    status: str
    correlation_id: str | None
    idempotency_key: str | None
    parent_id: UUID | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    aggregate_version: int


@dataclass(frozen=True)
class BookmarkRow:
    id: str
    tenant: str
    instance_id: UUID
    node_id: str
    kind: str  # task | wait | timer | child | retry
    status: str  # open | consumed | cancelled
    token: str | None
    event_type: str | None
    correlation: str | None
    due_at: datetime | None
    created_at: datetime
    resolved_at: datetime | None
    # Set by the timer worker (never by the projection) when firing this bookmark's timer
    # failed unexpectedly: the row is set aside (skipped) until the bookmark changes. The
    # projection writes the defaults, so any command that changes the bookmark clears them.
    timer_error: str | None = None
    timer_failed_at: datetime | None = None
    timer_attempts: int = 0
    # A task whose SLA passed (TaskEscalated): the timer worker's due query skips it.
    escalated_at: datetime | None = None
    # The creating command's traceparent: the timer worker's firing continues it.
    trace_context: str | None = None


@dataclass(frozen=True)
class TaskRow:
    id: str  # the task's bookmark id
    tenant: str
    instance_id: UUID
    definition: str
    node_id: str
    name: str
    kind: str  # approval | user_task
    status: str  # open | claimed | completed | cancelled
    assignee: str | None
    role: str | None
    claimed_by: str | None
    due_at: datetime | None
    urgency: str
    form: dict[str, Any] | None
    outcome: str | None
    created_at: datetime
    completed_at: datetime | None
    escalated_at: datetime | None = None  # when its SLA passed (TaskEscalated)
    escalated_to: str | None = None  # the candidate role the escalation added
    completed_by: str | None = None  # the person who completed it (TaskCompleted)


@dataclass(frozen=True)
class ActivityRow:
    id: str
    tenant: str
    instance_id: UUID
    node_id: str
    attempt: int
    status: str  # scheduled | completed | failed | cancelled
    run_after: datetime
    action: dict[str, Any]
    timeout_seconds: float
    idempotency_key: str
    # The creating command's traceparent: the task worker's action span continues it.
    trace_context: str | None = None


@dataclass(frozen=True)
class IncidentRow:
    """A node failure held for an operator (`domain.engine.incidents`); `GET /v1/incidents`."""

    id: str
    tenant: str
    instance_id: UUID
    definition: str
    version: int
    node_id: str
    node_type: str
    error: dict[str, Any]
    status: str  # open | retried | skipped | closed
    raised_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    reason: str | None


@dataclass(frozen=True)
class IdempotencyRecord:
    """The first result of a command carrying an idempotency key (resume, callback, event)."""

    tenant: str
    scope: str
    key: str
    result: dict[str, Any]


@dataclass(frozen=True)
class AdmittedStart:
    """A start admitted on the definition cache's word: its commit checks, in the same
    transaction, that (tenant, name, version) is still enabled and, for a start that asked
    for no version (`latest`), still the newest one (application/admission.py)."""

    tenant: str
    name: str
    version: int
    latest: bool = False


@dataclass
class Projection:
    """Rows to upsert in the command's transaction."""

    instances: list[InstanceRow] = field(default_factory=list)
    bookmarks: list[BookmarkRow] = field(default_factory=list)
    tasks: list[TaskRow] = field(default_factory=list)
    activities: list[ActivityRow] = field(default_factory=list)
    idempotency: list[IdempotencyRecord] = field(default_factory=list)
    # Administrative acts of the command (application/audit.py), in the same transaction.
    audit: list[AuditEntry] = field(default_factory=list)
    incidents: list[IncidentRow] = field(default_factory=list)
    # Activities inserted already leased to this process's task worker (application/eager.py):
    # activity id -> (worker id, lease end).
    leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    # The starts' definitions to check in the transaction (not rows: nothing is written).
    admitted: list[AdmittedStart] = field(default_factory=list)

    def extend(self, other: Projection) -> None:
        self.instances.extend(other.instances)
        self.bookmarks.extend(other.bookmarks)
        self.tasks.extend(other.tasks)
        self.activities.extend(other.activities)
        self.idempotency.extend(other.idempotency)
        self.audit.extend(other.audit)
        self.incidents.extend(other.incidents)
        self.leases.update(other.leases)
        self.admitted.extend(other.admitted)

    def tenants(self) -> set[str]:
        """The tenants of every row (the group committer's check, application/commit.py)."""
        rows: list[Any] = [
            *self.instances,
            *self.bookmarks,
            *self.tasks,
            *self.activities,
            *self.idempotency,
            *self.audit,
            *self.incidents,
        ]
        return {row.tenant for row in rows}


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


@dataclass(frozen=True)
class InstanceFilter:
    """Which instances a list shows: every criterion given must hold (None: any)."""

    status: str | None = None
    definition: str | None = None
    correlation_id: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks the queue shows: every criterion given must hold (None: any)."""

    assignee: str | None = None
    role: str | None = None
    status: str | None = None
    urgency: str | None = None  # computed from due_at and `now` (engine.sla.urgency_at)
    now: datetime | None = None  # the time urgency is judged at; the use case sets it


@dataclass(frozen=True)
class IncidentFilter:
    """Which incidents `GET /v1/incidents` shows (None: any); only open ones by default."""

    definition: str | None = None
    node_id: str | None = None
    instance_id: UUID | None = None
    status: str | None = "open"
