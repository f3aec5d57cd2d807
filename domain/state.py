"""The typed state of an instance's open work: its bookmarks and its activities.

An event's payload stays the JSON-like dict that release 0.1 stored (`BookmarkCreated`'s
`bookmark`, `ActivityScheduled`'s `activity`); the aggregate builds these frozen values from
it when the event is applied, and later events replace them with `dataclasses.replace`.
The Enums are `StrEnum`s, so read models and views render the same strings as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any


class BookmarkKind(StrEnum):
    """What an open bookmark waits for."""

    TASK = "task"  # a person: an approval or a user task
    WAIT = "wait"  # a callback or an external event (optionally with a timeout)
    TIMER = "timer"  # a due time
    CHILD = "child"  # a sub-workflow's child instance


class BookmarkStatus(StrEnum):
    OPEN = "open"
    CONSUMED = "consumed"
    CANCELLED = "cancelled"


class ActivityStatus(StrEnum):
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


NOTIFY_PURPOSE = "notify"
# A `for_each` node's next batch of items (`domain.engine.multi`): a no-op action whose result
# starts the next items, so no single command starts them all.
BATCH_PURPOSE = "for_each_batch"
# An undo step of a saga (`domain.engine.compensation`).
COMPENSATE_PURPOSE = "compensate"


@dataclass(frozen=True)
class Bookmark:
    """A point where an instance waits; fields beyond the first five depend on the kind."""

    id: str
    node_id: str
    node_type: str
    kind: BookmarkKind
    created_at: datetime
    status: BookmarkStatus = BookmarkStatus.OPEN
    resolved_at: datetime | None = None
    due_at: datetime | None = None
    # wait
    token: str | None = None
    event_type: str | None = None
    correlation: str | None = None
    resumed_by: str | None = None
    # task
    task_kind: str | None = None
    name: str | None = None
    role: str | None = None
    assignee: str | None = None
    claimed_by: str | None = None
    urgency: str | None = None
    form: Any = None
    escalate_to_role: str | None = None
    # set once, by `TaskEscalated`, when the SLA (`due_at`) passed; `escalated_to` is the
    # candidate role it added (None: marked overdue only, escalation off or no role)
    escalated_at: datetime | None = None
    escalated_to: str | None = None
    outcome: str | None = None
    completed_by: str | None = None
    # child
    child_id: str | None = None
    child_definition: str | None = None
    child_version: int | None = None
    child_input: dict[str, Any] | None = None
    # boundary event (`domain.engine.boundary`): a timer or event wait attached to another
    # piece of open work of the same node, its host: a bookmark id or an activity id
    boundary_of: str | None = None
    boundary_index: int | None = None  # the position in the node's `boundary` list
    repeats_left: int | None = None  # a repeating timer: firings after this one; -1: unbounded
    # event gateway (`domain.engine.event_gateway`): the bookmarks one entry opened together
    gateway_group: str | None = None
    gateway_node: str | None = None
    # multi-instance (`for_each`): which item of the node's list this bookmark serves
    item_index: int | None = None
    # The W3C traceparent of the command that created it (CommandEnv.trace_context).
    trace_context: str | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Bookmark:
        """The open bookmark a `BookmarkCreated` event's `bookmark` dict describes."""
        values = {k: payload[k] for k in _BOOKMARK_FIELDS if k in payload}
        values.update(kind=BookmarkKind(payload["kind"]), status=BookmarkStatus.OPEN)
        return cls(**values)

    @property
    def is_open(self) -> bool:
        return self.status is BookmarkStatus.OPEN

    @property
    def roles(self) -> list[str]:
        """A task's candidate roles: its own, then the one an escalation added."""
        return [r for r in (self.role, self.escalated_to) if r]


@dataclass(frozen=True)
class Activity:
    """One scheduled side effect of a service task, executed by a task worker."""

    id: str
    node_id: str
    attempt: int
    attempt_number: int
    action: Any
    timeout_seconds: float
    run_after: datetime
    idempotency_key: str
    status: ActivityStatus = ActivityStatus.SCHEDULED
    last_error: str | None = None
    # None: a service task, whose result moves the instance on. "notify": a task node's
    # notification (`notify.created`/`notify.escalated`), whose result is only recorded.
    purpose: str | None = None
    notify_event: str | None = None
    # multi-instance (`for_each`): which item of the node's list this activity serves
    item_index: int | None = None
    # "compensate": the node (`end`/`compensate`) whose compensation run this step belongs to
    compensation_of: str | None = None
    # The command's W3C traceparent (CommandEnv.trace_context); None when not traced.
    trace_context: str | None = None

    @property
    def is_notification(self) -> bool:
        return self.purpose == NOTIFY_PURPOSE

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Activity:
        """The scheduled activity an `ActivityScheduled` event's `activity` dict describes."""
        values = {k: payload[k] for k in _ACTIVITY_FIELDS if k in payload}
        values["status"] = ActivityStatus.SCHEDULED
        return cls(**values)

    @property
    def is_scheduled(self) -> bool:
        return self.status is ActivityStatus.SCHEDULED


_BOOKMARK_FIELDS = tuple(f.name for f in fields(Bookmark))
_ACTIVITY_FIELDS = tuple(f.name for f in fields(Activity))


@dataclass
class ForEachState:
    """A running `for_each` node: its items, how many were started, the results so far."""

    items: list[Any]
    mode: str  # "parallel" | "sequential"
    run: int  # the node's attempt number: part of every item's idempotency key
    started: int = 0
    results: dict[int, Any] = field(default_factory=dict)

    def results_in_order(self) -> list[Any]:
        return [self.results.get(index) for index in range(len(self.items))]


@dataclass(frozen=True)
class InterleaveState:
    """A running interleaved `parallel` (WCP-17): its split and the routes of the branches
    started so far, in the order they started (`domain.engine.interleave`)."""

    split: str
    started: tuple[int, ...]


class IncidentStatus(StrEnum):
    OPEN = "open"
    RETRIED = "retried"  # an operator re-entered the node (POST .../retry)
    SKIPPED = "skipped"  # an operator completed the node with a result (POST .../skip)
    CLOSED = "closed"  # the instance ended or was cancelled while it was open


@dataclass(frozen=True)
class Incident:
    """A node failure held for an operator instead of failing the instance
    (`on_failure: "incident"`, domain.engine.incidents)."""

    id: str
    node_id: str
    node_type: str
    error: dict[str, Any]
    raised_at: datetime
    status: IncidentStatus = IncidentStatus.OPEN
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status is IncidentStatus.OPEN
