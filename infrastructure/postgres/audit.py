"""The audit log on PostgreSQL (`audit_log`, migration 0017): written in the acts'
transactions (`insert_entry`), listed newest first with the signed-cursor style."""

from __future__ import annotations

import builtins
from typing import Any

from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from application.audit import AuditEntry
from application.read_models import Page
from infrastructure.postgres.cursors import (
    clamp_limit,
    decode_cursor,
    encode_cursor,
    new_cursor_secret,
    page_of,
)

_INSERT = (
    "INSERT INTO audit_log (tenant, actor, action, target, client_ip, user_agent, details) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_SELECT = """
    SELECT * FROM audit_log
    WHERE tenant = %(tenant)s AND id < %(before)s
      AND (%(action)s::text IS NULL OR action = %(action)s)
      AND (%(target)s::text IS NULL OR target = %(target)s)
    ORDER BY id DESC
    LIMIT %(limit)s
"""
_NO_CURSOR = 2**63 - 1


def insert_entry(curs: Cursor[DictRow], entry: AuditEntry) -> None:
    """Record `entry` in the caller's transaction (it commits or rolls back with the act)."""
    curs.execute(
        _INSERT,
        (
            entry.tenant,
            entry.actor,
            entry.action,
            entry.target,
            entry.client_ip,
            entry.user_agent,
            Jsonb(entry.details),
        ),
    )


def entry_of(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        tenant=row["tenant"],
        recorded_at=row["recorded_at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        client_ip=row["client_ip"],
        user_agent=row["user_agent"],
        details=row["details"],
    )


class PostgresAuditLog:
    def __init__(self, datastore: PostgresDatastore, *, cursor_secret: bytes | None = None):
        self.datastore = datastore
        self.cursor_secret = cursor_secret or new_cursor_secret()

    def record(self, entry: AuditEntry) -> None:
        with self.datastore.transaction(commit=True) as curs:
            insert_entry(curs, entry)

    def list(
        self,
        tenant: str,
        limit: int,
        cursor: str | None,
        *,
        action: str | None = None,
        target: str | None = None,
    ) -> Page:
        before = _NO_CURSOR
        if cursor is not None:
            before = int(decode_cursor("audit", cursor, size=1, secret=self.cursor_secret)[0])
        limit = clamp_limit(limit)
        params = {
            "tenant": tenant,
            "before": before,
            "action": action,
            "target": target,
            "limit": limit + 1,
        }
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT, params)
            rows: builtins.list[AuditEntry] = [entry_of(row) for row in curs.fetchall()]
        return page_of(
            rows,
            limit,
            lambda last: encode_cursor("audit", str(last.id), secret=self.cursor_secret),
        )
