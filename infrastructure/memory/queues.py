"""DueTimers and ActivityQueue in memory, over the bookmarks and activities tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from application.read_models import ActivityRow, BookmarkRow
from infrastructure.memory.tables import Lease, MemoryTables

_TIMER_KINDS = ("timer", "wait")


class MemoryDueTimers:
    """Open timer and wait-timeout bookmarks whose time has come, oldest first; claims lease
    them and set-aside rows are skipped, as in PostgreSQL."""

    def __init__(self, tables: MemoryTables, lease_seconds: float = 30.0) -> None:
        self.tables = tables
        self.lease_seconds = lease_seconds

    def _open_timers(self) -> list[BookmarkRow]:
        with self.tables.lock:
            return [
                b
                for b in self.tables.bookmarks.values()
                if b.status == "open"
                and (b.kind in _TIMER_KINDS or (b.kind == "task" and b.escalated_at is None))
                and b.due_at is not None
                and b.timer_error is None
            ]

    def due(self, now: datetime, limit: int) -> list[BookmarkRow]:
        with self.tables.lock:
            leases = self.tables.timer_leases
            due = [
                b
                for b in self._open_timers()
                if b.due_at is not None
                and b.due_at <= now
                and (b.id not in leases or leases[b.id] <= now)
            ]
            claimed = sorted(due, key=lambda b: (b.due_at, b.id))[:limit]
            for b in claimed:
                leases[b.id] = now + timedelta(seconds=self.lease_seconds)
        return claimed

    def release(self, bookmark_id: str) -> None:
        with self.tables.lock:
            self.tables.timer_leases.pop(bookmark_id, None)

    def next_due(self, now: datetime | None = None) -> datetime | None:
        """As in PostgreSQL: a row leased past `now` counts from its lease's end."""
        with self.tables.lock:
            leases = dict(self.tables.timer_leases)
        times = []
        for b in self._open_timers():
            if b.due_at is None:
                continue
            lease = leases.get(b.id)
            held = lease is not None and (now is None or lease > now)
            times.append(max(b.due_at, lease) if held and lease is not None else b.due_at)
        return min(times, default=None)

    def set_aside(self, bookmark_id: str, error: str, at: datetime) -> None:
        with self.tables.lock:
            row = self.tables.bookmarks.get(bookmark_id)
            if row is not None and row.status == "open":
                self.tables.bookmarks[bookmark_id] = replace(
                    row,
                    timer_error=error,
                    timer_failed_at=at,
                    timer_attempts=row.timer_attempts + 1,
                )

    def set_aside_count(self) -> int:
        with self.tables.lock:
            return sum(
                1
                for b in self.tables.bookmarks.values()
                if b.status == "open" and b.timer_error is not None
            )

    def set_aside_for(self, tenant: str, instance_id: UUID) -> list[BookmarkRow]:
        with self.tables.lock:
            return [
                b
                for b in self.tables.bookmarks.values()
                if (b.tenant, b.instance_id, b.status) == (tenant, instance_id, "open")
                and b.timer_error is not None
            ]


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

    def defer(self, activity_id: str, attempt: int, until: datetime) -> None:
        with self.tables.lock:
            activity = self.tables.activities.get(activity_id)
            if activity is not None and (activity.attempt, activity.status) == (
                attempt,
                "scheduled",
            ):
                self.tables.activities[activity_id] = replace(activity, run_after=until)
                self.tables.leases.pop(activity_id, None)
