"""The published event types: for every event of the catalogue (`domain/events.py`), its
CloudEvents type, when it happens, and a JSON Schema of its `data` derived from the event
class's annotations (`domain/instance.py`), so the schema cannot drift from the code.

Served at `GET /v1/event-types` and rendered into `docs/events.md` (`application/event_docs.py`).
The domain stays pure: this module reads its classes, they know nothing of JSON Schema.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from datetime import datetime
from typing import Any, Union
from uuid import UUID

from application.envelopes import DATA_CONTENT_TYPE, SPECVERSION
from domain.events import INSTANCE_EVENTS, InstanceEvent, cloudevents_type, event_name
from domain.instance import WorkflowInstance
from domain.state import Activity, Bookmark

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Attributes every event has, which the envelope carries (id, time, subject), not `data`
# (the same set the history endpoint leaves out; infrastructure/history.py).
_ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)

# When each event happens. A new event of the catalogue needs a line here (a test fails).
DESCRIPTIONS: dict[type[InstanceEvent], str] = {
    WorkflowInstance.Started: "An instance was started (by the API, an event, a webhook, a "
    "Kafka command or a parent's sub-workflow node); always the instance's first event.",
    WorkflowInstance.NodeEntered: "The instance entered a node of its definition "
    "(`via_route`: the index of the route taken, when it came over one).",
    WorkflowInstance.VariablesSet: "A node (a `set` or script node, or a task's result) "
    "changed instance variables; `values` holds the new values.",
    WorkflowInstance.NodeCompleted: "A node finished, with its outcome and result (stored "
    "in `result_var` when the node names one).",
    WorkflowInstance.BookmarkCreated: "The instance started waiting: a human task, a wait "
    "for an event or callback, a timer or a sub-workflow (`bookmark.kind`).",
    WorkflowInstance.BookmarkResumed: "A wait ended: its event, callback, timer or child "
    "arrived (`source` says which; `payload` is what it brought).",
    WorkflowInstance.TaskCompleted: "A human task was completed with an outcome and form data.",
    WorkflowInstance.TaskClaimed: "A human task was claimed by a user.",
    WorkflowInstance.TaskDelegated: "A human task was delegated to another assignee.",
    WorkflowInstance.TaskEscalated: "A human task passed its SLA: marked overdue and, unless "
    "escalation is off, `to_role` became a candidate role of the task (null: only overdue).",
    WorkflowInstance.BookmarkCancelled: "A wait was closed without resuming it (the instance "
    "was cancelled or failed, a wait timed out, or a branch moved on).",
    WorkflowInstance.JoinArrived: "A parallel branch arrived at a join node (`route_index`: "
    "which incoming route).",
    WorkflowInstance.JoinCompleted: "Every branch a join waits for has arrived; the instance "
    "goes on past it.",
    WorkflowInstance.InclusiveSplit: "An inclusive gateway took `routes` (every route whose "
    "condition held, or its default); its closing join `join_id` waits for that many branches.",
    WorkflowInstance.PartialJoinCompleted: "A join with `wait_for` went on after `arrived` of "
    "`expected` branches; the others were cancelled (`cancelled`) or `ignored` of their later "
    "arrivals will be dropped.",
    WorkflowInstance.JoinArrivalIgnored: "A branch reached a join that had already gone on "
    "without it (`wait_for`); the branch ends there.",
    WorkflowInstance.InterleavedBranchStarted: "An interleaved `parallel` (WCP-17) started "
    "one of its branches (`route_index`); `started` lists every branch started so far. The "
    "next one starts when this one reaches the closing join `join_id`.",
    WorkflowInstance.BranchEnded: "A branch reached an end node with `terminate: false`: "
    "only that branch ended; the instance ends when no branch is left.",
    WorkflowInstance.ActivityScheduled: "A service task's side effect was scheduled for a "
    "task worker (`activity.action`: what it will call).",
    WorkflowInstance.ActivityRetryScheduled: "A service task's attempt failed and another "
    "attempt was scheduled for `run_after` (its retry policy allows it).",
    WorkflowInstance.ActivityCompleted: "A service task's side effect succeeded, with its output.",
    WorkflowInstance.ActivityFailed: "A service task failed for good (no attempt left, or a "
    "non-retryable error).",
    WorkflowInstance.ActivityCancelled: "A scheduled service task was withdrawn before it "
    "ran (the instance was cancelled or moved on).",
    WorkflowInstance.ForEachStarted: "A `for_each` node evaluated its `items` (stored here, "
    "never evaluated again); one task, activity or child per item follows.",
    WorkflowInstance.ForEachItemCompleted: "One item of a `for_each` node finished "
    "(`index` in the items, `result` its task decision, activity output or child output).",
    WorkflowInstance.ForEachCompleted: "A `for_each` node finished: every item did, or its "
    "`completion` expression held (`cancelled`: items still open, now cancelled).",
    WorkflowInstance.CompensationRegistered: "A service task with a `compensation` "
    "completed: its undo step will run if the saga compensates (`result`: the step's result).",
    WorkflowInstance.CompensationStarted: "An `end` with `compensate` or a `compensate` node "
    "started undoing `steps`, newest first, one activity each.",
    WorkflowInstance.StepCompensated: "One step's compensation action succeeded.",
    WorkflowInstance.CompensationCompleted: "Every step of a compensation run was undone; the "
    "node that started it goes on.",
    WorkflowInstance.Completed: "The instance reached an end node; `output` is its result. "
    "Its last event.",
    WorkflowInstance.Failed: "The instance failed (a failed end node or an unhandled node "
    "error); `error` says why. Its last event.",
    WorkflowInstance.Cancelled: "The instance was cancelled (API, Kafka command or parent). "
    "Its last event.",
    WorkflowInstance.BoundaryFired: "A boundary timer or event of a node fired (the "
    "boundary's bookmark is resumed in the same commit): an interrupting one cancelled its "
    "host (`host_id`: the task, wait, child or activity) and went on at `to`; a "
    "non-interrupting one started `to` alongside and left the host open.",
    WorkflowInstance.EventGatewayDecided: "The first wait or timer after an event gateway "
    "fired (`bookmark_id`, at `winner_node_id`); the other waits of the same entry "
    "(`group`) are cancelled in the same commit.",
    WorkflowInstance.IncidentRaised: "A node failed with no `error` route and `on_failure: "
    '"incident"`: the instance is held (status `incident`) instead of failing, until an '
    "operator retries or skips the node (`GET /v1/incidents`).",
    WorkflowInstance.IncidentRetried: "An operator retried the failed node "
    "(`POST /v1/instances/{id}/retry`): `variables` were merged, then the node is entered "
    "again. `reopened`: the instance had FAILED (no incident) and runs again. `actor` and "
    "`reason` say who and why.",
    WorkflowInstance.IncidentSkipped: "An operator completed the failed node with `result` "
    "(and `outcome`) instead of running it (`POST /v1/instances/{id}/skip`); its "
    "`NodeCompleted` follows in the same commit. `actor` and `reason` say who and why.",
    WorkflowInstance.IncidentClosed: "The instance ended or was cancelled while the "
    "incident was still open.",
    WorkflowInstance.InstanceModified: "An operator modified the instance (`POST "
    "/v1/instances/{id}/modify`): `operations` in order (`cancel` a node's open work, "
    "`start_before` a node), `by` and `reason`. The cancellations and the walk from the "
    "started nodes follow in the same commit.",
    WorkflowInstance.InstanceMigrated: "The instance moved from `from_version` to "
    "`to_version` of its definition (a migration job): node ids in its state renamed by "
    "`nodes`, join arrivals' route indices by `routes` (old index as a string → new index); "
    "bookmarks, tokens, activities, variables and tasks are kept. `by` and `reason` say who "
    "and why.",
}

# Fields that hold a typed state object as JSON: documented with that object's schema.
_NESTED_STATE: dict[tuple[type[InstanceEvent], str], type] = {
    (WorkflowInstance.BookmarkCreated, "bookmark"): Bookmark,
    (WorkflowInstance.ActivityScheduled, "activity"): Activity,
}

# The envelope's attributes (CloudEvents 1.0 and Waymark's extensions), in the structured
# form the feed serves; the Kafka binary form carries them as `ce_*` / `waymark_*` headers.
ENVELOPE_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "specversion": {"type": "string", "const": SPECVERSION, "description": "CloudEvents version"},
    "id": {
        "type": "string",
        "description": "`<instance id>:<version>`: stable per stored event, so a republished "
        "event has the same id; de-duplicate by it",
    },
    "type": {"type": "string", "description": "the event type, e.g. `waymark.instance.started`"},
    "source": {"type": "string", "description": "`/waymark/tenants/<tenant>`"},
    "subject": {"type": "string", "format": "uuid", "description": "the instance id"},
    "time": {
        "type": "string",
        "format": "date-time",
        "description": "when the event happened (ISO 8601, UTC)",
    },
    "datacontenttype": {"type": "string", "const": DATA_CONTENT_TYPE},
    "waymarktenant": {"type": "string", "description": "the instance's tenant"},
    "waymarkposition": {
        "type": "integer",
        "minimum": 1,
        "description": "the global position: increases in commit order across all instances",
    },
    "data": {"type": "object", "description": "the event's data (its type's schema)"},
}


def type_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of a value of a Python type, as `infrastructure/history.py` renders it."""
    if annotation is Any or annotation is object:
        return {}
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = typing.get_args(annotation)
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            schema = type_schema(members[0])
        else:
            schema = {"anyOf": [type_schema(m) for m in members]}
        if len(members) < len(args):  # optional: null is allowed too
            return {"anyOf": [schema, {"type": "null"}]} if schema else {}
        return schema
    if origin is dict:
        _key, value = typing.get_args(annotation) or (str, Any)
        inner = type_schema(value)
        return {"type": "object", **({"additionalProperties": inner} if inner else {})}
    if origin in (list, tuple, set, frozenset):
        items = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return {"type": "array", **({"items": type_schema(items[0])} if items else {})}
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return {"type": "string", "enum": [m.value for m in annotation]}
        if issubclass(annotation, bool):
            return {"type": "boolean"}
        if issubclass(annotation, int):
            return {"type": "integer"}
        if issubclass(annotation, float):
            return {"type": "number"}
        if issubclass(annotation, str):
            return {"type": "string"}
        if issubclass(annotation, datetime):
            return {"type": "string", "format": "date-time"}
        if issubclass(annotation, UUID):
            return {"type": "string", "format": "uuid"}
        if dataclasses.is_dataclass(annotation):
            return _dataclass_schema(annotation)
    raise TypeError(f"no JSON Schema for {annotation!r}")


