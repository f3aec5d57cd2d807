"""DueTimers and ActivityQueue in memory, over the bookmarks and activities tables."""

from __future__ import annotations

from datetime import datetime, timedelta

from application.read_models import ActivityRow, BookmarkRow
from infrastructure.memory.tables import Lease, MemoryTables

_TIMER_KINDS = ("timer", "wait")


class MemoryDueTimers:
    """Open timer and wait-timeout bookmarks whose time has come, oldest first."""

    def __init__(self, tables: MemoryTables) -> None:
        self.tables = tables

    def _open_timers(self) -> list[BookmarkRow]:
        with self.tables.lock:
            return [
                b
                for b in self.tables.bookmarks.values()
                if b.status == "open" and b.kind in _TIMER_KINDS and b.due_at is not None
            ]

    def due(self, now: datetime, limit: int) -> list[BookmarkRow]:
        due = [b for b in self._open_timers() if b.due_at is not None and b.due_at <= now]
        return sorted(due, key=lambda b: (b.due_at, b.id))[:limit]

    def next_due(self) -> datetime | None:
        return min((b.due_at for b in self._open_timers() if b.due_at is not None), default=None)


class MemoryActivityQueue:
    """Leases due `scheduled` activities; an expired lease is claimable again."""

    def __init__(self, tables: MemoryTables) -> None:
        self.tables = tables

    def claim(
        self, worker_id: str, limit: int, lease_seconds: float, now: datetime
    ) -> list[ActivityRow]:
        if limit < 1:
            return []
        until = now + timedelta(seconds=lease_seconds)
        with self.tables.lock:
            free = [
                a
                for a in self.tables.activities.values()
                if a.status == "scheduled"
                and a.run_after <= now
                and (a.id not in self.tables.leases or self.tables.leases[a.id].until < now)
            ]
            claimed = sorted(free, key=lambda a: a.run_after)[:limit]
            for activity in claimed:
                self.tables.leases[activity.id] = Lease(worker_id, until)
            return claimed

    def release(self, activity_id: str, attempt: int) -> None:
        with self.tables.lock:
            activity = self.tables.activities.get(activity_id)
            if activity is not None and activity.attempt == attempt:
                self.tables.leases.pop(activity_id, None)
