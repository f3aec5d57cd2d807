"""Projects an instance's state into read-model rows, for the rows its new events touched."""

from __future__ import annotations

from application.read_models import (
    ActivityRow,
    BookmarkRow,
    IncidentRow,
    InstanceRow,
    Projection,
    TaskRow,
)
from domain.instance import WorkflowInstance
from domain.state import Activity, Bookmark, BookmarkKind, BookmarkStatus, Incident

# Events that name the bookmark, or the activity, they change.
_BOOKMARK_EVENTS = (
    WorkflowInstance.BookmarkResumed,
    WorkflowInstance.TaskCompleted,
    WorkflowInstance.TaskClaimed,
    WorkflowInstance.TaskDelegated,
    WorkflowInstance.TaskEscalated,
    WorkflowInstance.BookmarkCancelled,
)
_ACTIVITY_EVENTS = (
    WorkflowInstance.ActivityRetryScheduled,
    WorkflowInstance.ActivityCompleted,
    WorkflowInstance.ActivityFailed,
    WorkflowInstance.ActivityCancelled,
)


def project(instance: WorkflowInstance) -> Projection:
    """Rows for the instance and for every bookmark/activity its pending events touched."""
    bookmark_ids, activity_ids = _touched(instance)
    projection = Projection(instances=[instance_row(instance)])
    for bookmark_id in bookmark_ids:
        bookmark = instance.bookmarks[bookmark_id]
        projection.bookmarks.append(bookmark_row(instance, bookmark))
        if bookmark.kind is BookmarkKind.TASK:
            projection.tasks.append(task_row(instance, bookmark))
    for activity_id in activity_ids:
        projection.activities.append(activity_row(instance, instance.activities[activity_id]))
    for incident_id in dict.fromkeys(_touched_incidents(instance)):
        projection.incidents.append(incident_row(instance, instance.incidents[incident_id]))
    return projection


_INCIDENT_EVENTS = (
    WorkflowInstance.IncidentRaised,
    WorkflowInstance.IncidentRetried,
    WorkflowInstance.IncidentSkipped,
    WorkflowInstance.IncidentClosed,
)


def _touched_incidents(instance: WorkflowInstance) -> list[str]:
    return [
        e.incident_id
        for e in instance.pending_events
        if isinstance(e, _INCIDENT_EVENTS) and e.incident_id is not None
    ]


def incident_row(instance: WorkflowInstance, i: Incident) -> IncidentRow:
    return IncidentRow(
        id=i.id,
        tenant=instance.tenant,
        instance_id=instance.id,
        definition=instance.definition,
        version=instance.definition_version,
        node_id=i.node_id,
        node_type=i.node_type,
        error=i.error,
        status=i.status.value,
        raised_at=i.raised_at,
        resolved_at=i.resolved_at,
        resolved_by=i.resolved_by,
        reason=i.reason,
    )


def _touched(instance: WorkflowInstance) -> tuple[list[str], list[str]]:
    bookmarks: dict[str, None] = {}
    activities: dict[str, None] = {}
    for e in instance.pending_events:
        if isinstance(e, _BOOKMARK_EVENTS):
            bookmarks[e.bookmark_id] = None
        elif isinstance(e, WorkflowInstance.BookmarkCreated):
            bookmarks[e.bookmark["id"]] = None
        elif isinstance(e, _ACTIVITY_EVENTS):
            activities[e.activity_id] = None
        elif isinstance(e, WorkflowInstance.ActivityScheduled):
            activities[e.activity["id"]] = None
        elif isinstance(e, WorkflowInstance.InstanceMigrated):  # node ids may be renamed
            bookmarks.update(dict.fromkeys(b.id for b in instance.open_bookmarks()))
            activities.update(dict.fromkeys(a.id for a in instance.scheduled_activities()))
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


def bookmark_row(instance: WorkflowInstance, b: Bookmark) -> BookmarkRow:
    return BookmarkRow(
        id=b.id,
        tenant=instance.tenant,
        instance_id=instance.id,
        node_id=b.node_id,
        kind=b.kind.value,
        status=b.status.value,
        token=b.token,
        event_type=b.event_type,
        correlation=b.correlation,
        due_at=b.due_at,
        created_at=b.created_at,
        resolved_at=b.resolved_at,
        escalated_at=b.escalated_at,
        trace_context=b.trace_context,
    )


def task_row(instance: WorkflowInstance, b: Bookmark) -> TaskRow:
    if b.is_open:
        status = "claimed" if b.claimed_by else "open"
    else:
        status = "completed" if b.status is BookmarkStatus.CONSUMED else "cancelled"
    return TaskRow(
        id=b.id,
        tenant=instance.tenant,
        instance_id=instance.id,
        definition=instance.definition,
        node_id=b.node_id,
        name=b.name or b.node_id,
        kind=str(b.task_kind),
        status=status,
        assignee=b.assignee,
        role=b.role,
        claimed_by=b.claimed_by,
        due_at=b.due_at,
        urgency=b.urgency or "normal",
        form=b.form,
        outcome=b.outcome,
        created_at=b.created_at,
        completed_at=b.resolved_at if b.status is BookmarkStatus.CONSUMED else None,
        escalated_at=b.escalated_at,
        escalated_to=b.escalated_to,
        completed_by=b.completed_by,
    )


def activity_row(instance: WorkflowInstance, a: Activity) -> ActivityRow:
    return ActivityRow(
        id=a.id,
        tenant=instance.tenant,
        instance_id=instance.id,
        node_id=a.node_id,
        attempt=a.attempt,
        status=a.status.value,
        run_after=a.run_after,
        action=a.action,
        timeout_seconds=a.timeout_seconds,
        idempotency_key=a.idempotency_key,
        trace_context=a.trace_context,
    )
