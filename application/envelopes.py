"""The integration envelope of a stored instance event (SPEC §5): the one mapping from a
domain event to what leaves Waymark — the Kafka message of the outbox, the HTTP feed and
the examples of docs/events.md all use it, never the raw domain object.

The envelope follows CloudEvents 1.0: `id` is stable per stored event (`<instance>:<version>`),
so a republished event has the same id and consumers de-duplicate by it; `type` comes from
the event catalogue (`waymark.instance.started`); `subject` is the instance id; `position`
is the global position (the event store's notification id, in commit order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from application.audit import CLOUDEVENTS_TYPE as AUDIT_TYPE
from application.audit import AuditEntry
from application.ports import HistoryEntry
from domain.events import EVENTS_BY_NAME, cloudevents_type

SPECVERSION = "1.0"
DATA_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class EventEnvelope:
    """One stored event as other systems see it."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    tenant: str
    position: int
    data: dict[str, Any]

    def structured(self) -> dict[str, Any]:
        """The CloudEvents JSON (structured) form; the tenant and position as extensions."""
        return {
            "specversion": SPECVERSION,
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time.isoformat(),
            "datacontenttype": DATA_CONTENT_TYPE,
            "waymarktenant": self.tenant,
            "waymarkposition": self.position,
            "data": self.data,
        }


def event_source(tenant: str) -> str:
    """The CloudEvents `source`: the tenant's Waymark (a URI reference)."""
    return f"/waymark/tenants/{tenant}"


def _without_secrets(data: dict[str, Any]) -> dict[str, Any]:
    """The data minus bearer capabilities: a wait's callback `token` never leaves Waymark
    (with the tenant's secret it would resume the wait); the history still shows it."""
    bookmark = data.get("bookmark")
    if isinstance(bookmark, dict) and bookmark.get("token") is not None:
        return {**data, "bookmark": {**bookmark, "token": None}}
    return data


def envelope(entry: HistoryEntry, *, instance_id: UUID, tenant: str) -> EventEnvelope:
    """The envelope of one stored event (a history entry that has its global position)."""
    if entry.position is None:
        raise ValueError("an envelope needs the event's global position")
    return EventEnvelope(
        id=f"{instance_id}:{entry.version}",
        type=cloudevents_type(EVENTS_BY_NAME[entry.type]),
        source=event_source(tenant),
        subject=str(instance_id),
        time=entry.timestamp,
        tenant=tenant,
        position=entry.position,
        data=_without_secrets(entry.data),
    )


def audit_envelope(found: AuditEntry) -> EventEnvelope:
    """The CloudEvents envelope of a stored entry, for the outbox export: type
    `waymark.audit.recorded`, id `audit:<id>`, subject the target; `position` is the entry's
    id (the audit log's own sequence, not the event store's)."""
    if found.id is None or found.recorded_at is None:
        raise ValueError("only a stored entry has an envelope")
    return EventEnvelope(
        id=f"audit:{found.id}",
        type=AUDIT_TYPE,
        source=event_source(found.tenant),
        subject=found.target,
        time=found.recorded_at,
        tenant=found.tenant,
        position=found.id,
        data=found.as_dict(),
    )
