"""The `incidents` read model in PostgreSQL: `GET /v1/incidents`, oldest first."""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from application.read_models import IncidentFilter, IncidentRow, Page
from infrastructure.postgres.cursors import (
    clamp_limit,
    decode_cursor,
    encode_cursor,
    new_cursor_secret,
    page_of,
    parse_datetime,
)
from infrastructure.postgres.queries import to_row


class PostgresIncidentQueries:
    def __init__(self, datastore: PostgresDatastore, *, cursor_secret: bytes | None = None) -> None:
        self.datastore = datastore
        self.cursor_secret = cursor_secret or new_cursor_secret()

    def list_incidents(
        self, tenant: str, criteria: IncidentFilter, *, limit: int, cursor: str | None
    ) -> Page:
        """(raised_at, id) ascending: the oldest incident first, served by the tenant index."""
        conditions = ["tenant = %s"]
        params: list[Any] = [tenant]
        for value, condition in (
            (criteria.status, "status = %s"),
            (criteria.definition, "definition = %s"),
            (criteria.node_id, "node_id = %s"),
            (criteria.instance_id, "instance_id = %s"),
        ):
            if value is not None:
                conditions.append(condition)
                params.append(value)
        if cursor is not None:
            raised_at, last_id = decode_cursor(
                "incidents", cursor, size=2, secret=self.cursor_secret
            )
            conditions.append("(raised_at, id) > (%s, %s)")
            params += [parse_datetime(cursor, raised_at), str(last_id)]
        limit = clamp_limit(limit)
        query = sql.SQL("SELECT * FROM incidents WHERE {} ORDER BY raised_at, id LIMIT %s").format(
            sql.SQL(" AND ").join(sql.SQL(c) for c in conditions)
        )
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, [*params, limit + 1])
            rows = [to_row(IncidentRow, r) for r in curs.fetchall()]
        return page_of(
            rows,
            limit,
            lambda last: encode_cursor(
                "incidents", last.raised_at, last.id, secret=self.cursor_secret
            ),
        )
