"""The in-memory "database": read-model tables guarded by one lock, shared by every port.

The lock is also the event recorder's, so a save checks and writes events and read-model
rows as one step, the way the PostgreSQL recorder does in one transaction.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from application.ports import (
    DefinitionChangedError,
    DuplicateIdempotencyKeyError,
    PublishedDefinition,
)
from application.read_models import (
    ActivityRow,
    AdmittedStart,
    BookmarkRow,
    IncidentRow,
    InstanceRow,
    Projection,
    TaskRow,
)


@dataclass(frozen=True)
class Lease:
    """Who holds an activity's attempt, and until when (PostgreSQL's locked_by/_until)."""

    worker_id: str
    until: datetime


@dataclass
class MemoryTables:
    """Rows keyed like the PostgreSQL tables' primary keys."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    instances: dict[UUID, InstanceRow] = field(default_factory=dict)
    bookmarks: dict[str, BookmarkRow] = field(default_factory=dict)
    tasks: dict[str, TaskRow] = field(default_factory=dict)
    activities: dict[str, ActivityRow] = field(default_factory=dict)
    incidents: dict[str, IncidentRow] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)
    # bookmarks.timer_leased_until: not a BookmarkRow field, so projections never reset it.
    timer_leases: dict[str, datetime] = field(default_factory=dict)
    idempotency: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    definitions: dict[tuple[str, str], list[PublishedDefinition]] = field(default_factory=dict)

    def check(self, projection: Projection) -> None:
        """Refuse a projection whose idempotency keys are taken (the unique constraints),
        or whose starts' definitions changed since admitted (as the PostgreSQL check)."""
        stale = [a for a in dict.fromkeys(projection.admitted) if not self._admissible(a)]
        if stale:
            raise DefinitionChangedError(stale)
        seen: set[tuple[str, str, str]] = set()
        for record in projection.idempotency:
            key = (record.tenant, record.scope, record.key)
            if key in self.idempotency or key in seen:
                raise DuplicateIdempotencyKeyError(record.tenant, record.key, scope=record.scope)
            seen.add(key)
        starts = {
            (row.tenant, row.idempotency_key): row.id
            for row in self.instances.values()
            if row.idempotency_key is not None
        }
        for row in projection.instances:
            if row.idempotency_key is None:
                continue
            owner = starts.setdefault((row.tenant, row.idempotency_key), row.id)
            if owner != row.id:
                raise DuplicateIdempotencyKeyError(
                    row.tenant, row.idempotency_key, instance_id=row.id
                )

    def _admissible(self, admitted: AdmittedStart) -> bool:
        versions = self.definitions.get((admitted.tenant, admitted.name), [])
        if admitted.latest and versions and versions[-1].version > admitted.version:
            return False
        return any(v.version == admitted.version and v.enabled for v in versions)

    def write(self, projection: Projection) -> None:
        """Upsert the rows and insert the idempotency records (after `check`)."""
        for instance in projection.instances:
            self.instances[instance.id] = instance
        for bookmark in projection.bookmarks:
            self.bookmarks[bookmark.id] = bookmark
        for task in projection.tasks:
            self.tasks[task.id] = task
        for activity in projection.activities:
            old = self.activities.get(activity.id)
            # A lease belongs to one attempt (as in the PostgreSQL upsert).
            if old is None or (old.attempt, old.status) != (activity.attempt, activity.status):
                self.leases.pop(activity.id, None)
            self.activities[activity.id] = activity
        for incident in projection.incidents:
            self.incidents[incident.id] = incident
        for record in projection.idempotency:
            self.idempotency[(record.tenant, record.scope, record.key)] = record.result
