"""ReadModelQueries in memory: the same filters, orders and signed cursors as PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from application.read_models import (
    BookmarkRow,
    InstanceFilter,
    InstanceRow,
    Page,
    TaskFilter,
    TaskRow,
)
from application.views import OPEN_TASK_STATUSES
from domain.engine.sla import urgency_at
from infrastructure.memory.tables import MemoryTables
from infrastructure.postgres.cursors import (
    clamp_limit,
    decode_cursor,
    encode_cursor,
    new_cursor_secret,
    page_of,
    parse_datetime,
    parse_uuid,
)

# Stands in for a missing due time in the tasks' sort key (undated tasks sort last anyway).
_NO_DUE = datetime.min.replace(tzinfo=UTC)


def _task_key(due_at: datetime | None, created_at: datetime, task_id: str) -> tuple[Any, ...]:
    """ORDER BY due_at ASC NULLS LAST, created_at, id."""
    return (due_at is None, due_at or _NO_DUE, created_at, task_id)


def _urgency(task: TaskRow, now: datetime) -> str:
    """The urgency the task view shows at `now` (what PostgreSQL's filter computes)."""
    judged = task.status in OPEN_TASK_STATUSES
    return urgency_at(task.due_at if judged else None, now, task.urgency)


class MemoryReadModelQueries:
    """Reads what MemoryInstanceStore projected; every query is scoped to one tenant."""

    def __init__(self, tables: MemoryTables, *, cursor_secret: bytes | None = None) -> None:
        self.tables = tables
        self.cursor_secret = cursor_secret or new_cursor_secret()

    def instance(self, tenant: str, instance_id: UUID) -> InstanceRow | None:
        row = self.tables.instances.get(instance_id)
        return row if row is not None and row.tenant == tenant else None

    def list_instances(
        self, tenant: str, criteria: InstanceFilter, *, limit: int, cursor: str | None
    ) -> Page:
        """Newest first: (created_at, id) descending."""
        after: tuple[datetime, UUID] | None = None
        if cursor is not None:
            created, last_id = decode_cursor("instances", cursor, size=2, secret=self.cursor_secret)
            created_at = parse_datetime(cursor, created)
            after = (created_at, parse_uuid(cursor, last_id)) if created_at else None
        with self.tables.lock:
            rows = [
                r
                for r in self.tables.instances.values()
                if r.tenant == tenant
                and (criteria.status is None or r.status == criteria.status)
                and (criteria.definition is None or r.definition == criteria.definition)
                and (criteria.correlation_id is None or r.correlation_id == criteria.correlation_id)
                and (criteria.created_after is None or r.created_at >= criteria.created_after)
                and (criteria.created_before is None or r.created_at < criteria.created_before)
                and (after is None or (r.created_at, r.id) < after)
            ]
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        limit = clamp_limit(limit)
        return page_of(
            rows[: limit + 1],
            limit,
            lambda last: encode_cursor(
                "instances", last.created_at, last.id, secret=self.cursor_secret
            ),
        )

    def bookmark_by_token(self, token: str) -> BookmarkRow | None:
        with self.tables.lock:
            return next((b for b in self.tables.bookmarks.values() if b.token == token), None)

    def waiting_bookmarks(
        self, tenant: str, event_type: str, correlation: str | None
    ) -> list[BookmarkRow]:
        with self.tables.lock:
            rows = [
                b
                for b in self.tables.bookmarks.values()
                if b.tenant == tenant
                and b.event_type == event_type
                and (b.status, b.kind) == ("open", "wait")
                and (b.correlation is None or b.correlation == correlation)
            ]
        return sorted(rows, key=lambda b: (b.created_at, b.id))

    def task(self, tenant: str, task_id: str) -> TaskRow | None:
        row = self.tables.tasks.get(task_id)
        return row if row is not None and row.tenant == tenant else None

    def list_tasks(
        self, tenant: str, criteria: TaskFilter, *, limit: int, cursor: str | None
    ) -> Page:
        """Most urgent first: due_at (tasks without a due time last), created_at, id."""
        after: tuple[Any, ...] | None = None
        if cursor is not None:
            due, created, last_id = decode_cursor(
                "tasks", cursor, size=3, secret=self.cursor_secret
            )
            created_at = parse_datetime(cursor, created)
            if created_at is not None:
                after = _task_key(parse_datetime(cursor, due), created_at, str(last_id))
        now = criteria.now or datetime.now(UTC)
        with self.tables.lock:
            rows = [
                t
                for t in self.tables.tasks.values()
                if t.tenant == tenant
                and (criteria.assignee is None or t.assignee == criteria.assignee)
                and (criteria.role is None or criteria.role in (t.role, t.escalated_to))
                and (criteria.status is None or t.status == criteria.status)
                and (criteria.urgency is None or _urgency(t, now) == criteria.urgency)
                and (after is None or _task_key(t.due_at, t.created_at, t.id) > after)
            ]
        rows.sort(key=lambda t: _task_key(t.due_at, t.created_at, t.id))
        limit = clamp_limit(limit)
        return page_of(
            rows[: limit + 1],
            limit,
            lambda last: encode_cursor(
                "tasks", last.due_at, last.created_at, last.id, secret=self.cursor_secret
            ),
        )

    def idempotent_result(self, tenant: str, scope: str, key: str) -> dict[str, Any] | None:
        return self.tables.idempotency.get((tenant, scope, key))
