"""ReadModelQueries on PostgreSQL: the read-model tables, tenant-scoped, keyset-paginated."""

from __future__ import annotations

from dataclasses import MISSING, fields
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from application.read_models import (
    BookmarkRow,
    InstanceFilter,
    InstanceRow,
    Page,
    TaskFilter,
    TaskRow,
)
from domain.engine.sla import HIGH_WITHIN, URGENT_WITHIN
from infrastructure.postgres.cursors import (
    clamp_limit,
    decode_cursor,
    encode_cursor,
    new_cursor_secret,
    page_of,
    parse_datetime,
    parse_uuid,
)
from infrastructure.postgres.datastore import one_statement

Row = TypeVar("Row")


def to_row(row_type: type[Row], record: dict[str, Any]) -> Row:
    """The dataclass for a table row, ignoring columns the dataclass does not have (and
    leaving fields with a default at it when a query did not select their column)."""
    values = {
        f.name: record[f.name]
        for f in fields(row_type)  # type: ignore[arg-type]
        if f.name in record or (f.default is MISSING and f.default_factory is MISSING)
    }
    return row_type(**values)


class PostgresReadModelQueries:
    """Reads what WaymarkRecorder projected; every query is scoped to one tenant."""

    def __init__(self, datastore: PostgresDatastore, *, cursor_secret: bytes | None = None) -> None:
        self.datastore = datastore
        # Every replica must sign with the same secret (bootstrap passes the configured one).
        self.cursor_secret = cursor_secret or new_cursor_secret()

    def _fetch(self, query: sql.SQL | sql.Composed | str, params: Any = ()) -> list[dict[str, Any]]:
        with one_statement(self.datastore) as curs:
            curs.execute(query, params)
            return curs.fetchall()

    def instance(self, tenant: str, instance_id: UUID) -> InstanceRow | None:
        rows = self._fetch(
            "SELECT * FROM instances WHERE tenant = %s AND id = %s", (tenant, instance_id)
        )
        return to_row(InstanceRow, rows[0]) if rows else None

    def list_instances(
        self, tenant: str, criteria: InstanceFilter, *, limit: int, cursor: str | None
    ) -> Page:
        """Newest first: (created_at, id) descending, which the tenant indexes serve."""
        where = _Where("tenant = %s", tenant)
        where.add_if(criteria.status, "status = %s")
        where.add_if(criteria.definition, "definition = %s")
        where.add_if(criteria.correlation_id, "correlation_id = %s")
        where.add_if(criteria.created_after, "created_at >= %s")
        where.add_if(criteria.created_before, "created_at < %s")
        if cursor is not None:
            created_at, last_id = decode_cursor(
                "instances", cursor, size=2, secret=self.cursor_secret
            )
            where.add(
                "(created_at, id) < (%s, %s)",
                parse_datetime(cursor, created_at),
                parse_uuid(cursor, last_id),
            )
        limit = clamp_limit(limit)
        query = sql.SQL(
            "SELECT * FROM instances WHERE {} ORDER BY created_at DESC, id DESC LIMIT %s"
        ).format(where.sql())
        rows = [to_row(InstanceRow, r) for r in self._fetch(query, [*where.params, limit + 1])]
        return page_of(
            rows,
            limit,
            lambda last: encode_cursor(
                "instances", last.created_at, last.id, secret=self.cursor_secret
            ),
        )

    def bookmark_by_token(self, token: str) -> BookmarkRow | None:
        # No tenant filter: the token is an unguessable capability; the row names its tenant.
        rows = self._fetch("SELECT * FROM bookmarks WHERE token = %s", (token,))
        return to_row(BookmarkRow, rows[0]) if rows else None

    def waiting_bookmarks(
        self, tenant: str, event_type: str, correlation: str | None
    ) -> list[BookmarkRow]:
        where = _Where("tenant = %s", tenant)
        where.add("event_type = %s", event_type)
        where.add("status = 'open' AND kind = 'wait'")
        # A wait with a correlation only accepts events carrying that value; a wait without
        # one accepts any event of its type.
        if correlation is None:
            where.add("correlation IS NULL")
        else:
            where.add("(correlation IS NULL OR correlation = %s)", correlation)
        query = sql.SQL("SELECT * FROM bookmarks WHERE {} ORDER BY created_at, id").format(
            where.sql()
        )
        return [to_row(BookmarkRow, r) for r in self._fetch(query, where.params)]

    def task(self, tenant: str, task_id: str) -> TaskRow | None:
        rows = self._fetch("SELECT * FROM tasks WHERE tenant = %s AND id = %s", (tenant, task_id))
        return to_row(TaskRow, rows[0]) if rows else None

    def list_tasks(
        self, tenant: str, criteria: TaskFilter, *, limit: int, cursor: str | None
    ) -> Page:
        """Most urgent first: due_at (tasks without a due time last), created_at, id."""
        where = _Where("tenant = %s", tenant)
        where.add_if(criteria.assignee, "assignee = %s")
        if criteria.role is not None:  # its own role, or the one an escalation added
            where.add("(role = %s OR escalated_to = %s)", criteria.role, criteria.role)
        where.add_if(criteria.status, "status = %s")
        if criteria.urgency is not None:
            _add_urgency(where, criteria.urgency, criteria.now or datetime.now(UTC))
        if cursor is not None:
            due_at, created_at, last_id = decode_cursor(
                "tasks", cursor, size=3, secret=self.cursor_secret
            )
            due, created = parse_datetime(cursor, due_at), parse_datetime(cursor, created_at)
            if due is None:
                # Past the dated tasks: only undated ones remain, in (created_at, id) order.
                where.add("due_at IS NULL AND (created_at, id) > (%s, %s)", created, last_id)
            else:
                where.add(
                    "(due_at IS NULL OR (due_at, created_at, id) > (%s, %s, %s))",
                    due,
                    created,
                    last_id,
                )
        limit = clamp_limit(limit)
        query = sql.SQL(
            "SELECT * FROM tasks WHERE {} ORDER BY due_at ASC NULLS LAST, created_at, id LIMIT %s"
        ).format(where.sql())
        rows = [to_row(TaskRow, r) for r in self._fetch(query, [*where.params, limit + 1])]
        return page_of(
            rows,
            limit,
            lambda last: encode_cursor(
                "tasks", last.due_at, last.created_at, last.id, secret=self.cursor_secret
            ),
        )

    def idempotent_result(self, tenant: str, scope: str, key: str) -> dict[str, Any] | None:
        rows = self._fetch(
            "SELECT result FROM idempotency_records WHERE tenant = %s AND scope = %s AND key = %s",
            (tenant, scope, key),
        )
        return rows[0]["result"] if rows else None


