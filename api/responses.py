"""Response bodies of the HTTP API (SPEC §4), for the OpenAPI document.

They describe what the routes send today, which `application/views.py` renders: the routes
keep returning those views (so the JSON on the wire is exactly the views'), and these models
are declared with `responses=` only. Every object allows more members than it lists ("more
fields are welcome", SPEC §4), so a client generated from the document keeps what it does
not know. `tests/e2e/test_generated_client.py` parses real responses with a client generated
from this document, which fails when a required member is missing or of another type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.problems import MEDIA_TYPE
from api.schemas import Urgency

InstanceStatus = Literal["running", "suspended", "incident", "completed", "failed", "cancelled"]
BookmarkKind = Literal["task", "wait", "timer", "child", "retry"]


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- problems (RFC 9457) ------------------------------------------------------------------


class ErrorItem(Open):
    """One problem with a part of the request, named by its JSON path (`$.input.amount`)."""

    path: str
    code: str
    message: str


class Problem(Open):
    """An RFC 9457 problem: a stable `type` URI, plus members of its own per type
    (`allowed`, `bookmark`, `retryable`, ...)."""

    type: str = Field(examples=["https://waymark.dev/problems/not-found"])
    title: str
    status: int
    detail: str
    instance: str = Field(description="the request's path")
    errors: list[ErrorItem] | None = Field(
        default=None, description="invalid-request, invalid-definition, invalid-data"
    )


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before repeating the request (it is safe to repeat)",
        "schema": {"type": "integer"},
    }
}
_PROBLEM_DESCRIPTIONS = {
    400: "Malformed JSON or an invalid cursor",
    401: "No API key, an unknown one, or an invalid signature",
    403: "The key's roles do not allow this",
    404: "No such resource (for this tenant)",
    409: "Conflict with the resource's state",
    410: "Gone: the signed link has expired",
    413: "The body or what the command would store is too large",
    422: "The request (or the data it carries) is invalid; `errors` names each part",
    500: "An unexpected error (logged by the server)",
    503: "The database is unavailable or timed out, or a transient conflict; retry",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries of the problems a route can answer with."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": _PROBLEM_DESCRIPTIONS[status],
            "content": {MEDIA_TYPE: {"schema": PROBLEM_REF}},
        }
        if status == 503:
            entry["headers"] = RETRY_AFTER
        out[status] = entry
    return out


# Every authenticated route: the key, the request guard (422), the database (503), a bug.
AUTHENTICATED = (401, 403, 422, 500, 503)
# And every route that takes a JSON body: malformed JSON, the body and storage limits.
WITH_BODY = (*AUTHENTICATED, 400, 413)


def ok(
    model: type[BaseModel],
    *statuses: int,
    status: int = 200,
    description: str = "Success",
    headers: dict[str, Any] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route answering `model` with `status`, and these problems."""
    entry: dict[str, Any] = {"model": model, "description": description}
    if headers:
        entry["headers"] = headers
    return {status: entry, **problems(*statuses)}


REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored result of an earlier request with the "
        "same idempotency key",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
LOCATION = {
    "Location": {"description": "the instance's path", "schema": {"type": "string"}},
}


# --- definitions ---------------------------------------------------------------------------


class DefinitionView(Open):
    """One published version of a definition."""

    name: str
    version: int
    enabled: bool
    created_at: datetime
    document: dict[str, Any]


class DefinitionPage(Open):
    items: list[DefinitionView]
    next_cursor: str | None


class ValidationResult(Open):
    """Every problem of a definition, each with its JSON path (none when valid)."""

    valid: bool
    errors: list[ErrorItem]


# --- instances -----------------------------------------------------------------------------


class BookmarkView(Open):
    """An open bookmark: where the instance waits, and for what."""

    id: str
    node_id: str
    kind: BookmarkKind
    status: str
    token: str | None = Field(description="the callback token (`wait` bookmarks)")
    due_at: datetime | None
    created_at: datetime | None = None
    event_type: str | None = None
    correlation: str | None = None
    child_id: str | None = None
    task_kind: str | None = None
    roles: list[str] | None = Field(default=None, description="a task's candidate roles")
    escalated_at: datetime | None = Field(default=None, description="a task's SLA passed")
    attempt: int | None = Field(default=None, description="`retry` bookmarks")
    last_error: str | None = Field(default=None, description="`retry` bookmarks")
    boundary_of: str | None = Field(
        default=None, description="a boundary event's host: the bookmark or activity it watches"
    )
    boundary_index: int | None = Field(
        default=None, description="a boundary event's position in its node's `boundary` list"
    )
    gateway: str | None = Field(
        default=None, description="the event_gateway node whose racing waits this is one of"
    )


