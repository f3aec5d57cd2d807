"""What started an instance: the `started_by` of its `Started` event.

The event stores a JSON-like dict (like every payload); `StartedBy` is its typed form and
`StartKind` the closed list of kinds. Events stored before `started_by` existed carry none:
the instance then shows `started_by: null`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class StartKind(StrEnum):
    """Who or what asked for the start."""

    API = "api"  # POST /v1/instances (key: the API key's name)
    EVENT = "event"  # POST /v1/events matched an `event` trigger (event_type, correlation)
    WEBHOOK = "webhook"  # a signed POST to the definition's webhook
    SCHEDULE = "schedule"  # a cron `schedule` trigger's tick (tick, cron, timezone)
    PARENT = "parent"  # a `sub_workflow` node of the parent instance (parent_id, node_id)
    KAFKA = "kafka"  # a message from a Kafka topic (topic)


@dataclass(frozen=True)
class StartedBy:
    """The origin of an instance; the fields beyond `kind` depend on the kind."""

    kind: StartKind
    key_name: str | None = None  # api
    user: str | None = None  # api: the person (a token's user, or a key's On-Behalf-Of)
    event_type: str | None = None  # event
    correlation: str | None = None  # event
    tick: str | None = None  # schedule: the tick's UTC time, ISO 8601
    cron: str | None = None  # schedule
    timezone: str | None = None  # schedule
    parent_id: str | None = None  # parent
    node_id: str | None = None  # parent: the sub_workflow node
    topic: str | None = None  # kafka

    def to_payload(self) -> dict[str, Any]:
        """The event's JSON form: the kind and the fields that are set."""
        payload: dict[str, Any] = {"kind": str(self.kind)}
        for name, value in vars(self).items():
            if name != "kind" and value is not None:
                payload[name] = value
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> StartedBy:
        known = {k: v for k, v in payload.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "kind": StartKind(payload["kind"])})


def by_api(key_name: str | None, user: str | None = None) -> dict[str, Any]:
    return StartedBy(StartKind.API, key_name=key_name, user=user).to_payload()


def by_event(event_type: str, correlation: str | None) -> dict[str, Any]:
    return StartedBy(StartKind.EVENT, event_type=event_type, correlation=correlation).to_payload()


def by_webhook() -> dict[str, Any]:
    return StartedBy(StartKind.WEBHOOK).to_payload()


def by_schedule(tick: str, cron: str, timezone: str) -> dict[str, Any]:
    return StartedBy(StartKind.SCHEDULE, tick=tick, cron=cron, timezone=timezone).to_payload()


def by_parent(parent_id: str, node_id: str) -> dict[str, Any]:
    return StartedBy(StartKind.PARENT, parent_id=parent_id, node_id=node_id).to_payload()
