"""In-memory implementations of the ports, for use-case tests that need no database.

One `MemoryTables` plays the database: every port built over it sees the same rows, and an
instance save writes events (the eventsourcing library's POPO recorder) and read-model rows
under one lock. tests/contract runs the same cases against these and the PostgreSQL
adapters.

    ports = MemoryPorts.build()
    runner = CommandRunner(ports.instances, DefinitionCache(ports.definitions), ...)
"""

from __future__ import annotations

from dataclasses import dataclass

from infrastructure.memory.definition_store import MemoryDefinitionStore
from infrastructure.memory.instance_store import MemoryInstanceStore
from infrastructure.memory.queries import MemoryReadModelQueries
from infrastructure.memory.queues import MemoryActivityQueue, MemoryDueTimers
from infrastructure.memory.tables import MemoryTables

__all__ = [
    "MemoryActivityQueue",
    "MemoryDefinitionStore",
    "MemoryDueTimers",
    "MemoryInstanceStore",
    "MemoryPorts",
    "MemoryReadModelQueries",
    "MemoryTables",
]


@dataclass(frozen=True)
class MemoryPorts:
    """Every storage port over one shared set of tables."""

    tables: MemoryTables
    instances: MemoryInstanceStore
    queries: MemoryReadModelQueries
    definitions: MemoryDefinitionStore
    due_timers: MemoryDueTimers
    activity_queue: MemoryActivityQueue

    @classmethod
    def build(cls, cursor_secret: bytes | None = None) -> MemoryPorts:
        tables = MemoryTables()
        return cls(
            tables=tables,
            instances=MemoryInstanceStore(tables),
            queries=MemoryReadModelQueries(tables, cursor_secret=cursor_secret),
            definitions=MemoryDefinitionStore(tables, cursor_secret=cursor_secret),
            due_timers=MemoryDueTimers(tables),
            activity_queue=MemoryActivityQueue(tables),
        )