# Mirrors domain.engine.sla.urgency_at: an open task with a due time is judged by the time
# left at `now`; a closed or undated one keeps the node's fixed urgency. Each computed
# urgency is a due-time range: (condition, the bounds its placeholders take, in order).
_COMPUTED_URGENCY: dict[str, tuple[str, tuple[str, ...]]] = {
    "overdue": ("due_at <= %s", ("now",)),
    "urgent": ("due_at > %s AND due_at < %s", ("now", "urgent")),
    "high": ("due_at >= %s AND due_at < %s", ("urgent", "high")),
    "normal": ("due_at >= %s", ("high",)),
}
_JUDGED = "status IN ('open', 'claimed') AND due_at IS NOT NULL"
_FIXED = f"(NOT ({_JUDGED}) AND urgency = %s)"


def _add_urgency(where: _Where, urgency: str, now: datetime) -> None:
    computed = _COMPUTED_URGENCY.get(urgency)
    if computed is None:  # low, critical: only ever fixed
        where.add(_FIXED, urgency)
        return
    condition, names = computed
    bounds = {"now": now, "urgent": now + URGENT_WITHIN, "high": now + HIGH_WITHIN}
    where.add(f"({_FIXED} OR ({_JUDGED} AND {condition}))", urgency, *(bounds[n] for n in names))


class _Where:
    """AND-ed conditions with their parameters, built from constant SQL fragments only."""

    def __init__(self, condition: str, *params: Any) -> None:
        self.conditions: list[str] = []
        self.params: list[Any] = []
        self.add(condition, *params)

    def add(self, condition: str, *params: Any) -> None:
        self.conditions.append(condition)
        self.params.extend(params)

    def add_if(self, value: Any, condition: str) -> None:
        if value is not None:
            self.add(condition, value)

    def sql(self) -> sql.Composable:
        return sql.SQL(" AND ").join(sql.SQL(c) for c in self.conditions)