class ActivityView(Open):
    id: str
    node_id: str
    attempt: int
    status: str
    last_error: str | None
    purpose: Literal["notify"] | None = Field(
        default=None, description="`notify`: a task notification, which never moves the instance"
    )
    notify: str | None = Field(default=None, description="`created` or `escalated`")


class StartedByView(Open):
    """What started an instance: `kind` (api, event, webhook, schedule, parent, kafka) and
    its details (key_name; event_type, correlation; tick, cron, timezone; parent_id, node_id;
    topic). Null for instances started before it was recorded."""

    kind: Literal["api", "event", "webhook", "schedule", "parent", "kafka"]
    key_name: str | None = None
    user: str | None = None  # the person: a token's user, or a key's On-Behalf-Of user
    event_type: str | None = None
    correlation: str | None = None
    tick: str | None = None
    cron: str | None = None
    timezone: str | None = None
    parent_id: str | None = None
    node_id: str | None = None
    topic: str | None = None


class InstanceView(Open):
    """An instance: state, variables, open bookmarks, output and error."""

    id: UUID
    tenant: str
    definition: str
    version: int
    status: InstanceStatus
    input: dict[str, Any]
    variables: dict[str, Any]
    output: dict[str, Any] | None
    error: dict[str, Any] | None
    correlation_id: str | None
    parent: dict[str, Any] | None
    started_by: StartedByView | None = None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    bookmarks: list[BookmarkView]
    activities: list[ActivityView]
    aggregate_version: int
    sla_due_at: datetime | None = Field(
        default=None, description="created_at + the definition's sla_hours (GET only)"
    )
    late: bool | None = Field(
        default=None, description="open past sla_due_at, or ended after it (GET only)"
    )


class InstanceSummary(Open):
    """An instance as listed (no variables or bookmarks: read the instance for those)."""

    id: UUID
    definition: str
    version: int
    status: InstanceStatus
    correlation_id: str | None
    idempotency_key: str | None
    parent_id: UUID | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


class InstancePage(Open):
    items: list[InstanceSummary]
    next_cursor: str | None


class ErasureView(Open):
    """The audit entry of an erasure: the only trace of the instance that remains."""

    instance_id: str
    tenant: str
    erased_at: datetime
    erased_by: str
    reason: str | None
    deleted: dict[str, int] = Field(description="rows deleted, per table")


class HistoryEntry(Open):
    """One stored event of the instance."""

    position: int | None = Field(description="the global position (null until recorded)")
    version: int
    type: str
    timestamp: datetime
    data: dict[str, Any]


class HistoryPage(Open):
    items: list[HistoryEntry]
    next_cursor: str | None


class ResumeResult(Open):
    """A resumed bookmark and the instance's status after it."""

    instance_id: UUID
    bookmark_id: str
    status: InstanceStatus
    resumed: bool


# --- events --------------------------------------------------------------------------------


class ResumedBookmark(Open):
    instance_id: UUID
    bookmark_id: str


class InputError(Open):
    path: str
    message: str


class RejectedStart(Open):
    """An event-triggered definition that refused the event's payload as its input."""

    definition: str
    errors: list[InputError]


class EventResult(Open):
    """What an event did: the bookmarks it resumed, the instances it started."""

    type: str
    resumed: list[ResumedBookmark]
    started: list[UUID]
    rejected: list[RejectedStart]


# --- tasks ---------------------------------------------------------------------------------


class TaskView(Open):
    """An approval or user task."""

    id: str
    instance_id: UUID
    definition: str
    node_id: str
    name: str
    kind: Literal["approval", "user_task"]
    status: Literal["open", "claimed", "completed", "cancelled"]
    assignee: str | None
    role: str | None
    claimed_by: str | None
    due_at: datetime | None
    urgency: Urgency = Field(description="open tasks with a due time: from the time left now")
    overdue: bool
    roles: list[str] = Field(description="candidate roles: `role`, then `escalated_to`")
    escalated_at: datetime | None = None
    escalated_to: str | None = None
    form: dict[str, Any] | None
    outcome: str | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None = Field(
        None, description="who completed it: the person's user id (a service key: its name)"
    )


class TaskPage(Open):
    items: list[TaskView]
    next_cursor: str | None
