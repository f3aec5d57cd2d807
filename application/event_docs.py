"""`docs/events.md`, generated from the event catalogue: every event type with when it
happens, the JSON Schema of its data, a full Kafka message and the feed's structured form.

    python -m application.event_docs > docs/events.md

`tests/unit/test_event_docs.py` fails when the file is not what this prints (a type added
to the catalogue, a field added to an event, a description changed).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from application.envelopes import DATA_CONTENT_TYPE, EventEnvelope, envelope
from application.event_schemas import DESCRIPTIONS, ENVELOPE_ATTRIBUTES, data_schema
from application.ports import HistoryEntry
from domain.events import INSTANCE_EVENTS, InstanceEvent, cloudevents_type, event_name
from domain.instance import WorkflowInstance as W

INSTANCE = UUID("0b5f5c1e-6f4e-4a43-9d0c-2f7c1a9e8d21")
TENANT = "acme"
AT = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
_T = AT.isoformat()

_BOOKMARK = {
    "id": "bm-7f3a",
    "node_id": "manager_approval",
    "node_type": "approval",
    "kind": "task",
    "created_at": _T,
    "token": None,
    "event_type": None,
    "correlation": None,
    "due_at": (AT + timedelta(hours=24)).isoformat(),
    "task_kind": "approval",
    "name": "Manager Approval",
    "role": "manager",
    "assignee": None,
    "urgency": "normal",
    "escalate_to_role": "director",
}
_ACTIVITY = {
    "id": "act-91c2",
    "node_id": "notify",
    "attempt": 1,
    "attempt_number": 1,
    "action": {"type": "http", "method": "POST", "url": "https://erp.example/po/PO-1/approved"},
    "timeout_seconds": 30.0,
    "run_after": _T,
    "idempotency_key": f"{INSTANCE}:notify:1",
}

# One realistic `data` per type, in the catalogue's order (checked against each schema).
EXAMPLES: dict[type[InstanceEvent], dict[str, Any]] = {
    W.Started: {
        "tenant": TENANT,
        "definition": "purchase-approval",
        "definition_version": 3,
        "input": {"amount": 500, "po_id": "PO-1"},
        "correlation_id": "po-PO-1",
        "idempotency_key": None,
        "parent": None,
        "started_by": {"kind": "api", "key_name": "key-3f1c9a0b2e"},
    },
    W.NodeEntered: {"node_id": "manager_approval", "node_type": "approval", "via_route": None},
    W.VariablesSet: {"node_id": "enrich", "values": {"region": "emea"}},
    W.NodeCompleted: {
        "node_id": "manager_approval",
        "outcome": "approved",
        "result": {"outcome": "approved", "data": {}},
        "result_var": None,
    },
    W.BookmarkCreated: {"bookmark": _BOOKMARK},
    W.BookmarkResumed: {
        "bookmark_id": "bm-2c1d",
        "source": "event",
        "payload": {"shipped": True},
        "at": _T,
    },
    W.TaskCompleted: {
        "bookmark_id": "bm-7f3a",
        "outcome": "approved",
        "data": {"note": "within budget"},
        "comment": None,
        "completed_by": "alice",
        "at": _T,
        "actor": {"kind": "user", "id": "alice"},
    },
    W.TaskClaimed: {
        "bookmark_id": "bm-7f3a",
        "claimed_by": "alice",
        "actor": {"kind": "user", "id": "alice"},
    },
    W.TaskDelegated: {
        "bookmark_id": "bm-7f3a",
        "assignee": "bob",
        "delegated_by": "alice",
        "actor": {"kind": "user", "id": "alice", "via_key": "key-3f9a01c2de", "override": "admin"},
    },
    W.TaskEscalated: {"bookmark_id": "bm-7f3a", "to_role": "director", "at": _T},
    W.BookmarkCancelled: {"bookmark_id": "bm-2c1d", "reason": "instance cancelled", "at": _T},
    W.JoinArrived: {"node_id": "meet", "route_index": 0},
    W.JoinCompleted: {"node_id": "meet"},
    W.InclusiveSplit: {"node_id": "choose", "join_id": "meet", "routes": [0, 2]},
    W.PartialJoinCompleted: {
        "node_id": "first",
        "arrived": 1,
        "expected": 3,
        "cancelled": True,
        "ignored": 0,
        "reset": [],
    },
    W.JoinArrivalIgnored: {"node_id": "first", "route_index": 4},
    W.InterleavedBranchStarted: {
        "node_id": "checks",
        "join_id": "checked",
        "route_index": 2,
        "started": [3, 2],
        "branches": 3,
    },
    W.BranchEnded: {"node_id": "branch_done"},
    W.ActivityScheduled: {"activity": _ACTIVITY},
    W.ActivityRetryScheduled: {
        "activity_id": "act-91c2",
        "failed_attempt": 1,
        "error": "HTTP 503 from https://erp.example/po/PO-1/approved",
        "attempt": 2,
        "attempt_number": 1,
        "run_after": (AT + timedelta(seconds=1)).isoformat(),
        "idempotency_key": f"{INSTANCE}:notify:1",
    },
    W.ActivityCompleted: {
        "activity_id": "act-91c2",
        "attempt": 2,
        "output": {"status": 200, "body": {"ok": True}},
    },
    W.ActivityFailed: {
        "activity_id": "act-91c2",
        "attempt": 5,
        "error": "HTTP 503 from https://erp.example/po/PO-1/approved",
    },
    W.ActivityCancelled: {"activity_id": "act-91c2"},
    W.ForEachStarted: {
        "node_id": "reviews",
        "items": ["alice", "bob", "carol"],
        "mode": "parallel",
        "run": 1,
    },
    W.ForEachItemCompleted: {
        "node_id": "reviews",
        "index": 1,
        "result": {"outcome": "approved", "data": {}, "comment": None, "by": "bob"},
    },
    W.ForEachCompleted: {"node_id": "reviews", "completed": 2, "cancelled": 1},
    W.CompensationRegistered: {"node_id": "reserve_stock", "result": {"reservation": "R-7"}},
    W.CompensationStarted: {
        "node_id": "undo",
        "steps": [{"seq": 1, "node_id": "reserve_stock", "result": {"reservation": "R-7"}}],
    },
    W.StepCompensated: {
        "node_id": "undo",
        "step_node_id": "reserve_stock",
        "seq": 1,
        "output": {"status": 200},
    },
    W.CompensationCompleted: {"node_id": "undo"},
    W.Completed: {"node_id": "done", "output": {"approved": True}, "at": _T},
    W.Failed: {
        "node_id": "notify",
        "error": {"message": "notify failed after 5 attempts", "node_id": "notify"},
        "at": _T,
    },
    W.Cancelled: {"reason": "withdrawn by the requester", "at": _T},
    W.BoundaryFired: {
        "node_id": "manager_approval",
        "bookmark_id": "bm-5e0b",
        "host_id": "bm-7f3a",
        "index": 0,
        "interrupting": True,
        "to": "auto_reject",
        "at": _T,
    },
    W.EventGatewayDecided: {
        "node_id": "first_reply",
        "group": "gw-1a2b",
        "bookmark_id": "bm-2c1d",
        "winner_node_id": "customer_replied",
        "at": _T,
    },
    W.IncidentRaised: {
        "incident_id": "inc-4d2e",
        "node_id": "charge_card",
        "node_type": "service_task",
        "error": {"message": "HTTP 503 after 3 attempts", "node_id": "charge_card"},
        "at": _T,
    },
    W.IncidentRetried: {
        "incident_id": "inc-4d2e",
        "node_id": "charge_card",
        "variables": {"card_token": "tok-2"},
        "reopened": False,
        "actor": "key:ops",
        "reason": "payment provider back up",
        "at": _T,
    },
    W.IncidentSkipped: {
        "incident_id": "inc-4d2e",
        "node_id": "charge_card",
        "result": {"charged": True, "manual": True},
        "outcome": None,
        "reopened": False,
        "actor": "key:ops",
        "reason": "charged by hand in the provider's console",
        "at": _T,
    },
    W.IncidentClosed: {"incident_id": "inc-4d2e", "reason": "instance cancelled", "at": _T},
    W.InstanceModified: {
        "operations": [{"cancel": "manager_approval"}, {"start_before": "notify_requester"}],
        "by": "ops:ann",
        "reason": "the manager left; the request goes on without approval",
        "at": _T,
    },
    W.InstanceMigrated: {
        "from_version": 1,
        "to_version": 2,
        "nodes": {"manager_approval": "approval"},
        "routes": {"3": 4},
        "by": "ops:ann",
        "reason": "version 2 fixes the amount rule",
        "at": _T,
    },
}


def example_envelope(event_class: type[InstanceEvent]) -> EventEnvelope:
    """The example event as `application/envelopes.py` maps a stored one."""
    version = INSTANCE_EVENTS.index(event_class) + 1
    entry = HistoryEntry(
        position=41_200 + version,
        version=version,
        type=event_name(event_class),
        timestamp=AT,
        data=EXAMPLES[event_class],
    )
    return envelope(entry, instance_id=INSTANCE, tenant=TENANT)


def kafka_message(event: EventEnvelope) -> dict[str, Any]:
    """The CloudEvents Kafka binding, binary mode (SPEC §5): key, headers and value."""
    return {
        "topic": "waymark.events",
        "key": event.subject,
        "headers": {
            "ce_specversion": "1.0",
            "ce_id": event.id,
            "ce_type": event.type,
            "ce_source": event.source,
            "ce_time": event.time.isoformat(),
            "ce_subject": event.subject,
            "waymark_tenant": event.tenant,
            "waymark_position": str(event.position),
            "content-type": DATA_CONTENT_TYPE,
        },
        "value": event.data,
    }


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _anchor(event_class: type[InstanceEvent]) -> str:
    return cloudevents_type(event_class).replace(".", "")


_INTRO = """\
# Event types

