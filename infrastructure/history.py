"""History entries: a stored instance event as the history endpoint shows it (any store)."""

from __future__ import annotations

import base64
import dataclasses
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Mapper, StoredEvent

from application.ports import HistoryEntry
from domain.events import InstanceEvent, event_name

# Envelope fields: reported as the entry's version/timestamp, or internal to the library.
_EVENT_FIELDS_NOT_IN_DATA = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)


def history_entry(mapper: Mapper[UUID], stored: StoredEvent, position: int | None) -> HistoryEntry:
    """The entry for one stored event, decoded with the application's mapper."""
    event = mapper.to_domain_event(stored)
    data = {
        name: json_safe(value)
        for name, value in vars(event).items()
        if name not in _EVENT_FIELDS_NOT_IN_DATA
    }
    return HistoryEntry(
        position=position,
        version=stored.originator_version,
        type=event_name(cast(type[InstanceEvent], type(event))),
        # to_domain_event() is typed as a protocol without a timestamp; instance events
        # are eventsourcing DomainEvents.
        timestamp=cast(DomainEvent, event).timestamp,
        data=data,
    )


def json_safe(value: Any) -> Any:
    """The value with UUIDs, timestamps, decimals, enums and bytes made JSON-serialisable."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    return str(value)
