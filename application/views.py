"""JSON-ready views of instances, bookmarks and tasks, with the field names of SPEC §4."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import UUID

from application.read_models import BookmarkRow, InstanceRow, TaskRow
from domain.instance import WorkflowInstance


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def bookmark_view(b: dict[str, Any]) -> dict[str, Any]:
    view = {
        "id": b["id"],
        "node_id": b["node_id"],
        "kind": b["kind"],
        "status": b["status"],
        "token": b.get("token"),
        "due_at": b.get("due_at"),
        "created_at": b.get("created_at"),
    }
    if b.get("event_type"):
        view["event_type"] = b["event_type"]
        view["correlation"] = b.get("correlation")
    if b["kind"] == "child":
        view["child_id"] = b.get("child_id")
    if b["kind"] == "task":
        view["task_kind"] = b.get("task_kind")
    return jsonable(view)


def instance_view(instance: WorkflowInstance) -> dict[str, Any]:
    bookmarks = [bookmark_view(b) for b in instance.open_bookmarks()]
    # A service task waiting out its retry backoff is shown as a `retry` bookmark.
    for a in instance.scheduled_activities():
        if a["attempt"] > 1:
            bookmarks.append(
                jsonable(
                    {
                        "id": a["id"],
                        "node_id": a["node_id"],
                        "kind": "retry",
                        "status": "open",
                        "token": None,
                        "due_at": a["run_after"],
                        "attempt": a["attempt"],
                        "last_error": a.get("last_error"),
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
            "created_at": instance.created_on,
            "updated_at": instance.modified_on,
            "ended_at": instance.ended_at,
            "bookmarks": bookmarks,
            "activities": [
                {
                    "id": a["id"],
                    "node_id": a["node_id"],
                    "attempt": a["attempt"],
                    "status": a["status"],
                    "last_error": a.get("last_error"),
                }
                for a in instance.activities.values()
            ],
            "aggregate_version": instance.version,
        }
    )


def has_due_bookmarks(view: dict[str, Any]) -> bool:
    """Whether the view shows an open timer or wait timeout (one the timer worker fires)."""
    return any(b["kind"] in ("timer", "wait") and b.get("due_at") for b in view["bookmarks"])


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


def task_view(row: TaskRow) -> dict[str, Any]:
    view = asdict(row)
    view.pop("tenant")
    return jsonable(view)
