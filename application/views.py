"""JSON-ready views of instances, bookmarks and tasks, with the field names of SPEC §4."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from application.read_models import BookmarkRow, InstanceRow, TaskRow
from domain.engine.sla import urgency_at
from domain.instance import WorkflowInstance
from domain.state import Bookmark, BookmarkKind

# Rendering never fails on stored data: a value nested deeper than this (only data stored
# before the API bounded nesting, or built by a workflow's own loops) is shown as a marker
# string. JSON serializers have hard recursion limits (pydantic-core's is 255 levels): a
# deeper value made every read of its instance a 500.
MAX_RENDER_DEPTH = 128
OPEN_TASK_STATUSES = ("open", "claimed")
TRUNCATED = f"<truncated: nested deeper than {MAX_RENDER_DEPTH} levels>"


def jsonable(value: Any, _depth: int = 0) -> Any:
    """`value` as plain JSON data: datetimes and UUIDs as strings, non-finite floats (which
    JSON cannot carry) as null, and nothing deeper than MAX_RENDER_DEPTH."""
    # Dispatch on the exact type first (every view of every answer passes through here);
    # subclasses (enums, OrderedDict, ...) take the isinstance chain, with the same result.
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is dict:
        if _depth >= MAX_RENDER_DEPTH:
            return TRUNCATED
        depth = _depth + 1
        return {
            k if type(k) is str else str(k): v if type(v) in _AS_IS else jsonable(v, depth)
            for k, v in value.items()
        }
    if kind is list:
        if _depth >= MAX_RENDER_DEPTH:
            return TRUNCATED
        depth = _depth + 1
        return [v if type(v) in _AS_IS else jsonable(v, depth) for v in value]
    if kind is datetime:
        return value.isoformat()
    return _jsonable_by_isinstance(value, _depth)


_AS_IS = frozenset({str, int, bool, type(None)})


def _jsonable_by_isinstance(value: Any, _depth: int) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict | list | tuple):
        if _depth >= MAX_RENDER_DEPTH:
            return TRUNCATED
        if isinstance(value, dict):
            return {
                k if isinstance(k, str) else str(k): jsonable(v, _depth + 1)
                for k, v in value.items()
            }
        return [jsonable(v, _depth + 1) for v in value]
    return value


def bookmark_view(b: Bookmark) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": b.id,
        "node_id": b.node_id,
        "kind": b.kind.value,
        "status": b.status.value,
        "token": b.token,
        "due_at": b.due_at,
        "created_at": b.created_at,
    }
    if b.event_type:
        view["event_type"] = b.event_type
        view["correlation"] = b.correlation
    if b.boundary_of is not None:  # a boundary event of the node (domain/engine/boundary.py)
        view["boundary_of"] = b.boundary_of
        view["boundary_index"] = b.boundary_index
    if b.gateway_group is not None:  # one of an event gateway's racing waits
        view["gateway"] = b.gateway_node
    if b.kind is BookmarkKind.CHILD:
        view["child_id"] = b.child_id
    if b.kind is BookmarkKind.TASK:
        view["task_kind"] = b.task_kind
        view["roles"] = b.roles
        view["escalated_at"] = b.escalated_at
    return jsonable(view)


def instance_view(instance: WorkflowInstance) -> dict[str, Any]:
    bookmarks = [bookmark_view(b) for b in instance.open_bookmarks()]
    # A service task waiting out its retry backoff is shown as a `retry` bookmark.
    for a in instance.scheduled_activities():
        if a.attempt > 1 and not a.is_notification:
            bookmarks.append(
                jsonable(
                    {
                        "id": a.id,
                        "node_id": a.node_id,
                        "kind": "retry",
                        "status": "open",
                        "token": None,
                        "due_at": a.run_after,
                        "attempt": a.attempt,
                        "last_error": a.last_error,
                    }
                )
            )
    return jsonable(
        {
            "id": instance.id,
            "tenant": instance.tenant,
            "definition": instance.definition,
            "version": instance.definition_version,
            "status": instance.status,
            "input": instance.input,
            "variables": instance.variables,
            "output": instance.output,
            "error": instance.error,
            "correlation_id": instance.correlation_id,
            "parent": instance.parent,
            "started_by": instance.started_by,
            "created_at": instance.created_on,
            "updated_at": instance.modified_on,
            "ended_at": instance.ended_at,
            "bookmarks": bookmarks,
            "activities": [
                {
                    "id": a.id,
                    "node_id": a.node_id,
                    "attempt": a.attempt,
                    "status": a.status.value,
                    "last_error": a.last_error,
                    **({"purpose": a.purpose, "notify": a.notify_event} if a.purpose else {}),
                }
                for a in instance.activities.values()
            ],
            "aggregate_version": instance.version,
        }
    )


def has_due_bookmarks(view: dict[str, Any]) -> bool:
    """Whether the view shows an open timer, wait timeout or task SLA not yet handled (one
    the timer worker fires, and may have set aside)."""
    return any(
        b["kind"] in ("timer", "wait", "task") and b.get("due_at") and not b.get("escalated_at")
        for b in view["bookmarks"]
    )


def with_set_aside_timers(view: dict[str, Any], rows: list[BookmarkRow]) -> dict[str, Any]:
    """Mark the bookmarks whose timer the worker set aside: the error, when, how often."""
    failed = {row.id: row for row in rows}
    for bookmark in view["bookmarks"]:
        row = failed.get(bookmark["id"])
        if row is not None:
            bookmark["timer_error"] = row.timer_error
            bookmark["timer_failed_at"] = jsonable(row.timer_failed_at)
            bookmark["timer_attempts"] = row.timer_attempts
    return view


def instance_row_view(row: InstanceRow) -> dict[str, Any]:
    view = asdict(row)
    view.pop("tenant")
    view.pop("aggregate_version")
    return jsonable(view)


def task_view(row: TaskRow, now: datetime) -> dict[str, Any]:
    """The task as of `now`: an open task's urgency comes from the time left to `due_at`
    (`overdue`, `urgent`, `high`, `normal`); `roles` are its candidate roles."""
    view = asdict(row)
    view.pop("tenant")
    is_open = row.status in OPEN_TASK_STATUSES
    view["urgency"] = urgency_at(row.due_at if is_open else None, now, row.urgency)
    view["overdue"] = view["urgency"] == "overdue"
    view["roles"] = [r for r in (row.role, row.escalated_to) if r]
    return jsonable(view)


def with_sla(view: dict[str, Any], sla_hours: float | None, now: datetime) -> dict[str, Any]:
    """Add the definition-level SLA: `sla_due_at` and `late` (still open past it, or ended
    after it: what `GET /v1/analytics` counts as breached)."""
    if not sla_hours:
        view["sla_due_at"], view["late"] = None, False
        return view
    created = datetime.fromisoformat(view["created_at"])
    due = created + timedelta(hours=sla_hours)
    ended = view.get("ended_at")
    view["sla_due_at"] = due.isoformat()
    view["late"] = (datetime.fromisoformat(ended) if ended else now) > due
    return view
