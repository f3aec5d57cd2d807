"""InstanceStore in memory: the library's POPO recorder plus the in-memory read models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, DomainEvent
from eventsourcing.persistence import IntegrityError

from application.ports import ConcurrencyConflictError, HistoryEntry, InstanceRead
from application.read_models import BookmarkRow, Projection
from domain.instance import WorkflowInstance
from infrastructure.history import history_entry
from infrastructure.memory.event_store import MemoryApplication
from infrastructure.memory.tables import MemoryTables


class MemoryInstanceStore:
    """Loads instances from their events; saves events and projection in one locked step."""

    def __init__(self, tables: MemoryTables) -> None:
        self.tables = tables
        self.app = MemoryApplication(tables)

    def get(
        self, instance_id: UUID, tenant: str | None = None, version: int | None = None
    ) -> WorkflowInstance | None:
        if tenant is not None:
            row = self.tables.instances.get(instance_id)
            if row is None or row.tenant != tenant:
                return None
        try:
            return cast(WorkflowInstance, self.app.repository.get(instance_id, version=version))
        except AggregateNotFoundError:
            return None

    def get_many(self, instance_ids: Sequence[UUID]) -> dict[UUID, WorkflowInstance]:
        found = {i: self.get(i) for i in dict.fromkeys(instance_ids)}
        return {i: instance for i, instance in found.items() if instance is not None}

    def by_bookmark_token(self, token: str) -> tuple[BookmarkRow, InstanceRead] | None:
        with self.tables.lock:
            bookmark = next((b for b in self.tables.bookmarks.values() if b.token == token), None)
        if bookmark is None:
            return None
        # The version unsaid: a caller then always rebuilds (no cached copy is taken for it).
        return bookmark, InstanceRead(
            bookmark.instance_id, None, lambda: self.get(bookmark.instance_id)
        )

    def save(self, changes: Sequence[Aggregate | DomainEvent], projection: Projection) -> None:
        pending = [
            event
            for change in changes
            for event in (change.collect_events() if isinstance(change, Aggregate) else [change])
        ]
        try:
            self.app.save(*pending, projection=projection)
        except IntegrityError as error:
            raise ConcurrencyConflictError(self._conflicted(pending)) from error

    def _conflicted(self, pending: list[Any]) -> list[UUID]:
        recorder = self.app.memory_recorder
        taken = [
            cast(UUID, e.originator_id)
            for e in pending
            if recorder.select_events(
                e.originator_id, gt=e.originator_version - 1, lte=e.originator_version
            )
        ]
        return list(dict.fromkeys(taken)) or list(
            dict.fromkeys(cast(UUID, e.originator_id) for e in pending)
        )

    def history(
        self, instance_id: UUID, after_version: int = 0, limit: int | None = None
    ) -> list[HistoryEntry]:
        recorder = self.app.memory_recorder
        stored = recorder.select_events(instance_id, gt=after_version, limit=limit)
        return [
            history_entry(
                self.app.mapper,
                event,
                position=recorder.positions.get((instance_id, event.originator_version)),
            )
            for event in stored
        ]
