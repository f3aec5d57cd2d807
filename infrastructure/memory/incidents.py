"""The `incidents` read model in memory: the same filter, order and signed cursor."""

from __future__ import annotations

from datetime import datetime

from application.read_models import IncidentFilter, Page
from infrastructure.memory.tables import MemoryTables
from infrastructure.postgres.cursors import (
    clamp_limit,
    decode_cursor,
    encode_cursor,
    new_cursor_secret,
    page_of,
    parse_datetime,
)


class MemoryIncidentQueries:
    def __init__(self, tables: MemoryTables, *, cursor_secret: bytes | None = None) -> None:
        self.tables = tables
        self.cursor_secret = cursor_secret or new_cursor_secret()

    def list_incidents(
        self, tenant: str, criteria: IncidentFilter, *, limit: int, cursor: str | None
    ) -> Page:
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            raised, last_id = decode_cursor("incidents", cursor, size=2, secret=self.cursor_secret)
            raised_at = parse_datetime(cursor, raised)
            if raised_at is not None:
                after = (raised_at, str(last_id))
        with self.tables.lock:
            rows = [
                r
                for r in self.tables.incidents.values()
                if r.tenant == tenant
                and criteria.status in (None, r.status)
                and criteria.definition in (None, r.definition)
                and criteria.node_id in (None, r.node_id)
                and criteria.instance_id in (None, r.instance_id)
                and (after is None or (r.raised_at, r.id) > after)
            ]
        rows.sort(key=lambda r: (r.raised_at, r.id))
        limit = clamp_limit(limit)
        return page_of(
            rows[: limit + 1],
            limit,
            lambda last: encode_cursor(
                "incidents", last.raised_at, last.id, secret=self.cursor_secret
            ),
        )
