"""Projects an instance's state into read-model rows, for the rows its new events touched."""

from __future__ import annotations

from typing import Any

from application.read_models import ActivityRow, BookmarkRow, InstanceRow, Projection, TaskRow
from domain.instance import WorkflowInstance


def project(instance: WorkflowInstance) -> Projection:
    """Rows for the instance and for every bookmark/activity its pending events touched."""
    bookmark_ids, activity_ids = _touched(instance)
    projection = Projection(instances=[instance_row(instance)])
    for bookmark_id in bookmark_ids:
        bookmark = instance.bookmarks[bookmark_id]
        projection.bookmarks.append(bookmark_row(instance, bookmark))
        if bookmark["kind"] == "task":
            projection.tasks.append(task_row(instance, bookmark))
    for activity_id in activity_ids:
        projection.activities.append(activity_row(instance, instance.activities[activity_id]))
    return projection


def _touched(instance: WorkflowInstance) -> tuple[list[str], list[str]]:
    bookmarks: dict[str, None] = {}
    activities: dict[str, None] = {}
    for e in instance.pending_events:
        if hasattr(e, "bookmark_id"):
            bookmarks[e.bookmark_id] = None
        elif hasattr(e, "bookmark"):
            bookmarks[e.bookmark["id"]] = None
        if hasattr(e, "activity_id"):
            activities[e.activity_id] = None
        elif hasattr(e, "activity"):
            activities[e.activity["id"]] = None
    return list(bookmarks), list(activities)


def instance_row(instance: WorkflowInstance) -> InstanceRow:
    parent = instance.parent or {}
    return InstanceRow(
        id=instance.id,
        tenant=instance.tenant,
        definition=instance.definition,
        version=instance.definition_version,
        status=instance.status,
        correlation_id=instance.correlation_id,
        idempotency_key=instance.idempotency_key,
        parent_id=parent.get("instance_id"),
        created_at=instance.created_on,
        updated_at=instance.modified_on,
        ended_at=instance.ended_at,
        aggregate_version=instance.version,
    )


def bookmark_row(instance: WorkflowInstance, b: dict[str, Any]) -> BookmarkRow:
    return BookmarkRow(
        id=b["id"],
        tenant=instance.tenant,
        instance_id=instance.id,
        node_id=b["node_id"],
        kind=b["kind"],
        status=b["status"],
        token=b.get("token"),
        event_type=b.get("event_type"),
        correlation=b.get("correlation"),
        due_at=b.get("due_at"),
        created_at=b["created_at"],
        resolved_at=b.get("resolved_at"),
    )


def task_row(instance: WorkflowInstance, b: dict[str, Any]) -> TaskRow:
    if b["status"] == "open":
        status = "claimed" if b.get("claimed_by") else "open"
    else:
        status = "completed" if b["status"] == "consumed" else "cancelled"
    return TaskRow(
        id=b["id"],
        tenant=instance.tenant,
        instance_id=instance.id,
        definition=instance.definition,
        node_id=b["node_id"],
        name=b.get("name") or b["node_id"],
        kind=b["task_kind"],
        status=status,
        assignee=b.get("assignee"),
        role=b.get("role"),
        claimed_by=b.get("claimed_by"),
        due_at=b.get("due_at"),
        urgency=b.get("urgency") or "normal",
        form=b.get("form"),
        outcome=b.get("outcome"),
        created_at=b["created_at"],
        completed_at=b.get("resolved_at") if b["status"] == "consumed" else None,
    )


def activity_row(instance: WorkflowInstance, a: dict[str, Any]) -> ActivityRow:
    return ActivityRow(
        id=a["id"],
        tenant=instance.tenant,
        instance_id=instance.id,
        node_id=a["node_id"],
        attempt=a["attempt"],
        status=a["status"],
        run_after=a["run_after"],
        action=a["action"],
        timeout_seconds=a["timeout_seconds"],
        idempotency_key=a["idempotency_key"],
    )