def _dataclass_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    return {
        "type": "object",
        "properties": {f.name: type_schema(hints[f.name]) for f in fields},
        "required": [
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ],
        "additionalProperties": True,
    }


def data_fields(event_class: type[InstanceEvent]) -> dict[str, Any]:
    """The event's own attributes (its `data`) and their annotations, in declaration order."""
    hints = typing.get_type_hints(event_class)
    own: dict[str, Any] = {}
    for klass in reversed(event_class.__mro__):
        for name in vars(klass).get("__annotations__", {}):
            hint = hints.get(name)
            ours = name not in _ENVELOPE_FIELDS and not name.startswith("_")
            if hint is not None and ours and typing.get_origin(hint) is not typing.ClassVar:
                own[name] = hint
    return own


def data_schema(event_class: type[InstanceEvent]) -> dict[str, Any]:
    """The JSON Schema of the event's `data` (every attribute is always present)."""
    properties: dict[str, Any] = {}
    for name, annotation in data_fields(event_class).items():
        nested = _NESTED_STATE.get((event_class, name))
        properties[name] = _dataclass_schema(nested) if nested else type_schema(annotation)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": f"{event_name(event_class)} data",
        "type": "object",
        "properties": properties,
        "required": list(properties),
        # More members may come in a later version; consumers ignore what they do not know.
        "additionalProperties": True,
    }


def envelope_schema() -> dict[str, Any]:
    """The JSON Schema of the structured CloudEvents envelope (the feed's items)."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "Waymark event (CloudEvents 1.0, structured)",
        "type": "object",
        "properties": ENVELOPE_ATTRIBUTES,
        "required": list(ENVELOPE_ATTRIBUTES),
        "additionalProperties": True,
    }


def event_types() -> list[dict[str, Any]]:
    """The catalogue as `GET /v1/event-types` serves it, in the catalogue's order."""
    return [
        {
            "name": event_name(c),
            "type": cloudevents_type(c),
            "description": DESCRIPTIONS[c],
            "data_schema": data_schema(c),
        }
        for c in INSTANCE_EVENTS
    ]


def catalogue() -> dict[str, Any]:
    """Every event type and the envelope they travel in."""
    return {"envelope": envelope_schema(), "items": event_types()}
