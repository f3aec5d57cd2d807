"""InstanceStore on PostgreSQL: instances' events and their projection saved in one commit."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import psycopg.errors
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, DomainEvent
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresDatastore

from application.ports import (
    ConcurrencyConflictError,
    DuplicateIdempotencyKeyError,
    HistoryEntry,
)
from application.read_models import Projection
from domain.events import InstanceEvent, event_name
from infrastructure.postgres.event_store import WaymarkApplication, WaymarkFactory
from infrastructure.postgres.recorder import EVENTS_TABLE, IDEMPOTENCY_CONSTRAINTS

if TYPE_CHECKING:
    from domain.instance import WorkflowInstance

EVENTS_PRIMARY_KEY = f"{EVENTS_TABLE}_pkey"
# Envelope fields: reported as the entry's version/timestamp, or internal to the library.
_EVENT_FIELDS_NOT_IN_DATA = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)

_SELECT_HISTORY = (
    "SELECT originator_id, originator_version, topic, state, notification_id "
    "FROM waymark_events WHERE originator_id = %s AND originator_version > %s "
    "ORDER BY originator_version LIMIT %s"
)
_SELECT_OWNED = "SELECT 1 FROM instances WHERE id = %s AND tenant = %s"
_SELECT_AT_VERSIONS = (
    "SELECT e.originator_id, e.originator_version, e.topic, e.state "
    "FROM waymark_events e "
    "JOIN unnest(%s::uuid[], %s::bigint[]) AS k(originator_id, originator_version) "
    "USING (originator_id, originator_version)"
)


class PostgresInstanceStore:
    """Loads instances from their events; saves events and projection atomically."""

    def __init__(self, app: WaymarkApplication) -> None:
        self.app = app

    @property
    def datastore(self) -> PostgresDatastore:
        # Application.factory is typed as the library's base factory; ours is a WaymarkFactory.
        return cast(WaymarkFactory, self.app.factory).datastore

    def get(self, instance_id: UUID, tenant: str | None = None) -> WorkflowInstance | None:
        # The read-model row is written in the transaction of the instance's first events,
        # so "no row for this tenant" means "not this tenant's" (or not there at all).
        if tenant is not None and not self._belongs_to(instance_id, tenant):
            return None
        try:
            return self.app.repository.get(instance_id)
        except AggregateNotFoundError:
            return None

    def _belongs_to(self, instance_id: UUID, tenant: str) -> bool:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT_OWNED, (instance_id, tenant))
            return curs.fetchone() is not None

    def save(self, instances: Sequence[Aggregate], projection: Projection) -> None:
        # Collect the pending events ourselves (the aggregates' queues are emptied either
        # way) so that a failed save can be compared with what is in the table.
        pending = [event for instance in instances for event in instance.collect_events()]
        try:
            self.app.save(*pending, projection=projection)
        except IntegrityError as error:
            self._classify_conflict(error, pending, [i.id for i in instances])

    def _classify_conflict(
        self, error: IntegrityError, pending: list[Any], instance_ids: list[UUID]
    ) -> None:
        """Return if our events are in fact committed, else raise the matching port error."""
        ours = [self.app.mapper.to_stored_event(event) for event in pending]
        stored = self._stored_at(ours)
        # The library retries insert_events on a dropped connection; when the first try
        # committed but its reply was lost, the retry collides with our own events. Events
        # carry unique ids and timestamps, so byte-identical rows can only be ours.
        if ours and all(stored.get(_key(e)) == (e.topic, e.state) for e in ours):
            return
        constraint = _constraint_name(error)
        if constraint in IDEMPOTENCY_CONSTRAINTS:
            raise DuplicateIdempotencyKeyError(
                f"idempotency key already used (constraint {constraint})"
            ) from error
        if constraint == EVENTS_PRIMARY_KEY:
            # StoredEvent.originator_id is typed UUID | str; aggregates here have UUID ids.
            conflicted = list(
                dict.fromkeys(cast(UUID, e.originator_id) for e in ours if _key(e) in stored)
            )
            raise ConcurrencyConflictError(conflicted or instance_ids) from error
        raise error

    def _stored_at(self, ours: list[StoredEvent]) -> dict[tuple[UUID, int], tuple[str, bytes]]:
        if not ours:
            return {}
        ids = [e.originator_id for e in ours]
        versions = [e.originator_version for e in ours]
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT_AT_VERSIONS, (ids, versions))
            return {
                (row["originator_id"], row["originator_version"]): (
                    row["topic"],
                    bytes(row["state"]),
                )
                for row in curs.fetchall()
            }

    def history(
        self, instance_id: UUID, after_version: int = 0, limit: int | None = None
    ) -> list[HistoryEntry]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT_HISTORY, (instance_id, after_version, limit))
            rows = curs.fetchall()
        entries = []
        for row in rows:
            event = self.app.mapper.to_domain_event(
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
            )
            data = {
                name: json_safe(value)
                for name, value in vars(event).items()
                if name not in _EVENT_FIELDS_NOT_IN_DATA
            }
            entries.append(
                HistoryEntry(
                    position=row["notification_id"],
                    version=row["originator_version"],
                    type=event_name(cast(type[InstanceEvent], type(event))),
                    # to_domain_event() is typed as a protocol without a timestamp;
                    # instance events are eventsourcing DomainEvents.
                    timestamp=cast(DomainEvent, event).timestamp,
                    data=data,
                )
            )
        return entries


def _key(event: StoredEvent) -> tuple[UUID, int]:
    return (UUID(str(event.originator_id)), event.originator_version)


def _constraint_name(error: BaseException) -> str | None:
    """The violated constraint behind eventsourcing's wrapped psycopg error, if any."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, psycopg.errors.IntegrityError):
            return cause.diag.constraint_name
        cause = cause.__cause__
    return None


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