<!-- Generated by `python -m application.event_docs > docs/events.md`; do not edit by hand.
     tests/unit/test_event_docs.py fails when this file is stale. -->

Every change of a workflow instance is stored as an event. Each stored event leaves Waymark
as a [CloudEvents 1.0](https://github.com/cloudevents/spec) event, built in one place
(`application/envelopes.py`):

- on **Kafka**, topic `waymark.events`, in the CloudEvents Kafka binding's *binary* mode:
  the attributes are headers (`ce_*`, plus `waymark_tenant` and `waymark_position`), the
  message key is the instance id (so one instance's events stay on one partition, in order),
  the value is the event's `data` as JSON;
- over **HTTP**, `GET /v1/feed` and `GET /v1/feed/stream` (Server-Sent Events), in the
  *structured* JSON form: the attributes and `data` in one object
  ([api.md](api.md#event-feed)).

`GET /v1/event-types` serves the same catalogue as JSON (with every schema below).

Delivery is at-least-once: de-duplicate by `id` (`ce_id`), which is `<instance id>:<version>`
and the same each time an event is delivered again. Within an instance, events arrive in
commit order (`version` increases by one); across instances, `waymarkposition`
(`waymark_position`) increases in commit order. Consumers ignore members they do not know:
new members may be added to `data`; a removed or renamed member is a new event type.

## The envelope

| structured (feed) | Kafka header | JSON type | meaning |
|---|---|---|---|
"""

_HEADERS = {
    "specversion": "`ce_specversion`",
    "id": "`ce_id`",
    "type": "`ce_type`",
    "source": "`ce_source`",
    "subject": "`ce_subject` (and the message key)",
    "time": "`ce_time`",
    "datacontenttype": "`content-type`",
    "waymarktenant": "`waymark_tenant`",
    "waymarkposition": "`waymark_position` (decimal text)",
    "data": "the message value",
}

_CONSUMER = """\
## Writing a consumer

- **From Kafka**: the README's "Kafka" section shows how to point Waymark at a cluster and
  a runnable consumer in Python (aiokafka) that de-duplicates by `ce_id`. Read `ce_type`
  from the headers to dispatch, parse the value as JSON, and validate it against the type's
  schema above (or the one `GET /v1/event-types` serves) if you want to be strict.
- **Over HTTP, without a broker**: poll `GET /v1/feed?after=<last waymarkposition>` and keep
  `next_after`, or hold `GET /v1/feed/stream` open (an EventSource reconnects with
  `Last-Event-ID` and resumes exactly). See [api.md](api.md#event-feed).
- Store the last position (or the `ce_id`s) you processed in the same transaction as the
  effect of processing it: that is what makes at-least-once delivery exactly-once for you.
"""


def _envelope_table() -> list[str]:
    rows = []
    for name, attribute in ENVELOPE_ATTRIBUTES.items():
        kind = attribute.get("type", "")
        if "format" in attribute:
            kind += f" ({attribute['format']})"
        meaning = attribute.get("description") or (
            f"always `{attribute['const']}`" if "const" in attribute else ""
        )
        rows.append(f"| `{name}` | {_HEADERS[name]} | {kind} | {meaning} |")
    return rows


def _kind(schema: dict[str, Any]) -> str:
    """A schema in a few words: `string (date-time)`, `integer or null`, `any JSON`."""
    if "anyOf" in schema:
        return " or ".join(_kind(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type")
    if kind is None:
        return "any JSON"
    if kind == "object" and "properties" in schema:
        return "object (" + ", ".join(f"`{p}`" for p in schema["properties"]) + ")"
    return f"{kind} ({schema['format']})" if "format" in schema else str(kind)


def _section(event_class: type[InstanceEvent]) -> list[str]:
    example = example_envelope(event_class)
    schema_of_data = data_schema(event_class)
    properties: dict[str, Any] = schema_of_data["properties"]
    return [
        f"### {cloudevents_type(event_class)}",
        "",
        f"`{event_name(event_class)}` (the history's `type`) — {DESCRIPTIONS[event_class]}",
        "",
        "| `data` member | type |",
        "|---|---|",
        *(f"| `{name}` | {_kind(schema)} |" for name, schema in properties.items()),
        "",
        "<details><summary>JSON Schema of <code>data</code></summary>",
        "",
        "```json",
        _json(schema_of_data),
        "```",
        "",
        "</details>",
        "",
        "Kafka message (binary mode):",
        "",
        "```json",
        _json(kafka_message(example)),
        "```",
        "",
        "Feed item (structured mode):",
        "",
        "```json",
        _json(example.structured()),
        "```",
        "",
    ]


def markdown() -> str:
    """The whole of docs/events.md."""
    lines = [_INTRO.rstrip("\n"), *_envelope_table(), "", "## Types", ""]
    lines += [
        f"- [`{cloudevents_type(c)}`](#{_anchor(c)}) — {event_name(c)}" for c in INSTANCE_EVENTS
    ]
    lines.append("")
    for event_class in INSTANCE_EVENTS:
        lines += _section(event_class)
    lines.append(_CONSUMER)
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
