"""The catalogue of instance events: one enumerable list, and the names other code derives.

The outbox's CloudEvents `type`, `docs/events.md` and metric labels are generated from
`INSTANCE_EVENTS`; a new event class of `WorkflowInstance` is added here too (a unit test
fails until it is).
"""

from __future__ import annotations

import re

from domain.instance import WorkflowInstance

InstanceEvent = WorkflowInstance.Event

INSTANCE_EVENTS: tuple[type[InstanceEvent], ...] = (
    WorkflowInstance.Started,
    WorkflowInstance.NodeEntered,
    WorkflowInstance.VariablesSet,
    WorkflowInstance.NodeCompleted,
    WorkflowInstance.BookmarkCreated,
    WorkflowInstance.BookmarkResumed,
    WorkflowInstance.TaskCompleted,
    WorkflowInstance.TaskClaimed,
    WorkflowInstance.TaskDelegated,
    WorkflowInstance.TaskEscalated,
    WorkflowInstance.BookmarkCancelled,
    WorkflowInstance.JoinArrived,
    WorkflowInstance.JoinCompleted,
    WorkflowInstance.InclusiveSplit,
    WorkflowInstance.PartialJoinCompleted,
    WorkflowInstance.JoinArrivalIgnored,
    WorkflowInstance.InterleavedBranchStarted,
    WorkflowInstance.BranchEnded,
    WorkflowInstance.ActivityScheduled,
    WorkflowInstance.ActivityRetryScheduled,
    WorkflowInstance.ActivityCompleted,
    WorkflowInstance.ActivityFailed,
    WorkflowInstance.ActivityCancelled,
    WorkflowInstance.ForEachStarted,
    WorkflowInstance.ForEachItemCompleted,
    WorkflowInstance.ForEachCompleted,
    WorkflowInstance.CompensationRegistered,
    WorkflowInstance.CompensationStarted,
    WorkflowInstance.StepCompensated,
    WorkflowInstance.CompensationCompleted,
    WorkflowInstance.Completed,
    WorkflowInstance.Failed,
    WorkflowInstance.Cancelled,
    WorkflowInstance.BoundaryFired,
    WorkflowInstance.EventGatewayDecided,
    WorkflowInstance.IncidentRaised,
    WorkflowInstance.IncidentRetried,
    WorkflowInstance.IncidentSkipped,
    WorkflowInstance.IncidentClosed,
    WorkflowInstance.InstanceModified,
    WorkflowInstance.InstanceMigrated,
)

# The events that end an instance.
ENDING_EVENTS: tuple[type[InstanceEvent], ...] = (
    WorkflowInstance.Completed,
    WorkflowInstance.Failed,
    WorkflowInstance.Cancelled,
)

CLOUDEVENTS_TYPE_PREFIX = "waymark.instance."


def event_name(event_class: type[InstanceEvent]) -> str:
    """The event's name, as the history endpoint shows it: `BookmarkCreated`."""
    return event_class.__name__


def cloudevents_type(event_class: type[InstanceEvent]) -> str:
    """The CloudEvents `type` of the event: `waymark.instance.bookmark_created`."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", event_name(event_class)).lower()
    return CLOUDEVENTS_TYPE_PREFIX + snake


# The class of each event by its name (`HistoryEntry.type`, the history endpoint's `type`).
EVENTS_BY_NAME: dict[str, type[InstanceEvent]] = {event_name(c): c for c in INSTANCE_EVENTS}
