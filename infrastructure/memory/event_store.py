"""The eventsourcing `Application` of instances on the library's in-memory (POPO) recorder.

Same name, same environment (none read from the process) and so the same mapper and
transcodings as `infrastructure.postgres.event_store.WaymarkApplication`: events encode
the same way in memory as in `waymark_events`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, Environment, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory

from application.read_models import Projection
from infrastructure.memory.tables import MemoryTables


class MemoryRecorder(POPOApplicationRecorder):
    """Records events and, under the same lock, the command's projection."""

    def __init__(self, tables: MemoryTables) -> None:
        super().__init__()
        self.tables = tables
        # One lock for events and read models: a save is one atomic step, like a transaction.
        self._database_lock = tables.lock
        self.positions: dict[tuple[UUID, int], int] = {}

    def _assert_uniqueness(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        projection: Projection | None = None,
        **kwargs: Any,
    ) -> None:
        # The projection first, like PostgreSQL (its rows are written before the events).
        if projection is not None:
            self.tables.check(projection)
        super()._assert_uniqueness(stored_events, **kwargs)

    def _update_table(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        projection: Projection | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        if projection is not None:
            self.tables.write(projection)
        ids = super()._update_table(stored_events, **kwargs) or []
        for event, position in zip(stored_events, ids, strict=True):
            self.positions[(UUID(str(event.originator_id)), event.originator_version)] = position
        return ids


class MemoryFactory(POPOFactory):
    def __init__(self, env: Environment, tables: MemoryTables) -> None:
        super().__init__(env)
        self.tables = tables

    def application_recorder(self) -> ApplicationRecorder:
        return MemoryRecorder(self.tables)


class MemoryApplication(Application[UUID]):
    """Repository and event store of workflow instances, in this process's memory."""

    name = "waymark"

    def __init__(self, tables: MemoryTables) -> None:
        self._tables = tables
        super().__init__()

    def construct_env(self, name: str, env: Any = None) -> Environment:
        return Environment(name, {**type(self).env, **(env or {})})

    def construct_factory(self, env: Environment) -> MemoryFactory:  # type: ignore[override]
        return MemoryFactory(env, self._tables)

    @property
    def memory_recorder(self) -> MemoryRecorder:
        recorder = self.recorder
        assert isinstance(recorder, MemoryRecorder)
        return recorder
